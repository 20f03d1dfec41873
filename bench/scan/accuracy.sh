#!/usr/bin/env bash
# Precision and recall of coffer scan beside detect-secrets, CredSweeper and
# Kingfisher (all from PyPI), on one freshly generated labelled corpus, in
# one run.
#
# usage: bench/scan/accuracy.sh [COPIES]   (from the repository root; needs
# `pip install detect-secrets credsweeper kingfisher-bin` and a release build:
# cargo build --release -p coffer-cli)
set -euo pipefail
cd "$(dirname "$0")/../.."
copies=${1:-10}
coffer=${COFFER:-target/release/coffer}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus=$work/corpus
cargo run -q -p coffer-scan --example gen_corpus -- "$corpus" "$copies"

case $coffer in /*) ;; *) coffer=$PWD/$coffer ;; esac
(cd "$corpus" && "$coffer" scan --json . >"$work/coffer.json" 2>/dev/null) || true
(cd "$corpus" && detect-secrets scan --all-files . >"$work/detect-secrets.json")
(cd "$corpus" && credsweeper --path . --save-json "$work/credsweeper.json" >/dev/null 2>&1) || true
(cd "$corpus" && kingfisher scan . --no-validate --no-update-check --format json \
    --output "$work/kingfisher.json" >/dev/null 2>&1) || true

python3 bench/scan/score.py "$corpus" \
    coffer="$work/coffer.json" \
    detect-secrets="$work/detect-secrets.json" \
    credsweeper="$work/credsweeper.json" \
    kingfisher="$work/kingfisher.json"
