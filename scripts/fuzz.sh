#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 300) and prints how many inputs each executed.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-300}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(cid_parse dagpb_decode manifest_decode car_read erasure_reconstruct store_model)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1   # cargo-fuzz passes sanitizer flags that stable rustc accepts only so
for t in "${targets[@]}"; do
  features=()
  [ "$t" = store_model ] && features=(--features store)
  mkdir -p "corpus/$t"
  log="$(mktemp)"
  cargo fuzz run -O "${features[@]}" "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 >"$log" 2>&1 || { tail -40 "$log"; echo "fuzz: $t FAILED"; exit 1; }
  runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1 | grep -Eo '[0-9]+')
  echo "fuzz: $t ran ${runs:-?} inputs in ${secs}s with no crash"
done
