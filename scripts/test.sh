#!/usr/bin/env bash
# The test command: installs what is missing, then runs every unit, property and integration
# test of the workspace (release profile, which the demo and benchmarks share), after the
# setup scripts' own test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
bash scripts/test-libclang.sh
cargo test --release --workspace "$@"
