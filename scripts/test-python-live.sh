#!/usr/bin/env bash
# The Python client (python/) against a real gateway: builds the release `cairn` (into
# $CARGO_TARGET_DIR, default $HOME/.cache/cairn-target; CAIRN_BIN=path skips the build), puts
# `cairn bench sample-dataset` into a temporary repo, serves it with `cairn serve` on a free
# loopback port, and runs python/'s integration tests against it
# (`scripts/test-python.sh -m integration`: every fetch mode, the path gateway's bytes and
# ranges, response types, ShardDataset and WebDataset over every sample). A skipped test
# fails the run: here every one of them must run. The server is stopped and the repo removed
# on exit. Arguments go to pytest, e.g. `./scripts/test-python-live.sh -x -k webdataset`.
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
cleanup() {
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export CAIRN_REPO="$WORK/repo"
unset CAIRN_API
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

export CAIRN_GATEWAY_TEST_URL="$URL" CAIRN_TEST_CID="$CID"
export CAIRN_TEST_FILE="train/shard-000001.tar" CAIRN_TEST_SHARDS="train/shard-*.tar"
set +e
"$ROOT/scripts/test-python.sh" -m integration -rs "$@" 2>&1 | tee "$WORK/pytest.out"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -eq 0 ] && grep -Eq '[0-9]+ skipped' "$WORK/pytest.out"; then
  echo "test-python-live: tests were skipped; against a live gateway every one must run" >&2
  exit 1
fi
exit "$rc"
