# The book under docs/ is built with mdBook by a test (coffer-cli's docs
# checks), which fails when `mdbook` is missing.
#
# Installed with `cargo install` rather than linked into a test-only crate:
# it is compiled once per CI machine (and skipped when already there), while
# a library dependency would be compiled again by every `cargo test`,
# `cargo clippy --all-targets` and developer build of the workspace. The
# default features (serve, watch, search) are left out: building the book is
# all the test does, and without them about half as many crates compile.
# 0.5.4 is the newest release on crates.io when this was written.
MDBOOK_VERSION=0.5.4
if ! command -v mdbook >/dev/null 2>&1 || [ "$(mdbook --version 2>/dev/null)" != "mdbook v$MDBOOK_VERSION" ]; then
    cargo install -q mdbook --locked --version "$MDBOOK_VERSION" --no-default-features
fi
if ! command -v mdbook >/dev/null 2>&1; then
    echo "CI: mdbook is installed but not on PATH (is ~/.cargo/bin on it?)" >&2
    exit 1
fi
