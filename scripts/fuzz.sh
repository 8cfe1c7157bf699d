#!/usr/bin/env bash
# Builds the fuzz targets, then runs each for SECONDS (default 300) and prints how many inputs
# it executed. Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-300}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(cid_parse dagpb_decode manifest_decode cbor_skim car_read erasure_reconstruct store_model wire_decode record_validate proof_decode audit_decode tier_record)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1 # cargo-fuzz passes sanitizer flags that stable rustc accepts only so
cargo fuzz build -O --features store,node,net,proofs
bin=target/x86_64-unknown-linux-gnu/release
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log="$(mktemp)"
  "$bin/$t" "corpus/$t" -max_total_time="$secs" -rss_limit_mb=4096 >"$log" 2>&1 || { tail -40 "$log"; echo "fuzz: $t FAILED"; exit 1; }
  runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1 | grep -Eo '[0-9]+')
  echo "fuzz: $t ran ${runs:-?} inputs in ${secs}s with no crash"
done
