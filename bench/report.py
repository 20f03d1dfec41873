#!/usr/bin/env python3
"""Summarise the wrk runs of bench/run.sh.

usage: report.py META_FILE RUNS_DIR RESULTS_MD

META_FILE holds key=value lines (machine, tool versions, settings, command).
RUNS_DIR holds one TARGET-LOAD.json per measured wrk run (the BENCH_JSON line of
bench/wrk/report.lua plus target and load), and one TARGET-read-halfpeak-N.json
per open-loop run at half of the read peak ("kind": "half_peak", "repeat": N,
written by run.sh from the JSON of coffer-loadgen, "tool": "coffer-loadgen", or
of oha with BENCH_HALF_PEAK_TOOL=oha, "tool": "oha"). With several half-peak
runs per target, each is listed and the verdict compares the medians. Prints
the tables on stdout and writes the same as markdown to RESULTS_MD, with the
raw numbers beside it as .json.
"""

import json
import pathlib
import statistics
import sys

ORDER = [("coffer", "read"), ("coffer", "vread"), ("coffer", "write"), ("openbao", "read"), ("openbao", "write"),
         ("hello", "get")]

# DESIGN.md: p99 read latency at half of peak load, coffer at most one fifth of OpenBao's.
HALF_PEAK_P99_TARGET = 0.2


def main() -> None:
    meta_file, runs_dir, results_md = sys.argv[1:4]
    meta = {}
    for line in pathlib.Path(meta_file).read_text().splitlines():
        key, _, value = line.partition("=")
        meta[key] = value

    runs, half = {}, {}
    for path in sorted(pathlib.Path(runs_dir).glob("*.json")):
        r = json.loads(path.read_text())
        if r.get("kind") == "half_peak":
            half.setdefault(r["target"], []).append(r)
        else:
            runs[(r["target"], r["load"])] = r
    keys = [k for k in ORDER if k in runs] + sorted(k for k in runs if k not in ORDER)
    half_keys = [t for t in ("coffer", "openbao") if t in half] + sorted(
        t for t in half if t not in ("coffer", "openbao"))
    half_on = meta.get("half_peak", "0") == "1"
    for t in half:
        half[t].sort(key=lambda r: r.get("repeat", 1))
    # Per target, the median of its runs: what the verdict and ratios use.
    med = {t: median_run(rs) for t, rs in half.items()}

    header = ["target", "load", "requests/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "requests"]
    if half_on:
        header.append("p99 at half peak ms")
    rows = []
    for k in keys:
        r = runs[k]
        lat = r["latency_us"]
        rows.append([k[0], k[1], f"{r['rps']:,.0f}", ms(lat["p50"]), ms(lat["p99"]),
                     ms(lat["p999"]), ms(lat["max"]), f"{r['requests']:,}"])
        if half_on:
            h = med.get(k[0]) if k[1] == "read" else None
            rows[-1].append(ms(h["latency_us"]["p99"]) if h else "-")

    # Open loop at half of the closed-loop read peak (constant rate).
    tools = {r.get("tool", "oha") for t in half_keys for r in half[t]}
    loadgen = (tools == {"coffer-loadgen"} if tools
               else meta.get("half_peak_tool") == "loadgen")
    if loadgen:
        half_header = ["target", "peak req/s", "requested req/s", "achieved req/s", "p50 ms",
                       "p90 ms", "p99 ms", "p99.9 ms", "max ms", "send lag p50 / p99 / max ms",
                       "CPUs busy", "stolen by the host", "generator CPU", "requests"]
    else:
        half_header = ["target", "peak req/s", "requested req/s", "achieved req/s", "p50 ms",
                       "p99 ms", "p99.9 ms", "max ms", "p99 from schedule ms",
                       "pacer lag p50 / max ms", "CPUs busy", "requests"]
    half_rows, per_second = [], []
    listed = []
    for t in half_keys:
        n = len(half[t])
        listed += [(t if n == 1 else f"{t} {h.get('repeat', 1)}/{n}", h) for h in half[t]]
        if n > 1:
            listed.append((f"{t} median", med[t]))
    for name, h in listed:
        lat = h["latency_us"]
        row = [name, f"{h['peak_rps']:,.0f}", f"{h['requested_rps']:,.0f}", f"{h['achieved_rps']:,.0f}",
               ms(lat["p50"])]
        if loadgen:
            lag = h["send_lag_us"]
            row += [ms(lat["p90"]), ms(lat["p99"]), ms(lat["p999"]), ms(lat["max"]),
                    f"{ms(lag['p50'])} / {ms(lag['p99'])} / {ms(lag['max'])}",
                    pct(h.get("cpu_busy_pct")), pct(h.get("steal_pct"), digits=1),
                    pct(h.get("generator_cpu_pct"), " of one"), f"{h['requests']:,}"]
            secs = h.get("per_second") or []
            if secs and "runs" not in h:
                per_second.append(f"{name}: " + " ".join(f"{x['p99_us'] / 1000:.2f}" for x in secs))
        else:
            sch, plag = h["latency_from_schedule_us"], h["pacer_lag_us"]
            row += [ms(lat["p99"]), ms(lat["p999"]), ms(lat["max"]), ms(sch["p99"]),
                    f"{ms(plag['p50'])} / {ms(plag['max'])}", pct(h.get("cpu_busy_pct")),
                    f"{h['requests']:,}"]
        half_rows.append(row)
    half_verdict = None
    if half_on:
        if "coffer" in half and "openbao" in half:
            a, b = med["coffer"]["latency_us"], med["openbao"]["latency_us"]
            ratio = a["p99"] / b["p99"]
            of = ""
            if len(half["coffer"]) > 1 or len(half["openbao"]) > 1:
                each = "; ".join(
                    f"{t} " + ", ".join(ms(r["latency_us"]["p99"]) for r in half[t])
                    for t in ("coffer", "openbao"))
                na, nb = len(half["coffer"]), len(half["openbao"])
                runs_of = f"{na} runs each" if na == nb else f"{na} and {nb} runs"
                of = f": medians of {runs_of}; each run's p99 ms: {each}"
            half_verdict = (
                f"p99 at half peak, coffer / OpenBao: **{ratio:.3f}x** "
                f"({ms(a['p99'])} ms / {ms(b['p99'])} ms{of}); DESIGN target at most "
                f"{HALF_PEAK_P99_TARGET:.2f}x: **{'met' if ratio <= HALF_PEAK_P99_TARGET else 'NOT met'}**."
            )
            if loadgen:
                half_verdict += " Both latencies count from each request's due time."
            elif all("latency_from_schedule_us" in med[t] for t in ("coffer", "openbao")):
                sa = med["coffer"]["latency_from_schedule_us"]
                sb = med["openbao"]["latency_from_schedule_us"]
                half_verdict += (f" Counted from the ideal schedule instead: {sa['p99'] / sb['p99']:.3f}x "
                                 f"({ms(sa['p99'])} ms / {ms(sb['p99'])} ms).")
        else:
            missing = " and ".join(t for t in ("coffer", "openbao") if t not in half)
            half_verdict = f"p99 at half peak, coffer / OpenBao: n/a ({missing} not run)"

    ratio_rows = []
    for label, a, b in [
        ("coffer / OpenBao, read", ("coffer", "read"), ("openbao", "read")),
        # DESIGN.md: Vault-API reads within 10% of native reads, at least 10x OpenBao's.
        ("coffer Vault-API read / coffer native read", ("coffer", "vread"), ("coffer", "read")),
        ("coffer Vault-API read / OpenBao read (both KV v2)", ("coffer", "vread"), ("openbao", "read")),
        ("coffer / OpenBao, write", ("coffer", "write"), ("openbao", "write")),
        ("coffer read / hello", ("coffer", "read"), ("hello", "get")),
    ] + ([("coffer / OpenBao, read at half peak (open loop, medians)", "coffer", "openbao")]
         if half_on else []):
        src = med if isinstance(a, str) else runs
        if a in src and b in src:
            ra, rb = src[a], src[b]
            rps = "achieved_rps" if src is med else "rps"
            ratio_rows.append([
                label,
                f"{ra[rps] / rb[rps]:.2f}x",
                f"{ra['latency_us']['p50'] / rb['latency_us']['p50']:.2f}x",
                f"{ra['latency_us']['p99'] / rb['latency_us']['p99']:.2f}x",
            ])
        else:
            missing = " and ".join(
                str(k) if isinstance(k, str) else f"{k[0]} {k[1]}" for k in (a, b) if k not in src)
            ratio_rows.append([f"{label} ({missing} not run)", "n/a", "n/a", "n/a"])
    ratio_header = ["ratio", "requests/s", "p50", "p99"]

    audit = ("file audit device" if meta.get("openbao_audit", "1") == "1"
             else "**no** audit device (BENCH_OPENBAO_AUDIT=0)")
    coffer_audit = ("its audit log in `DATA_DIR/audit.log`"
                    if meta.get("coffer_audit", "1") == "1"
                    else "**a build from before the audit log** (BENCH_COFFER_AUDIT=0)")
    settings = (f"wrk -t{meta['threads']} -c{meta['connections']} -d{meta['duration']} --latency "
                f"(warm-up {meta['warmup']} per run, writes cycle over {meta['keys']} paths)")

    half_conns = meta.get("half_peak_connections", meta["connections"])
    if meta.get("half_peak_tool", "oha") == "loadgen":
        half_settings = (
            f"coffer-loadgen --rate RATE --connections {half_conns} --duration {meta['duration']} "
            f"--warmup {meta['warmup']}, RATE = half the wrk read req/s of the same target")
    half_runs = int(meta.get("half_peak_runs", "1"))
    if half_runs > 1:
        half_settings += (f", {half_runs} runs per target back to back on the same server "
                          "(each with its warm-up), compared by their medians")
    else:
        half_settings = (
            f"oha -q RATE -c{half_conns} -z{meta['duration']} --latency-correction, RATE = half "
            f"the wrk read req/s of the same target (warm-up {meta['warmup']} at that rate)")

    # terminal
    print()
    print(text_table(header, rows))
    print()
    print(text_table(ratio_header, ratio_rows, left=1))
    print()
    if half_on:
        print("read at half peak (open loop):")
        print(text_table(half_header, half_rows, left=1))
        print(half_verdict.replace("**", ""))
        for line in per_second:
            print(f"per-second p99 ms, {line}")
        print()
    print(f"settings: {settings}")
    print(f"machine:  {meta['nproc']} cores, {meta['cpu']}, {meta['mem']}")

    # markdown
    md = [
        "# Benchmark: coffer vs OpenBao vs bare hyper",
        "",
        f"Run {meta['date']} on commit {meta['git']}.",
        "",
        md_table(header, rows),
        "",
        "Ratios (>1 means coffer is the larger: better for requests/s, worse for latency):",
        "",
        md_table(ratio_header, ratio_rows, left=1),
        "",
    ]
    if half_on:
        md += [
            "## Read latency at half of peak load (open loop)",
            "",
            f"{half_settings}. {LOADGEN_METHOD if loadgen else OHA_METHOD}",
            "",
            md_table(half_header, half_rows, left=1),
            "",
            half_verdict,
            "",
        ]
        if per_second:
            md += ["p99 ms of each second of the measured run (requests by due time), to tell "
                   "a steady tail from a few stalls:", ""]
            md += [f"- {line}" for line in per_second]
            md += [""]
    md += [
        "## Setup",
        "",
        f"- Load: {settings}; same settings for every target; one target runs at a time.",
        f"- Targets: `coffer server --dev` (durable SQLite store, {coffer_audit}); "
        "OpenBao single node with "
        f"integrated raft storage, {audit}, KV v2 at `secret/`; "
        "`hello` = bare hyper 1 + tokio example answering `hello`. All plain HTTP on 127.0.0.1.",
        "- read: GET of one pre-written secret (coffer: its native API); vread: coffer's GET "
        "of the same secret through its Vault-compatible API (`/v1/secret/data/bench/read`, "
        "token in `X-Vault-Token`), the request OpenBao's read makes; write: a new version of one of the "
        f"{meta['keys']} `bench/w/N` secrets per request; hello: GET /.",
        "- wrk is closed-loop (Debian's wrk 4.1 has no wrk2 `-R` constant-rate mode), so "
        "its latencies suffer from coordinated omission; wrk shares the cores with the server.",
    ]
    if half_on:
        md += [
            f"- Read at half peak: {half_settings}; open loop, so those latencies do not "
            "suffer from coordinated omission; the generator shares the cores with the server too.",
        ]
    else:
        md += ["- No open-loop run at half peak (BENCH_HALF_PEAK=0 or no read load)."]
    md += [
        "",
        "## Machine",
        "",
        f"- {meta['nproc']} cores (nproc), CPU: {meta['cpu']}",
        f"- memory: {meta['mem']}; kernel: {meta['kernel']}; "
        f"data directories on {meta.get('datafs', 'unknown')}",
        f"- before the loads: CPUs {meta['cpubusy']}% busy over 1 s; "
        f"load average (1/5/15 min) {meta['loadavg']} (includes the build)",
        f"- {meta['wrk']}; {meta.get('loadgen') or meta.get('oha') or 'no half-peak generator run'}; "
        f"{meta.get('openbao', 'OpenBao not run')}; {meta['rustc']}",
        "",
        "## Command",
        "",
        "```sh",
        meta["command"],
        "```",
        "",
    ]
    out = pathlib.Path(results_md)
    out.write_text("\n".join(md))
    out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "runs": [runs[k] for k in keys],
                    "half_peak": [r for t in half_keys for r in half[t]],
                    "half_peak_median": {t: med[t] for t in half_keys}}, indent=2) + "\n")
    print(f"written:  {out} (and {out.with_suffix('.json').name})")


def median_run(rs: list) -> dict:
    """One run's worth of fields (from the run whose p99 is the median, the
    lower one of an even count) with each latency percentile, the achieved
    rate and the CPU figures replaced by their medians over the runs."""
    if len(rs) == 1:
        return rs[0]
    mid = sorted(rs, key=lambda r: r["latency_us"]["p99"])[(len(rs) - 1) // 2]
    out = dict(mid)
    for field in ("latency_us", "send_lag_us", "from_send_us", "latency_from_schedule_us",
                  "pacer_lag_us"):
        if all(field in r for r in rs):
            out[field] = {k: statistics.median(r[field][k] for r in rs) for k in mid[field]}
    for field in ("achieved_rps", "cpu_busy_pct", "generator_cpu_pct", "steal_pct"):
        if all(r.get(field) is not None for r in rs):
            out[field] = statistics.median(r[field] for r in rs)
    out["requests"] = sum(r["requests"] for r in rs)
    out["runs"] = len(rs)
    return out


def ms(us: float) -> str:
    return f"{us / 1000:.3f}"


def pct(v, suffix="", digits=0) -> str:
    return "-" if v is None else f"{v:.{digits}f}%{suffix}"


LOADGEN_METHOD = (
    "Request i is due at i/RATE after the start; each latency (p50 to max) counts from that due "
    "time to the end of the response, so any lateness of the generator and any wait for a free "
    "connection behind a slow response count against the server. *send lag*: from the due time to "
    "when the request was handed to its connection (generator lateness plus connection waits; its "
    "pacer wakes on a 200 us tick at the most, on an hrtimer). *CPUs busy*: both cores over the "
    "measured part, server and generator together; *stolen by the host*: the part of that the "
    "hypervisor gave to other guests (`steal` in /proc/stat; on a shared VM, a few percent of it "
    "comes with stalls of tens of milliseconds, and the tail is then the host's, not the "
    "server's); *generator CPU*: coffer-loadgen's own share, in percent of one core.")

OHA_METHOD = (
    "p50 to max are oha's: each latency counts from when oha's pacer "
    "released the request, not from when a connection got free, so queueing behind "
    "a slow response is included. The pacer runs on tokio's millisecond timer: it "
    "releases about a millisecond's worth of requests at once, typically ~1 ms after "
    "they were due. *p99 from schedule* counts from when each request was due on an "
    "exact constant-rate schedule (request i at i/RATE), so it includes that pacer lag "
    "too: an upper bound, where oha's p99 can miss a stall of the pacer itself. "
    "*CPUs busy*: both cores over the load window, server and oha together.")


def text_table(header, rows, left=2) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(h.ljust(w) if i < left else h.rjust(w)
                       for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def md_table(header, rows, left=2) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * left + ["---:"] * (len(header) - left)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
