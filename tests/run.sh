#!/usr/bin/env bash
# Runs every test liyu has, on a fresh machine with only the Rust toolchain: whatever else the tests
# need is installed here when it is missing.
#
#   tests/run.sh            the normal suite (formatting, lints, unit and integration tests)
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

# The score script of ../shared/eval is run by the tests.
if ! need python3; then
    apt-get update -qq && apt-get install -y -qq python3 >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --release --quiet
