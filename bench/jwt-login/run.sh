#!/usr/bin/env bash
# JWT logins per second against a local dev server: one JWT role with a
# stored Ed25519 key, one signed JWT, and wrk POSTing it to
# /api/v1/auth/jwt/login (each success mints and stores a token and writes
# an audit record).
#
#   COFFER            the binary (default target/release/coffer)
#   BENCH_DURATION    wrk duration (default 10s)
#   BENCH_THREADS     wrk threads (default 2)
#   BENCH_CONNECTIONS wrk connections (default 8: every login in flight
#                     counts against its address until it succeeds, and
#                     past login_failures_per_address (10) the address is
#                     answered 429, as for password logins)
set -euo pipefail
cd "$(dirname "$0")/../.."
COFFER=${COFFER:-target/release/coffer}
DURATION=${BENCH_DURATION:-10s}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-8}
for tool in "$COFFER" openssl wrk; do
    command -v "$tool" >/dev/null 2>&1 || { echo "jwt-login: $tool not found" >&2; exit 1; }
done

dir=$(mktemp -d)
server=
cleanup() {
    [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$COFFER" server --dev --data-dir "$dir/data" --listen "127.0.0.1:$port" >"$dir/server.log" 2>&1 &
server=$!
for ((i = 0; i < 600; i++)); do [[ -s $dir/data/root-token ]] && break; sleep 0.1; done
[[ -s $dir/data/root-token ]] || { cat "$dir/server.log" >&2; exit 1; }
export COFFER_ADDR="http://127.0.0.1:$port"
COFFER_TOKEN=$(tr -d '[:space:]' <"$dir/data/root-token")
export COFFER_TOKEN

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
openssl genpkey -algorithm ed25519 -out "$dir/key.pem" 2>/dev/null
x=$(openssl pkey -in "$dir/key.pem" -pubout -outform DER | tail -c 32 | b64url)
printf '{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"bench","x":"%s"}]}' "$x" >"$dir/jwks.json"
printf 'path "app/*" { capabilities = ["read"] }\n' >"$dir/bench.hcl"
"$COFFER" policy write bench "$dir/bench.hcl" >/dev/null
"$COFFER" auth jwt write bench --issuer https://issuer.bench --audience coffer-bench \
    --jwks-file "$dir/jwks.json" --bound sub=bench --policy bench --ttl 15m >/dev/null 2>&1

now=$(date +%s)
header=$(printf '{"alg":"EdDSA","typ":"JWT","kid":"bench"}' | b64url)
claims=$(printf '{"iss":"https://issuer.bench","aud":"coffer-bench","sub":"bench","iat":%d,"exp":%d}' \
    "$now" "$((now + 3600))" | b64url)
printf '%s.%s' "$header" "$claims" >"$dir/input"
sig=$(openssl pkeyutl -sign -inkey "$dir/key.pem" -rawin -in "$dir/input" | b64url)
export JWT_LOGIN_BODY="{\"role\":\"bench\",\"jwt\":\"$header.$claims.$sig\"}"

# One login by hand, so a broken setup fails here rather than as wrk errors.
status=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    --data "$JWT_LOGIN_BODY" "$COFFER_ADDR/api/v1/auth/jwt/login")
[[ $status == 200 ]] || { echo "jwt-login: a login answered $status" >&2; exit 1; }

wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s bench/jwt-login/login.lua "$COFFER_ADDR"
