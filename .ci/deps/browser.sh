# The web console's and the share links' browser tests drive Debian's Chromium with Playwright for
# Python. Playwright is told where the system browser is (executable_path), so
# no browser build of its own is downloaded. Sourced by .ci/run as root.
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium
fi
if ! python3 -c 'import playwright.sync_api' 2>/dev/null; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip
    fi
    python3 -m pip install -q playwright ||
        python3 -m pip install -q --break-system-packages playwright
fi
if ! command -v chromium >/dev/null 2>&1 || ! python3 -c 'import playwright.sync_api' 2>/dev/null; then
    echo "CI: chromium or Playwright for Python did not install" >&2
    exit 1
fi
