#!/usr/bin/env bash
# The one test command (README "Test"): the runtime-js tests, then every Rust test on the
# quickjs engine, which builds offline. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/prerequisites.sh
# runtime-js unit tests (Node's built-in runner, no npm install needed).
if command -v node >/dev/null 2>&1; then
  node --test runtime-js/test/
else
  echo "test: node is not installed; the runtime-js tests and the webhook tests need Node 20" >&2
fi
cargo fmt --check
cargo clippy --no-default-features --features quickjs --all-targets -- -D warnings
cargo test --no-default-features --features quickjs "$@"
