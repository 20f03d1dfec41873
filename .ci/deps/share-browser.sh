# One-time share links are tested in a real browser: Debian's chromium,
# driven by Playwright for Python with the system browser as its
# executable (Playwright's own browser download is not used).
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
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
    echo "CI: chromium or playwright did not install" >&2
    exit 1
fi
