#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 60), one after another, on the
# nightly toolchain with cargo-fuzz (`cargo install cargo-fuzz`). Each target
# starts from its checked-in seeds in corpus/TARGET/ and keeps what it finds
# there (only seed-* files are committed). A crash stops the run with the
# target's exit status; its input is saved under artifacts/TARGET/, and
# becomes a regression test in the crate it concerns.
#
#   fuzz/run.sh 600                 # every target, ten minutes each
#   fuzz/run.sh 30 policy dotenv    # some targets
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O "${targets[@]/#/}" >/dev/null 2>&1 || cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "fuzz: $t for ${seconds}s"
    # -rss_limit_mb: the API target keeps a whole node in memory.
    cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 |
        grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|.*panicked|Done )' || true
    status=${PIPESTATUS[0]}
    if ((status != 0)); then
        echo "fuzz: $t failed (exit $status); the input is in fuzz/artifacts/$t/" >&2
        exit "$status"
    fi
done
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash"
