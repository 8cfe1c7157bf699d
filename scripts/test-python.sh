#!/usr/bin/env bash
# Tests the Python package (python/): makes a virtualenv in $CAIRN_VENV (default
# $HOME/.cache/cairn-venv), installs ./python with its test extras from PyPI (pytest, fsspec,
# webdataset, blake3, mmh3; never torch, which is gigabytes: its tests skip), and runs pytest.
# Installs python3 and python3-venv with apt-get on a fresh Debian/Ubuntu machine if missing.
# Arguments go to pytest, e.g. `./scripts/test-python.sh -k lying -x`.
# The gateway integration tests run only with CAIRN_GATEWAY_TEST_URL and CAIRN_TEST_CID set.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CAIRN_VENV:-$HOME/.cache/cairn-venv}"

need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
# Debian's python3 ships venv without ensurepip (pip) until python3-venv is installed
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need+=(python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "test-python: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# A venv whose python has gone (the interpreter was upgraded or removed) is made again.
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "$ROOT/python[test]"
# Rebuilt every run, not editable: the tests see the package as users get it (entry points too).
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$ROOT/python"

cd "$ROOT/python"
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test-python: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
