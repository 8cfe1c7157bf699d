#!/usr/bin/env bash
# The test command: installs what is missing, then runs every unit, property and integration
# test of the workspace (release profile, which the demo and benchmarks share) and the Python
# package's tests (against a fake gateway, then against `cairn serve`), after the setup
# scripts' own test and the check that no files of a crate import each other in a circle.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
bash scripts/test-libclang.sh
# no circles between the files of a crate (each crate's `use crate::` edges), and the check's own test
bash scripts/test-file-cycles.sh
python3 scripts/file-cycles.py
cargo test --release --workspace "$@"
# the Python package (python/): its own venv, pytest against a fake gateway that can lie
bash scripts/test-python.sh
# the same package against a real gateway: `cairn serve` over a sample dataset
bash scripts/test-python-live.sh
