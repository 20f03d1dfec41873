#!/usr/bin/env python3
"""Scanning throughput in MB/s on a large real tree no one here wrote (the
crate sources under the cargo registry), coffer scan beside Kingfisher and
detect-secrets, in one run.

Each scanner reads the same tree; MB/s is the tree's bytes (regular files)
over wall-clock time. detect-secrets is run on a subset (the first crates,
sorted by name, up to --subset-mb) because it is too slow for the whole
tree; its rate is that subset's bytes over its time.

usage: bench/scan/throughput.py [--tree DIR] [--threads N] [--subset-mb MB]
(from the repository root, after `cargo build --release -p coffer-cli` and
`pip install detect-secrets kingfisher-bin`)
"""
import argparse
import glob
import os
import shutil
import subprocess
import tempfile
import time


def tree_bytes(root):
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def timed(cmd, cwd=None):
    start = time.monotonic()
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start, r.returncode


def main():
    default_tree = glob.glob(os.path.expanduser("~/.cargo/registry/src/*"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", default=default_tree[0] if default_tree else None)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--subset-mb", type=float, default=10.0)
    ap.add_argument("--coffer", default="target/release/coffer")
    a = ap.parse_args()
    size = tree_bytes(a.tree)
    print(f"tree: the cargo registry's crate sources, {size / 1e6:.1f} MB; {os.cpu_count()} cores")
    rows = []
    for threads in sorted({1, a.threads}):
        t, rc = timed([a.coffer, "scan", a.tree, "--threads", str(threads), "--format", "json"])
        rows.append((f"coffer scan ({threads} thread{'s' if threads > 1 else ''})", size, t, threads, rc))
        with tempfile.TemporaryDirectory() as out:
            t, rc = timed(["kingfisher", "scan", a.tree, "--no-validate", "--no-update-check",
                           "-j", str(threads), "--format", "json", "--output",
                           os.path.join(out, "k.json")])
        rows.append((f"kingfisher --no-validate (-j {threads})", size, t, threads, rc))
    # detect-secrets on a subset: whole crates, in name order, up to the limit.
    with tempfile.TemporaryDirectory() as sub:
        taken = 0
        for name in sorted(os.listdir(a.tree)):
            src = os.path.join(a.tree, name)
            n = tree_bytes(src)
            if taken and taken + n > a.subset_mb * 1e6:
                break
            shutil.copytree(src, os.path.join(sub, name), symlinks=True)
            taken += n
        t, rc = timed(["detect-secrets", "scan", "--all-files", "."], cwd=sub)
        # detect-secrets spreads files over a process per core.
        rows.append((f"detect-secrets (subset {taken / 1e6:.1f} MB)", taken, t, os.cpu_count(), rc))
    print(f"{'scanner':<40} {'seconds':>8} {'MB/s':>8} {'MB/s per thread':>16}")
    for name, n, t, threads, rc in rows:
        print(f"{name:<40} {t:>8.2f} {n / 1e6 / t:>8.1f} {n / 1e6 / t / threads:>16.1f}")


main()
