#!/usr/bin/env bash
# Network benchmark: retrieval of a 1 GiB file from a 6-node devnet (all up, then 2 of 6
# killed) vs iroh's sendme moving the same file over loopback, plus node peak RSS.
# Installs sendme from crates.io into $HOME/.cache/sendme on first use (~10 min build).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release -p cairn-cli -p cairn-storage-node
SENDME_ROOT="$HOME/.cache/sendme"
if [ ! -x "$SENDME_ROOT/bin/sendme" ]; then
  CARGO_TARGET_DIR="$HOME/.cache/sendme-target" cargo install sendme --locked --version 0.37.1 --root "$SENDME_ROOT"
fi
"$CARGO_TARGET_DIR/release/cairn" bench net --sendme "$SENDME_ROOT/bin/sendme" "$@"
