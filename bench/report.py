#!/usr/bin/env python3
"""Summarise the wrk runs of bench/run.sh.

usage: report.py META_FILE RUNS_DIR RESULTS_MD

META_FILE holds key=value lines (machine, tool versions, settings, command).
RUNS_DIR holds one TARGET-LOAD.json per measured run (the BENCH_JSON line of
bench/wrk/report.lua plus target and load). Prints a table on stdout and writes
the same as markdown to RESULTS_MD, with the raw numbers beside it as .json.
"""

import json
import pathlib
import sys

ORDER = [("coffer", "read"), ("coffer", "write"), ("openbao", "read"), ("openbao", "write"),
         ("hello", "get")]


def main() -> None:
    meta_file, runs_dir, results_md = sys.argv[1:4]
    meta = {}
    for line in pathlib.Path(meta_file).read_text().splitlines():
        key, _, value = line.partition("=")
        meta[key] = value

    runs = {}
    for path in sorted(pathlib.Path(runs_dir).glob("*.json")):
        r = json.loads(path.read_text())
        runs[(r["target"], r["load"])] = r
    keys = [k for k in ORDER if k in runs] + sorted(k for k in runs if k not in ORDER)

    header = ["target", "load", "requests/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "requests"]
    rows = []
    for k in keys:
        r = runs[k]
        lat = r["latency_us"]
        rows.append([k[0], k[1], f"{r['rps']:,.0f}", ms(lat["p50"]), ms(lat["p99"]),
                     ms(lat["p999"]), ms(lat["max"]), f"{r['requests']:,}"])

    ratio_rows = []
    for label, a, b in [
        ("coffer / OpenBao, read", ("coffer", "read"), ("openbao", "read")),
        ("coffer / OpenBao, write", ("coffer", "write"), ("openbao", "write")),
        ("coffer read / hello", ("coffer", "read"), ("hello", "get")),
    ]:
        if a in runs and b in runs:
            ra, rb = runs[a], runs[b]
            ratio_rows.append([
                label,
                f"{ra['rps'] / rb['rps']:.2f}x",
                f"{ra['latency_us']['p50'] / rb['latency_us']['p50']:.2f}x",
                f"{ra['latency_us']['p99'] / rb['latency_us']['p99']:.2f}x",
            ])
        else:
            missing = " and ".join(f"{t} {l}" for t, l in (a, b) if (t, l) not in runs)
            ratio_rows.append([f"{label} ({missing} not run)", "n/a", "n/a", "n/a"])
    ratio_header = ["ratio", "requests/s", "p50", "p99"]

    audit = ("file audit device" if meta.get("openbao_audit", "1") == "1"
             else "**no** audit device (BENCH_OPENBAO_AUDIT=0)")
    settings = (f"wrk -t{meta['threads']} -c{meta['connections']} -d{meta['duration']} --latency "
                f"(warm-up {meta['warmup']} per run, writes cycle over {meta['keys']} paths)")

    # terminal
    print()
    print(text_table(header, rows))
    print()
    print(text_table(ratio_header, ratio_rows, left=1))
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
        "## Setup",
        "",
        f"- Load: {settings}; same settings for every target; one target runs at a time.",
        "- Targets: `coffer server --dev` (durable SQLite store); OpenBao single node with "
        f"integrated raft storage, {audit}, KV v2 at `secret/`; "
        "`hello` = bare hyper 1 + tokio example answering `hello`. All plain HTTP on 127.0.0.1.",
        "- read: GET of one pre-written secret; write: a new version of one of the "
        f"{meta['keys']} `bench/w/N` secrets per request; hello: GET /.",
        "- wrk is closed-loop (Debian's wrk 4.1 has no wrk2 `-R` constant-rate mode), so "
        "latencies suffer from coordinated omission; wrk shares the cores with the server.",
        "",
        "## Machine",
        "",
        f"- {meta['nproc']} cores (nproc), CPU: {meta['cpu']}",
        f"- memory: {meta['mem']}; kernel: {meta['kernel']}; "
        f"data directories on {meta.get('datafs', 'unknown')}",
        f"- before the loads: CPUs {meta['cpubusy']}% busy over 1 s; "
        f"load average (1/5/15 min) {meta['loadavg']} (includes the build)",
        f"- {meta['wrk']}; {meta.get('openbao', 'OpenBao not run')}; {meta['rustc']}",
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
        json.dumps({"meta": meta, "runs": [runs[k] for k in keys]}, indent=2) + "\n")
    print(f"written:  {out} (and {out.with_suffix('.json').name})")


def ms(us: float) -> str:
    return f"{us / 1000:.3f}"


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
