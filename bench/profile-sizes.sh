#!/usr/bin/env bash
# Measures the gzip -9 size of the optimized wasm under variations of Cargo.toml's [profile.wasm-release]
# (the figures quoted there and in the README). Slow: one full release build per line. Run from the repo root
# after scripts/bootstrap.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=/dev/null
source .toolchain/env
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/profile-sizes}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
run() { # label, then environment overrides
  local label=$1; shift
  env "$@" cargo build -q --profile wasm-release --lib --target wasm32-unknown-unknown
  wasm-bindgen --target web --out-dir "$OUT" --out-name m \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/wasm_token_manager.wasm"
  wasm-opt -Oz --strip-debug --strip-producers --enable-bulk-memory --enable-bulk-memory-opt \
    --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals --enable-reference-types \
    --enable-multivalue -o "$OUT/o.wasm" "$OUT/m_bg.wasm"
  printf '%-34s %7d B raw  %6d B gzip -9\n' "$label" "$(wc -c <"$OUT/o.wasm")" "$(gzip -9c "$OUT/o.wasm" | wc -c)"
}
run "as configured (z, cgu 1)"
run "opt-level s"        CARGO_PROFILE_WASM_RELEASE_OPT_LEVEL=s
run "opt-level 3"        CARGO_PROFILE_WASM_RELEASE_OPT_LEVEL=3
run "codegen-units 16"   CARGO_PROFILE_WASM_RELEASE_CODEGEN_UNITS=16
run "lto = true"         CARGO_PROFILE_WASM_RELEASE_LTO=true
run "panic = abort"      CARGO_PROFILE_WASM_RELEASE_PANIC=abort
