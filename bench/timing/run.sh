#!/bin/sh
# dudect-style timing tests (see src/main.rs for what each one compares).
#
#   bench/timing/run.sh                 every test, 1,000,000 measurements each
#                                       (login: 2,000; each is an Argon2id run)
#   COFFER_TIMING_N=100000 bench/timing/run.sh --filter unseal
#   COFFER_TIMING_SAME=1 bench/timing/run.sh --filter token
#                                       the harness checking itself: both
#                                       classes get the same input, so any
#                                       |t| above 4.5 is the host's or the
#                                       harness's, not the code's
#
# Prints, per test, the number of measurements and dudect's max |t| (over
# its percentile crops; |t| < 4.5 is "no difference found") and max tau.
# Runs at nice 5 so that it does not starve the machine; a busy machine
# adds noise to both classes alike (they are interleaved at random).
set -eu
cd "$(dirname "$0")"
cargo build --release --quiet
exec nice -n 5 target/release/coffer-timing "$@"
