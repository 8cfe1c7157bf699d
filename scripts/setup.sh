#!/usr/bin/env bash
# Installs what building Cairn needs on a fresh Debian/Ubuntu machine, if it is missing:
# libclang (RocksDB's bindings are generated with bindgen), a C/C++ compiler, and python3 (the
# file-circle check and the placement interop tests).
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/libclang.sh"
need=()
if ! find_libclang >/dev/null; then
  need+=(libclang-dev clang)
fi
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v mount >/dev/null 2>&1 || need+=(mount)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: Rust (cargo) is required: install it with rustup (https://rustup.rs)" >&2
  exit 1
fi
# One target directory outside the clone, shared by every checkout and by CI, so the RocksDB
# C++ build (tens of minutes on 2 cores) happens once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}"
mkdir -p "$CARGO_TARGET_DIR"
