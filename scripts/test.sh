#!/usr/bin/env bash
# The one test command (README "Test"): every Rust test on the quickjs engine, which
# builds offline. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo clippy --no-default-features --features quickjs --all-targets -- -D warnings
cargo test --no-default-features --features quickjs "$@"
