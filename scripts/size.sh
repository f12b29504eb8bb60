#!/usr/bin/env bash
# Prints the gzip -9 size of what a browser downloads from the built package (pkg/): the wasm, the JS glue
# (wasm-bindgen's module plus the entry module), and their sum. Run scripts/build.sh first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f pkg/wasm_token_manager_bg.wasm ] || { echo "[size] pkg/ is not built: run scripts/build.sh" >&2; exit 1; }
gz() { gzip -9 -c "$1" | wc -c; }
raw() { cat "$@" | wc -c; }
WASM=pkg/wasm_token_manager_bg.wasm
JS=(pkg/wasm_token_manager.js pkg/index.js)
w=$(gz "$WASM"); j=0
for f in "${JS[@]}"; do j=$((j + $(gz "$f"))); done  # served as separate files
printf '[size] wasm    %7d B raw  %7d B gzip -9\n' "$(raw "$WASM")" "$w"
printf '[size] JS glue %7d B raw  %7d B gzip -9\n' "$(raw "${JS[@]}")" "$j"
printf '[size] total                  %7d B gzip -9\n' "$((w + j))"
