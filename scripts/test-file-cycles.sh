#!/usr/bin/env bash
# Tests scripts/file-cycles.py on fake crates: a circle through `use crate::`, one through a
# top-level `super::`, and what must not count (strings, comments, `use super::*` in an inline
# test module, a file naming itself).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

crate() { # crate DIR: an empty crate at DIR
  mkdir -p "$1/src"
  printf '[package]\nname = "x"\n' > "$1/Cargo.toml"
}

check() { # check NAME WANT_EXIT DIR [WANT_TEXT]
  local out rc
  out="$(python3 "$here/file-cycles.py" "$3" 2>&1)"
  rc=$?
  if [ "$rc" = "$2" ] && { [ -z "${4:-}" ] || grep -qF -- "$4" <<<"$out"; }; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL $1: exit $rc (want $2)"
    echo "$out" | sed 's/^/    /'
  fi
}

# 1. a.rs <-> b.rs through `use crate::`
d="$tmp/one"; crate "$d"
printf 'mod a;\nmod b;\n' > "$d/src/lib.rs"
printf 'use crate::b::B;\npub struct A;\n' > "$d/src/a.rs"
printf 'use crate::{a::A, b as _};\npub struct B;\n' > "$d/src/b.rs"
check "use crate:: circle" 1 "$d" "src/a.rs -> src/b.rs -> src/a.rs"

# 2. no circle: strings, comments, the inline test module's super::*, self-reference
d="$tmp/two"; crate "$d"
printf 'pub mod a;\npub mod b;\n' > "$d/src/lib.rs"
printf '//! docs name crate::b::B\npub struct A;\nfn f() -> &'"'"'static str { "crate::b::B" }\nfn g() { let _ = crate::a::A; }\n' > "$d/src/a.rs"
printf 'use crate::a::A;\npub struct B(A);\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n' > "$d/src/b.rs"
check "no circle" 0 "$d" "no circles between files"

# 3. circle through a folder module and a top-level super::
d="$tmp/three"; crate "$d"
printf 'mod m;\n' > "$d/src/lib.rs"
mkdir -p "$d/src/m"
printf 'mod x;\nmod y;\n' > "$d/src/m/mod.rs"
printf 'use super::y::Y;\npub struct X;\n' > "$d/src/m/x.rs"
printf 'pub struct Y;\nfn f() { let _ = crate::m::x::X; }\n' > "$d/src/m/y.rs"
check "super:: circle" 1 "$d" "src/m/x.rs -> src/m/y.rs -> src/m/x.rs"

# 4. the same names in two crates of one tree do not join
d="$tmp/four"; crate "$d/p"; crate "$d/q"
printf 'mod a;\n' > "$d/p/src/lib.rs"; printf 'pub struct A;\n' > "$d/p/src/a.rs"
printf 'mod a;\nmod b;\n' > "$d/q/src/lib.rs"
printf 'pub struct A;\n' > "$d/q/src/a.rs"; printf 'use crate::a::A;\n' > "$d/q/src/b.rs"
check "two crates" 0 "$d"

# 5. a folder module that uses its child (relative path) while the child uses it: a circle;
#    the same pair with only a `pub use` re-export in the parent: none
d="$tmp/five"; crate "$d"
printf 'mod s;\n' > "$d/src/lib.rs"
mkdir -p "$d/src/s"
printf 'mod m;\npub trait T {}\nfn f() -> m::Mem { m::Mem }\n' > "$d/src/s/mod.rs"
printf 'use super::T;\npub struct Mem;\nimpl T for Mem {}\n' > "$d/src/s/m.rs"
check "relative child path circle" 1 "$d" "src/s/m.rs -> src/s/mod.rs -> src/s/m.rs"
printf 'mod m;\npub use m::Mem;\npub trait T {}\n' > "$d/src/s/mod.rs"
check "pub use facade" 0 "$d"

echo "file-cycles: $pass passed, $fail failed"
[ "$fail" = 0 ]
