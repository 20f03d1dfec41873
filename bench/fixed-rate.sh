#!/usr/bin/env bash
# Coffer at a fixed open-loop read rate: the server's CPU per request and the
# read latency (from each request's due time), for comparing builds of coffer
# with each other. Unlike bench/run.sh the rate does not follow a wrk peak
# measured in the same run, so two builds get exactly the same load.
#
#   bench/fixed-rate.sh                                  # target/release/coffer, 20,000 req/s
#   BENCH_BINS="/tmp/coffer-a /tmp/coffer-b" BENCH_RUNS=5 bench/fixed-rate.sh
#
# Settings (environment):
#   BENCH_BINS         coffer binaries to compare, alternated run by run
#                      (default target/release/coffer)
#   BENCH_LOADGEN_BIN  coffer-loadgen (default target/release/coffer-loadgen)
#   BENCH_RATE         requests per second (default 20000)
#   BENCH_DURATION     measured seconds per run (default 6), after 2 s of warm-up
#   BENCH_CONNECTIONS  connections (default 32)
#   BENCH_RUNS         runs per binary (default 3)
#   BENCH_SERVER_ARGS  extra arguments for `coffer server`, split on spaces (for
#                      example "--audit-file /dev/null", to set the audit log's
#                      file system apart from the rest of its cost)
#
# Each run starts `coffer server --dev` on a fresh data directory (audit log
# on), reads one secret with a token whose policy has eleven rules (as in
# bench/run.sh), and prints one line: server CPU (user + system, from
# /proc/PID/stat over the measured part) per request, latency percentiles,
# and how busy the machine and the generator were. Nothing is built here:
# `cargo build --release -p coffer-cli --bin coffer -p coffer-loadgen` first.
set -euo pipefail
umask 077

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BINS=${BENCH_BINS:-$TARGET_DIR/release/coffer}
LOADGEN=${BENCH_LOADGEN_BIN:-$TARGET_DIR/release/coffer-loadgen}
RATE=${BENCH_RATE:-20000}
SECS=${BENCH_DURATION:-6}
CONNS=${BENCH_CONNECTIONS:-32}
RUNS=${BENCH_RUNS:-3}
read -r -a SERVER_ARGS <<<"${BENCH_SERVER_ARGS:-}"

die() { echo "fixed-rate: $*" >&2; exit 1; }
[[ -x $LOADGEN ]] || die "no coffer-loadgen at $LOADGEN (cargo build --release -p coffer-loadgen)"
for b in $BINS; do [[ -x $b ]] || die "no coffer binary at $b"; done
[[ $RATE =~ ^[0-9]+$ && $SECS =~ ^[0-9]+$ && $RUNS =~ ^[0-9]+$ ]] || die "rate, duration and runs are whole numbers"

DIR=
PID=
cleanup() {
    [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    [[ -n $DIR ]] && rm -rf "$DIR"
    return 0
}
trap cleanup EXIT

one_run() {
    local bin=$1 port base token auth policy c0 c1
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/coffer-fixed.XXXXXX")
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    base=http://127.0.0.1:$port
    "$bin" server --dev --data-dir "$DIR/data" --listen "127.0.0.1:$port" ${SERVER_ARGS[@]+"${SERVER_ARGS[@]}"} \
        >"$DIR/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        [[ -s $DIR/data/root-token ]] && curl -fs -o /dev/null "$base/api/v1/sys/health" && break
        sleep 0.1
    done
    [[ -s $DIR/data/root-token ]] || { tail "$DIR/server.log" >&2; die "$bin did not start"; }
    # Credentials go to curl and coffer-loadgen as header files (-H @FILE),
    # never on a command line, which any local user can read in /proc.
    printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"$DIR/data/root-token")" >"$DIR/root.h"
    auth=@$DIR/root.h
    curl -fsS -o /dev/null -X PUT -H "$auth" -H 'Content-Type: application/json' \
        --data '{"value":"bench-read-value-0123456789abcdef"}' "$base/api/v1/secrets/bench/read"
    policy=$(python3 -c '
import json
rules = [("bench/*", ["read", "create", "update"])]
rules += [("app%d/+/*" % i, ["read", "list"]) for i in range(1, 10)]
rules += [("bench/forbidden", ["deny"])]
print(json.dumps({"policy": "".join("path \"%s\" { capabilities = %s }\n" % (p, json.dumps(c)) for p, c in rules)}))')
    curl -fsS -o /dev/null -X PUT -H "$auth" -H 'Content-Type: application/json' --data "$policy" \
        "$base/api/v1/sys/policies/bench"
    token=$(curl -fsS -X POST -H "$auth" -H 'Content-Type: application/json' \
        --data '{"policies":["bench"],"display_name":"bench"}' "$base/api/v1/auth/tokens" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
    printf 'Authorization: Bearer %s\n' "$token" >"$DIR/bench.h"
    local lg=("$LOADGEN" --url "$base/api/v1/secrets/bench/read" --rate "$RATE" -c "$CONNS"
        -H "@$DIR/bench.h" --json)
    "${lg[@]}" --duration 2s >/dev/null
    c0=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    "${lg[@]}" --duration "${SECS}s" >"$DIR/run.json"
    c1=$(awk '{print $14 + $15}' "/proc/$PID/stat")
    python3 - "$DIR/run.json" "$c0" "$c1" "$(getconf CLK_TCK)" "$bin" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
c0, c1, hz, name = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
l, cpu = r["latency_ms"], r["cpu"] or {}
print(f"{name}: {r['achieved_rate']:,.0f} req/s  server {(c1 - c0) / hz * 1e6 / r['ok']:.1f} us/request  "
      f"p50 {l['p50']:.3f}  p99 {l['p99']:.3f}  p99.9 {l['p99.9']:.3f} ms  "
      f"machine {cpu.get('machine_busy_pct')}% busy ({cpu.get('steal_pct')}% stolen by the host), "
      f"generator {cpu.get('generator_pct_of_one_core')}% of one")
EOF
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
    rm -rf "$DIR"
    DIR=
}

echo "fixed-rate: $RATE req/s, ${SECS} s measured, $CONNS connections, $RUNS runs per binary" \
    "($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
for ((i = 1; i <= RUNS; i++)); do
    for b in $BINS; do one_run "$b"; done
done
