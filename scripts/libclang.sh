#!/usr/bin/env bash
# Finds the libclang that bindgen (through clang-sys) would load, the way clang-sys searches:
# `$LIBCLANG_PATH` (a directory or the library itself) first, then the library directories
# below. Only `libclang.so`, `libclang.so.*`, `libclang-<N>.so` and `libclang-<N>.so.*` count,
# and only when the path resolves (a dangling symlink does not): `libclang-cpp.so.*`, which many
# base images ship without libclang itself, is a different library that bindgen cannot use.
#
# Sourced by scripts/setup.sh; `find_libclang [ROOT]` prints the first library found and
# returns 0, or returns 1. ROOT (default /) prefixes every searched directory, so
# scripts/test-libclang.sh can run it against a fake library tree.

# Prints the libclang files of directory $1 that clang-sys would load, one a line.
libclang_in_dir() {
  local dir="$1" f base
  [ -d "$dir" ] || return 0
  for f in "$dir"/libclang.so "$dir"/libclang.so.* "$dir"/libclang-*.so "$dir"/libclang-*.so.*; do
    [ -e "$f" ] || continue # unexpanded glob or dangling link
    base="${f##*/}"
    case "$base" in
      libclang-cpp.so | libclang-cpp.so.*) continue ;;
      libclang.so | libclang.so.*) ;;
      libclang-[0-9]*.so | libclang-[0-9]*.so.*) ;;
      *) continue ;;
    esac
    printf '%s\n' "$f"
  done
}

find_libclang() {
  local root="${1:-}" dir found
  root="${root%/}"
  if [ -n "${LIBCLANG_PATH:-}" ]; then
    if [ -f "$LIBCLANG_PATH" ]; then
      printf '%s\n' "$LIBCLANG_PATH"
      return 0
    fi
    found="$(libclang_in_dir "$LIBCLANG_PATH" | head -n 1)"
    if [ -n "$found" ]; then
      printf '%s\n' "$found"
      return 0
    fi
  fi
  for dir in "$root"/usr/lib/llvm-*/lib "$root"/usr/lib/x86_64-linux-gnu "$root"/usr/lib/aarch64-linux-gnu \
    "$root"/usr/lib64 "$root"/usr/lib "$root"/usr/local/lib "$root"/usr/local/llvm/lib; do
    found="$(libclang_in_dir "$dir" | head -n 1)"
    if [ -n "$found" ]; then
      printf '%s\n' "$found"
      return 0
    fi
  done
  return 1
}
