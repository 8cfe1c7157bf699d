#!/usr/bin/env bash
# The Python client (python/) against a real gateway: builds the release `cairn` (into
# $CARGO_TARGET_DIR, default $HOME/.cache/cairn-target; CAIRN_BIN=path skips the build), puts
# `cairn bench sample-dataset` into a temporary repo, serves it with `cairn serve` on a free
# loopback port, and runs python/'s integration tests against it
# (`scripts/test-python.sh -m integration`: every fetch mode, the path gateway's bytes and
# ranges, response types, ShardDataset and WebDataset over every sample). A skipped test
# fails the run: here every one of them must run. The server is stopped and the repo removed
# on exit. Then the same tests against a devnet (6 `cairn-node` processes, proofs off): the
# dataset is put through node 0 and read through the gateway of the last node, which holds only
# part of it; ShardDataset registers its plans with that node's API (CAIRN_API, CAIRN_API_TOKEN).
# Arguments go to pytest, e.g. `./scripts/test-python-live.sh -x -k webdataset`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}"
if [ -n "${CAIRN_BIN:-}" ]; then
  CAIRN="$CAIRN_BIN"
else
  (cd "$ROOT" && cargo build --release -q -p cairn-cli)
  CAIRN="$CARGO_TARGET_DIR/release/cairn"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/cairn-python-live.XXXXXX")"
SERVER=""
DEVNET=""
cleanup() {
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
  fi
  if [ -n "$DEVNET" ]; then
    "$CAIRN" devnet down --dir "$DEVNET" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export CAIRN_REPO="$WORK/repo"
unset CAIRN_API CAIRN_API_TOKEN
"$CAIRN" bench sample-dataset --out "$WORK/ds"
CID="$("$CAIRN" put "$WORK/ds")"
echo "test-python-live: dataset $CID ($(du -sh "$WORK/ds" | cut -f1))" >&2

"$CAIRN" serve --listen 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER=$!
URL=""
for _ in $(seq 1 300); do
  URL="$(sed -n 's/^gateway listening on //p' "$WORK/serve.out")"
  [ -n "$URL" ] && break
  if ! kill -0 "$SERVER" 2>/dev/null; then
    echo "test-python-live: cairn serve exited:" >&2
    cat "$WORK/serve.err" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$URL" ]; then
  echo "test-python-live: cairn serve printed no address within 30 s" >&2
  exit 1
fi
echo "test-python-live: cairn serve at $URL" >&2

# Runs the integration tests against gateway $1 for dataset $2; every test must run.
run_tests() {
  export CAIRN_GATEWAY_TEST_URL="$1" CAIRN_TEST_CID="$2"
  export CAIRN_TEST_FILE="train/shard-000001.tar" CAIRN_TEST_SHARDS="train/shard-*.tar"
  set +e
  "$ROOT/scripts/test-python.sh" -m integration -rs "${@:3}" 2>&1 | tee "$WORK/pytest.out"
  local rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -eq 0 ] && grep -Eq '[0-9]+ skipped' "$WORK/pytest.out"; then
    echo "test-python-live: tests were skipped; against a live gateway every one must run" >&2
    return 1
  fi
  return "$rc"
}

run_tests "$URL" "$CID" "$@"
kill "$SERVER" 2>/dev/null || true
wait "$SERVER" 2>/dev/null || true
SERVER=""

# a devnet: put through node 0, read through the last node's gateway
DEVNET="$WORK/devnet"
"$CAIRN" devnet up --nodes 6 --no-proofs --dir "$DEVNET" >"$WORK/devnet.out"
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['nodes'][int(sys.argv[2])][sys.argv[3]])" "$DEVNET/devnet.json" "$1" "$2"; }
API0="http://$(field 0 api)"
CID2="$(CAIRN_API="$API0" CAIRN_API_TOKEN="$(cat "$(field 0 repo)/api.token")" "$CAIRN" put "$WORK/ds")"
[ "$CID2" = "$CID" ] || { echo "test-python-live: the devnet gave $CID2, the repo $CID" >&2; exit 1; }
GW5="$(field 5 gateway)"
echo "test-python-live: devnet dataset $CID2, reading through node 5's gateway $GW5" >&2
export CAIRN_API="http://$(field 5 api)" CAIRN_API_TOKEN="$(cat "$(field 5 repo)/api.token")"
run_tests "$GW5" "$CID2" "$@"
