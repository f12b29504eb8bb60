#!/usr/bin/env bash
# Prints the gzip -9 size of what a browser downloads from the built package (pkg/): the wasm, the JS modules
# (every .js file pkg/package.json lists, except the inline copy of the wasm, which a production build that serves
# the .wasm never downloads, and the DPoP keyring, downloaded only with the `dpop` option, printed on its own), and
# their sum, and fails when the sum exceeds the budget.
#
#   scripts/size.sh               the budget is size-budget.json's totalGzipBytes
#   scripts/size.sh --budget N    the budget is N bytes (tests/e2e/size-budget.test.mjs checks that a low N fails)
#
# Exit status: 0 within the budget, 1 over it or pkg/ not built, 2 for a bad argument. Run scripts/build.sh first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
budget=""
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) [ $# -ge 2 ] || { echo "[size] --budget needs a number of bytes" >&2; exit 2; }; budget="$2"; shift 2 ;;
    *) echo "[size] unknown argument: $1 (usage: scripts/size.sh [--budget BYTES])" >&2; exit 2 ;;
  esac
done
if [ -z "$budget" ]; then
  budget="$(node -p 'require("./size-budget.json").totalGzipBytes')"
fi
[[ "$budget" =~ ^[0-9]+$ ]] || { echo "[size] the budget must be a whole number of bytes, not '$budget'" >&2; exit 2; }
[ -f pkg/wasm_token_manager_bg.wasm ] || { echo "[size] pkg/ is not built: run scripts/build.sh" >&2; exit 1; }
gz() { gzip -9 -c "$1" | wc -c; }
raw() { cat "$@" | wc -c; }
WASM=pkg/wasm_token_manager_bg.wasm
mapfile -t JS < <(node -e '
  for (const f of require("./pkg/package.json").files) if (f.endsWith(".js") && !f.endsWith(".inline.js") && !f.endsWith("_dpop.js")) console.log("pkg/" + f);
')
DPOP=pkg/wasm_token_manager_dpop.js
w=$(gz "$WASM"); j=0
for f in "${JS[@]}"; do j=$((j + $(gz "$f"))); done  # served as separate files
total=$((w + j))
printf '[size] wasm    %7d B raw  %7d B gzip -9\n' "$(raw "$WASM")" "$w"
printf '[size] JS glue %7d B raw  %7d B gzip -9\n' "$(raw "${JS[@]}")" "$j"
printf '[size] total                  %7d B gzip -9 (budget %d B)\n' "$total" "$budget"
if [ -f "$DPOP" ]; then
  d=$(gz "$DPOP")
  printf '[size] DPoP    %7d B raw  %7d B gzip -9 (only with the dpop option; with it: %d B)\n' "$(raw "$DPOP")" "$d" "$((total + d))"
fi
if [ "$total" -gt "$budget" ]; then
  echo "[size] error: the package is $total B gzip -9, $((total - budget)) B over its budget of $budget B." >&2
  echo "[size] Make it smaller, or raise totalGzipBytes in size-budget.json deliberately, in a commit that says why." >&2
  exit 1
fi
