#!/usr/bin/env bash
# The one test command (README "Test"): the runtime-js tests, then every Rust test on the
# quickjs engine (which builds offline), then the TypeScript SDK's tests against the
# binary those built. Extra arguments go to `cargo test`.
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
# The TypeScript SDK's tests, against real `atoll serve` processes of the binary just
# built (npm ci installs its dev dependencies from the registry).
if command -v npm >/dev/null 2>&1; then
  target="${CARGO_TARGET_DIR:-$PWD/target}"
  (cd sdk-ts && npm ci --no-audit --no-fund --silent && ATOLL_BIN="$target/debug/atoll" npm test)
else
  echo "test: npm is not installed; the SDK's tests need Node 20 and npm" >&2
  exit 1
fi
