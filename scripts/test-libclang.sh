#!/usr/bin/env bash
# Tests scripts/libclang.sh's detection against fake library trees: it must find what bindgen
# (clang-sys) loads and nothing else. Run by scripts/test.sh; prints "N passed, N failed".
set -uo pipefail
source "$(dirname "$0")/libclang.sh"

pass=0
fail=0
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# expect NAME WANT(found|missing) ROOT [LIBCLANG_PATH]
expect() {
  local name="$1" want="$2" root="$3" got
  if LIBCLANG_PATH="${4:-}" find_libclang "$root" >/dev/null; then got=found; else got=missing; fi
  if [ "$got" = "$want" ]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL $name: want $want, got $got" >&2
  fi
}

tree() { # a fresh fake root with the given files (a "->" pair makes a symlink)
  local r="$tmp/$1" f
  shift
  mkdir -p "$r"
  for f in "$@"; do
    if [[ "$f" == *"->"* ]]; then
      mkdir -p "$(dirname "$r/${f%%->*}")"
      ln -s "${f##*->}" "$r/${f%%->*}"
    else
      mkdir -p "$(dirname "$r/$f")"
      : >"$r/$f"
    fi
  done
  printf '%s' "$r"
}

# Debian's base image: libclang-cpp only (the regression: the old glob took it for libclang)
expect "libclang-cpp only" missing "$(tree cpp usr/lib/llvm-14/lib/libclang-cpp.so.14 \
  'usr/lib/x86_64-linux-gnu/libclang-cpp.so.14->../llvm-14/lib/libclang-cpp.so.14')"
expect "nothing at all" missing "$(tree empty usr/lib/placeholder)"
# libclang-dev on Debian: libclang.so -> libclang-14.so.1
expect "libclang-dev" found "$(tree dev usr/lib/llvm-14/lib/libclang-14.so.1 \
  'usr/lib/llvm-14/lib/libclang.so->libclang-14.so.1')"
# libclang1-14 alone (runtime package): versioned name only
expect "versioned only" found "$(tree rt usr/lib/x86_64-linux-gnu/libclang-14.so.14.0.6)"
expect "libclang.so.1" found "$(tree so1 usr/lib64/libclang.so.1)"
# a link whose target is gone does not count
expect "dangling link" missing "$(tree dangling 'usr/lib/llvm-15/lib/libclang.so->libclang-15.so.1')"
# other libclang-* files that are not the library
expect "static archives only" missing "$(tree static usr/lib/llvm-14/lib/libclang.a \
  usr/lib/llvm-14/lib/libclangBasic.a)"
# LIBCLANG_PATH as a directory and as the library file
lp="$(tree lp opt/llvm/lib/libclang.so)"
expect "LIBCLANG_PATH directory" found "$(tree lpempty usr/lib/x)" "$lp/opt/llvm/lib"
expect "LIBCLANG_PATH file" found "$(tree lpempty2 usr/lib/x)" "$lp/opt/llvm/lib/libclang.so"
expect "LIBCLANG_PATH without libclang" missing "$(tree lpbad usr/lib/x)" \
  "$(tree lpcpp opt/lib/libclang-cpp.so.14)/opt/lib"

echo "libclang detection: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
