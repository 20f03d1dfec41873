# `coffer sync` is tested against moto's server mode, a local emulation of
# AWS Secrets Manager and SSM Parameter Store (PyPI `moto[server]`); the
# tests seed it with boto3, which moto brings. The tests fail without it.
if ! command -v moto_server >/dev/null 2>&1 || ! python3 -c 'import moto.server, boto3, flask' 2>/dev/null; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip
    fi
    python3 -m pip install -q 'moto[server]' ||
        python3 -m pip install -q --break-system-packages 'moto[server]'
fi
if ! command -v moto_server >/dev/null 2>&1; then
    echo "CI: moto[server] is installed but moto_server is not on PATH" >&2
    exit 1
fi
