#!/usr/bin/env bash
# coffer on PostgreSQL, one node and two nodes sharing one database, beside
# coffer on its embedded SQLite store: the same wrk read and write loads as
# bench/run.sh, on the same machine in the same run.
#
#   bench/cluster.sh                     # 10 s per measured run
#   BENCH_DURATION=5s bench/cluster.sh   # quick
#
# Settings (environment):
#   BENCH_DURATION     wrk duration per measured run (default 10s)
#   BENCH_WARMUP       unmeasured run before each measured one (default 2s)
#   BENCH_THREADS      wrk threads in all (default 2; split between nodes)
#   BENCH_CONNECTIONS  wrk connections in all (default 32; split between nodes)
#   BENCH_KEYS         distinct secret paths the write load cycles over (default 1000)
#   BENCH_PG_URL       use this PostgreSQL (an administrator URL, postgres://USER:PW@HOST:PORT/DB;
#                      a database coffer_bench_N is created) instead of starting a private one
#   BENCH_SKIP_BUILD   1 = do not run cargo build
#   BENCH_COFFER_BIN   use this coffer binary
#   BENCH_RESULTS      markdown output (default bench/results/cluster.md; JSON beside it)
#
# The private PostgreSQL runs with its durable defaults (fsync on,
# synchronous_commit on), as coffer's SQLite store fsyncs every commit. Loads
# use a token scoped by a policy, as in bench/run.sh. With two nodes, each
# node gets half of the threads and connections (two wrk processes at once,
# writing disjoint keys); the table sums their throughput and shows the
# worse node's latency.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
cd "$ROOT"

DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
KEYS=${BENCH_KEYS:-1000}
RESULTS=${BENCH_RESULTS:-$BENCH/results/cluster.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
COFFER=${BENCH_COFFER_BIN:-$TARGET_DIR/release/coffer}

log() { printf '%s\n' "$*" >&2; }
die() {
    log "bench/cluster.sh: $*"
    exit 1
}
command -v wrk >/dev/null || die "wrk is needed (Debian: apt-get install wrk)"
((THREADS >= 2 && CONNECTIONS >= 2)) || die "BENCH_THREADS and BENCH_CONNECTIONS must be at least 2"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n ${PG_DATA:-} ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

if [[ ${BENCH_SKIP_BUILD:-0} != 1 && -z ${BENCH_COFFER_BIN:-} ]]; then
    log "building coffer (release)"
    cargo build --release -q -p coffer-cli --bin coffer
fi
[[ -x $COFFER ]] || die "no coffer binary at $COFFER"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

as_pg() {
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# --- PostgreSQL ------------------------------------------------------------------

if [[ -n ${BENCH_PG_URL:-} ]]; then
    PG_ADMIN=$BENCH_PG_URL
    PG_BASE=${BENCH_PG_URL%/*}
    PG_NOTE="external server"
else
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [[ -x $PG_BIN/initdb ]] || die "PostgreSQL's server is needed (Debian: apt-get install postgresql), or set BENCH_PG_URL"
    mkdir -p "$TMP/pg"
    [[ $(id -u) == 0 ]] && chown postgres:postgres "$TMP/pg" && chmod 755 "$TMP"
    PG_DATA=$TMP/pg/data
    echo bench-pg-password >"$TMP/pg/pw"
    [[ $(id -u) == 0 ]] && chown postgres:postgres "$TMP/pg/pw"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U coffer -A scram-sha-256 --pwfile="$TMP/pg/pw" -E UTF8 >/dev/null
    PG_PORT=$(free_port)
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$TMP/pg/log" -w -o \
        "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$TMP/pg -c shared_buffers=256MB -c max_connections=200" \
        start >/dev/null
    PG_BASE=postgres://coffer:bench-pg-password@127.0.0.1:$PG_PORT
    PG_ADMIN=$PG_BASE/postgres
    PG_NOTE="PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), private, fsync and synchronous_commit on, shared_buffers 256MB"
fi
new_database() {
    local name=coffer_bench_$$_$RANDOM$RANDOM
    psql -q "$PG_ADMIN" -c "CREATE DATABASE $name" >/dev/null || die "cannot create database $name"
    echo "$PG_BASE/$name?sslmode=disable"
}

# --- coffer nodes ----------------------------------------------------------------

# start_node NAME STORAGE_URL_OR_EMPTY: sets NODE (its base URL) and NODE_PID
start_node() {
    local name=$1 url=$2 port dir=$TMP/$1
    port=$(free_port)
    mkdir -p "$dir"
    if [[ -z $url ]]; then
        printf 'data_dir = "%s/data"\nlisten = "127.0.0.1:%s"\n' "$dir" "$port" >"$dir/coffer.toml"
    else
        printf 'data_dir = "%s/data"\nlisten = "127.0.0.1:%s"\n[storage]\nurl = "%s"\n' \
            "$dir" "$port" "$url" >"$dir/coffer.toml"
    fi
    COFFER_LOG=warn "$COFFER" server --config "$dir/coffer.toml" >"$dir/out.log" 2>&1 &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    local base=http://127.0.0.1:$port i
    for ((i = 0; i < 100; i++)); do
        curl -s -o /dev/null "$base/api/v1/sys/health" && break
        sleep 0.1
    done
    curl -s -o /dev/null "$base/api/v1/sys/health" || { cat "$dir/out.log" >&2; die "$name did not start"; }
    NODE=$base
}
stop_node() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

json() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[int(k)] if isinstance(d,list) else d[k]
print(d)' "$1"; }

# init_cluster BASE... -> sets TOKEN (scoped) after init on the first and unseal on all
init_cluster() {
    local first=$1 init key root b policy
    init=$(curl -sS -X POST -H 'Content-Type: application/json' --data '{"shares":1,"threshold":1}' "$first/api/v1/sys/init")
    key=$(json unseal_keys.0 <<<"$init")
    root=$(json root_token <<<"$init")
    for b in "$@"; do
        # The key on standard input, not on curl's command line.
        curl -sS -o /dev/null -X POST -H 'Content-Type: application/json' --data @- "$b/api/v1/sys/unseal" \
            <<<"{\"key\":\"$key\"}"
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$b/api/v1/sys/health") == 200 ]] || die "$b did not unseal"
    done
    policy=$(python3 -c '
import json
rules = [("bench/*", ["read", "create", "update"])]
rules += [("app%d/+/*" % i, ["read", "list"]) for i in range(1, 10)]
rules += [("bench/forbidden", ["deny"])]
print(json.dumps({"policy": "".join("path \"%s\" { capabilities = %s }\n" % (p, json.dumps(c)) for p, c in rules)}))')
    # Tokens go to curl as header files (-H @FILE), never on a command line.
    printf 'Authorization: Bearer %s\n' "$root" >"$TMP/root.h"
    curl -sS -o /dev/null -X PUT -H "@$TMP/root.h" -H 'Content-Type: application/json' \
        --data "$policy" "$first/api/v1/sys/policies/bench"
    TOKEN=$(curl -sS -X POST -H "@$TMP/root.h" -H 'Content-Type: application/json' \
        --data '{"policies":["bench"],"display_name":"bench"}' "$first/api/v1/auth/tokens" | json token)
    printf 'Authorization: Bearer %s\n' "$TOKEN" >"$TMP/bench.h"
    local code
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H "@$TMP/bench.h" \
        -H 'Content-Type: application/json' --data '{"value":"bench-read-value-0123456789abcdef"}' \
        "$first/api/v1/secrets/bench/read")
    [[ $code == 200 ]] || die "writing bench/read answered $code"
}

export WRK_LUA_DIR=$BENCH/wrk WRK_KEYS=$KEYS WRK_AUTH_HEADER=Authorization

# measure LABEL LOAD BASE... : one wrk per node at once, threads and connections split
measure() {
    local label=$1 load=$2
    shift 2
    local n=$# t c phase dur i b pids out
    t=$((THREADS / n))
    c=$((CONNECTIONS / n))
    for phase in warmup measure; do
        dur=$DURATION
        [[ $phase == warmup ]] && dur=$WARMUP
        [[ $phase == warmup && $dur == 0* ]] && continue
        log "$label $load: $phase $dur ($n node(s), -t$t -c$c each)"
        pids=()
        i=0
        for b in "$@"; do
            out=$TMP/runs/$label-$load-$phase-$i.txt
            mkdir -p "$TMP/runs"
            if [[ $load == read ]]; then
                WRK_AUTH_VALUE="Bearer $TOKEN" WRK_READ_PATH=/api/v1/secrets/bench/read \
                    wrk -t"$t" -c"$c" -d"$dur" --timeout 10s --latency -s "$BENCH/wrk/read.lua" "$b" >"$out" 2>&1 &
            else
                WRK_AUTH_VALUE="Bearer $TOKEN" WRK_THREADS="$t" WRK_WRITE_METHOD=PUT \
                    WRK_WRITE_PREFIX="/api/v1/secrets/bench/n$i/" WRK_WRITE_STYLE=coffer \
                    wrk -t"$t" -c"$c" -d"$dur" --timeout 10s --latency -s "$BENCH/wrk/write.lua" "$b" >"$out" 2>&1 &
            fi
            pids+=($!)
            i=$((i + 1))
        done
        for p in "${pids[@]}"; do wait "$p" || die "wrk failed ($label $load)"; done
        [[ $phase == measure ]] || continue
        python3 - "$TMP/runs" "$label" "$load" "$n" "$t" "$c" >>"$TMP/results.jsonl" <<'EOF' || die "$label $load had errors"
import glob, json, sys
runs, label, load, n, t, c = sys.argv[1:]
recs = []
for path in sorted(glob.glob(f"{runs}/{label}-{load}-measure-*.txt")):
    lines = [l for l in open(path) if l.startswith("BENCH_JSON ")]
    if not lines:
        sys.stderr.write(open(path).read()); sys.exit("no BENCH_JSON line")
    r = json.loads(lines[-1][len("BENCH_JSON "):])
    bad = {k: v for k, v in r["errors"].items() if v}
    if bad or r["requests"] == 0:
        sys.stderr.write(open(path).read()); sys.exit(f"FAIL {label} {load}: {bad}")
    recs.append(r)
out = {"label": label, "load": load, "nodes": int(n), "threads_per_node": int(t),
       "connections_per_node": int(c), "rps": round(sum(r["rps"] for r in recs), 1),
       "rps_per_node": [round(r["rps"], 1) for r in recs],
       "p50_us": max(r["latency_us"]["p50"] for r in recs),
       "p99_us": max(r["latency_us"]["p99"] for r in recs)}
print(json.dumps(out))
sys.stderr.write(f"    {out['rps']:>10,.0f} req/s   p50 {out['p50_us']/1000:.3f} ms   p99 {out['p99_us']/1000:.3f} ms\n")
EOF
    done
}

# --- runs --------------------------------------------------------------------------

: >"$TMP/results.jsonl"

log "coffer on SQLite (one node)"
start_node sqlite ""
init_cluster "$NODE"
measure sqlite read "$NODE"
measure sqlite write "$NODE"
stop_node "$NODE_PID"

log "coffer on PostgreSQL (one node)"
start_node pg1 "$(new_database)"
init_cluster "$NODE"
measure pg1 read "$NODE"
measure pg1 write "$NODE"
stop_node "$NODE_PID"

log "coffer on PostgreSQL (two nodes, one database)"
DB=$(new_database)
start_node pg2a "$DB"
A=$NODE
start_node pg2b "$DB"
B=$NODE
init_cluster "$A" "$B"
measure pg2 read "$A" "$B"
measure pg2 write "$A" "$B"

# --- report ------------------------------------------------------------------------

mkdir -p "$(dirname "$RESULTS")"
python3 - "$TMP/results.jsonl" "$RESULTS" "${RESULTS%.md}.json" "$PG_NOTE" "$DURATION" "$THREADS" "$CONNECTIONS" <<'EOF'
import json, platform, subprocess, sys, time
src, md, js, pg, dur, threads, conns = sys.argv[1:]
rows = [json.loads(l) for l in open(src) if l.strip()]
names = {"sqlite": "coffer, SQLite, 1 node", "pg1": "coffer, PostgreSQL, 1 node",
         "pg2": "coffer, PostgreSQL, 2 nodes"}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ncpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
lines = [f"# coffer storage backends: SQLite, PostgreSQL, two nodes",
         "",
         f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu}, {ncpu} CPUs; "
         f"wrk -t{threads} -c{conns} in all, {dur} per measured run; {pg}.",
         "",
         "| setup | load | req/s | per node | p50 ms | p99 ms |",
         "|---|---|---:|---|---:|---:|"]
for r in rows:
    per = " + ".join(f"{x:,.0f}" for x in r["rps_per_node"])
    lines.append(f"| {names.get(r['label'], r['label'])} | {r['load']} | {r['rps']:,.0f} | {per} | "
                 f"{r['p50_us']/1000:.3f} | {r['p99_us']/1000:.3f} |")
open(md, "w").write("\n".join(lines) + "\n")
json.dump(rows, open(js, "w"), indent=1)
print("\n".join(lines))
EOF
