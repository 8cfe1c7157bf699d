#!/usr/bin/env bash
# Ingest benchmark (`cairn bench ingest`, GitHub issue 20), each side a real command alternated
# with the other in one run: durable `cairn put` vs `dd conv=fdatasync` (and the put's peak
# RSS), `put --only-hash` vs blake3 on one thread, and `put --only-hash --profile
# unixfs-v1-2025` vs ipfs-car (same root CID required).
# Installs ipfs-car@3.1.0 with npm into $HOME/.cache/cairn/npm-ipfs-car on first use (needs
# Node.js >= 18 and npm) and builds the release `cairn` into $CARGO_TARGET_DIR (default
# $HOME/.cache/cairn-target). Arguments go to `cairn bench ingest`, e.g.
# `./scripts/bench-ingest.sh --dir /var/tmp --mib 512 --rounds 1`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

IPFS_CAR_VERSION=3.1.0
NPM_PREFIX="$HOME/.cache/cairn/npm-ipfs-car"
IPFS_CAR="$NPM_PREFIX/node_modules/.bin/ipfs-car"

if ! command -v node >/dev/null 2>&1; then
  echo "bench-ingest: Node.js >= 18 (node, and npm to install ipfs-car) is required: e.g. apt-get install nodejs npm" >&2
  exit 1
fi
# the version installed in $NPM_PREFIX, empty if none
installed() {
  node -e 'try { console.log(require(process.argv[1]).version) } catch (e) {}' \
    "$NPM_PREFIX/node_modules/ipfs-car/package.json"
}
if [ ! -x "$IPFS_CAR" ] || [ "$(installed)" != "$IPFS_CAR_VERSION" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "bench-ingest: npm is required to install ipfs-car@$IPFS_CAR_VERSION into $NPM_PREFIX (e.g. apt-get install npm)" >&2
    exit 1
  fi
  echo "bench-ingest: installing ipfs-car@$IPFS_CAR_VERSION into $NPM_PREFIX" >&2
  mkdir -p "$NPM_PREFIX"
  npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --loglevel=error "ipfs-car@$IPFS_CAR_VERSION" >&2
  if [ ! -x "$IPFS_CAR" ] || [ "$(installed)" != "$IPFS_CAR_VERSION" ]; then
    echo "bench-ingest: npm did not install ipfs-car@$IPFS_CAR_VERSION at $IPFS_CAR" >&2
    exit 1
  fi
fi

cargo build --release -q -p cairn-cli
exec "$CARGO_TARGET_DIR/release/cairn" bench ingest --ipfs-car "$IPFS_CAR" "$@"
