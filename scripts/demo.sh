#!/usr/bin/env bash
# The main job. Part 1, `cairn demo`: a 6-node devnet (one cairn-node process each), a sample
# AI dataset published through one node and spread RS(4,2) over all six, 2 nodes killed, the
# dataset fetched by its CID through the survivors and checked byte for byte.
# Part 2, the embedded repo: the same kind of dataset in a local repo, damaged on disk, found
# by verify, repaired from the erasure code, fetched, and round-tripped through a CAR file.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release -p cairn-cli -p cairn-storage-node
CAIRN="$CARGO_TARGET_DIR/release/cairn"
WORK="${1:-$(mktemp -d -t cairn-demo.XXXXXX)}"
export CAIRN_REPO="$WORK/repo"
echo "== demo workspace: $WORK"

echo "==== part 1: the network (cairn demo)"
"$CAIRN" demo --dir "$WORK/network"

echo "==== part 2: the embedded repo"

echo "== 1. generate a sample AI dataset: 8 WebDataset tar shards of ~3 MiB (seeded)"
"$CAIRN" bench sample-dataset --out "$WORK/dataset" --shards 8 --shard-mib 3
tar -tf "$WORK/dataset/train/shard-000000.tar" | sed -n 1,4p  # sed reads all: no SIGPIPE under pipefail

echo "== 2. cairn put: one CID for the whole dataset"
"$CAIRN" --json put "$WORK/dataset" | tee "$WORK/put.json"
ROOT=$(sed -E 's/.*"root":"([^"]+)".*/\1/' "$WORK/put.json")
"$CAIRN" stat "$ROOT"
"$CAIRN" ls "$ROOT/train"

echo "== 3. damage the repo on disk: flip bytes inside RocksDB's blob files"
for f in "$CAIRN_REPO"/blocks/*.blob; do
  size=$(stat -c %s "$f")
  printf '\xde\xad\xbe\xef' | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc status=none
done

echo "== 4. cairn verify finds it (exit code 1 expected)"
if "$CAIRN" verify; then echo "verify should have failed"; exit 1; fi

echo "== 5. cairn repair rebuilds the damaged shards from parity"
"$CAIRN" repair
"$CAIRN" verify

echo "== 6. fetch by CID and compare every byte"
"$CAIRN" get "$ROOT" -o "$WORK/fetched"
diff -r "$WORK/dataset" "$WORK/fetched"
echo "   identical"

echo "== 7. CAR round trip into a second repo"
"$CAIRN" car export "$ROOT" -o "$WORK/dataset.car"
"$CAIRN" --repo "$WORK/repo2" car import "$WORK/dataset.car"
"$CAIRN" --repo "$WORK/repo2" cat "$ROOT/dataset.json"
echo "== demo done: root $ROOT"
