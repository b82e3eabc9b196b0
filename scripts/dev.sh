#!/usr/bin/env bash
# The dev loop in one command: installs the build prerequisites if needed, builds, and
# starts `atoll dev` (embedded storage, a dev org, app and keys, the sample agents).
# Extra arguments go to `atoll dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/prerequisites.sh
exec cargo run --no-default-features --features quickjs -- dev "$@"
