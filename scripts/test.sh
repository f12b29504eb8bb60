#!/usr/bin/env bash
# Runs every test tier of wasm-token-manager, after installing what is missing and building the package:
#
#   0. lint        cargo fmt --check; cargo clippy -D warnings, native (workspace) and wasm32 (the package)
#   1. native      cargo test --workspace      (the pure core, the reference server, the JWKS verifier and its API)
#   2. browser     wasm-pack test --headless --chrome, then --firefox   (the browser shell)
#   3. end-to-end  node --test tests/e2e/     (Playwright + headless Chromium, the real server, the packed package,
#                                             the consumer fixtures, the checked-in TypeScript API; the DPoP
#                                             scenarios in Firefox ESR through selenium-webdriver + geckodriver)
#   4. catalogue   node scripts/catalogue.mjs  (docs/CATALOGUE.md lists every case ID; every ID a test names is listed,
#                                             every case marked covered is named by the tests it cites)
#   5. fuzz        scripts/fuzz.sh --short    (every cargo fuzz target for a few seconds; skipped, loudly, without
#                                             a nightly toolchain or cargo-fuzz)
#   6. api-fuzz    scripts/api-fuzz.sh        (schemathesis against the live server and server/openapi.json: no 5xx,
#                                             no answer outside the contract; skipped, loudly, without schemathesis)
#
# Fails if any tier fails or runs zero tests (a tier that cannot run here says so and counts as skipped);
# prints a count per tier. Logs go to target/test-logs/.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
T0=$SECONDS

scripts/build.sh || { echo "[test] error: the build failed"; exit 1; }
# shellcheck source=/dev/null
source .toolchain/env
LOGS=target/test-logs
mkdir -p "$LOGS"

declare -a NAMES PASSED FAILED STATUS
record() { # name passed failed rc [skip reason]
  local st=ok
  if [ "$4" != 0 ] || [ "$3" != 0 ]; then st=FAILED; elif [ -n "${5:-}" ]; then st="SKIPPED ($5)"; elif [ "$2" = 0 ]; then st="FAILED (ran no test)"; fi
  NAMES+=("$1"); PASSED+=("$2"); FAILED+=("$3"); STATUS+=("$st")
  printf '[test] %-22s %s: %s passed, %s failed\n' "$1" "$st" "$2" "$3"
}
# Sums "test result: ok. N passed; M failed" lines (cargo test and wasm-bindgen-test-runner print these).
cargo_counts() {
  awk '/test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
       END { printf "%d %d", p, f }' "$1"
}

echo "[test] tier 0: lint (cargo fmt --check; cargo clippy -D warnings, native and wasm32)"
# Each check counts as one test. The lints deny unwrap, expect, unchecked indexing and panic! outside tests in the
# client (src/lib.rs) and the server (server/src/lib.rs, main.rs); -D warnings makes every other clippy warning fail.
lint_p=0; lint_f=0
lint() { # name, command...
  local name=$1; shift
  if "$@" >"$LOGS/lint-$name.log" 2>&1; then lint_p=$((lint_p + 1)); echo "[test]   lint $name: ok"
  else lint_f=$((lint_f + 1)); echo "[test]   lint $name: FAILED ($*): see $LOGS/lint-$name.log"; tail -n 40 "$LOGS/lint-$name.log"; fi
}
lint fmt cargo fmt --all --check
lint clippy-native cargo clippy --workspace --all-targets -- -D warnings
lint clippy-wasm32 cargo clippy -p wasm-token-manager --lib --tests --target wasm32-unknown-unknown -- -D warnings
record "lint" "$lint_p" "$lint_f" 0

echo "[test] tier 1: native (cargo test --workspace)"
cargo test --workspace 2>&1 | tee "$LOGS/native.log"
rc=${PIPESTATUS[0]}
read -r p f < <(cargo_counts "$LOGS/native.log")
record "native" "$p" "$f" "$rc"

for browser in chrome firefox; do
  echo "[test] tier 2: browser ($browser, wasm-pack test --headless)"
  if [ "$browser" = chrome ]; then driver=(--chromedriver "$WTM_CHROMEDRIVER"); else driver=(--geckodriver "$WTM_GECKODRIVER"); fi
  wasm-pack test --headless "--$browser" "${driver[@]}" 2>&1 | tee "$LOGS/browser-$browser.log"
  rc=${PIPESTATUS[0]}
  read -r p f < <(cargo_counts "$LOGS/browser-$browser.log")
  record "browser ($browser)" "$p" "$f" "$rc"
done

echo "[test] tier 3: end-to-end (node --test tests/e2e/)"
node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$LOGS/e2e.tap" tests/e2e/ 2>&1 | tee "$LOGS/e2e.log"
rc=${PIPESTATUS[0]}
p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$LOGS/e2e.tap" | tail -n1)
f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$LOGS/e2e.tap" | tail -n1)
record "end-to-end" "${p:-0}" "${f:-0}" "$rc"

echo "[test] tier 4: catalogue (node scripts/catalogue.mjs)"
node scripts/catalogue.mjs 2>&1 | tee "$LOGS/catalogue.log"
rc=${PIPESTATUS[0]}
p=0; f=0
read -r p f < <(sed -n 's/^catalogue result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed$/\1 \2/p' "$LOGS/catalogue.log" | tail -n1)
record "catalogue" "${p:-0}" "${f:-0}" "$rc"

echo "[test] tier 5: fuzz (scripts/fuzz.sh --short)"
T_FUZZ=$SECONDS
scripts/fuzz.sh --short 2>&1 | tee "$LOGS/fuzz.log"
rc=${PIPESTATUS[0]}
p=0; f=0
read -r p f < <(sed -n 's/^fuzz result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed$/\1 \2/p' "$LOGS/fuzz.log" | tail -n1)
skip=$(sed -n 's/^\[fuzz\] SKIPPED: \(.*\)$/\1/p' "$LOGS/fuzz.log" | head -n1)
record "fuzz ($((SECONDS - T_FUZZ)) s)" "${p:-0}" "${f:-0}" "$rc" "$skip"

echo "[test] tier 6: api-fuzz (scripts/api-fuzz.sh)"
T_API=$SECONDS
scripts/api-fuzz.sh 2>&1 | tee "$LOGS/api-fuzz-run.log"
rc=${PIPESTATUS[0]}
p=0; f=0
read -r p f < <(sed -n 's/^api-fuzz result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed$/\1 \2/p' "$LOGS/api-fuzz-run.log" | tail -n1)
skip=$(sed -n 's/^\[api-fuzz\] SKIPPED: \(.*\)$/\1/p' "$LOGS/api-fuzz-run.log" | head -n1)
record "api-fuzz ($((SECONDS - T_API)) s)" "${p:-0}" "${f:-0}" "$rc" "$skip"

echo
echo "[test] summary ($((SECONDS - T0)) s, wasm route: $WTM_ROUTE)"
total_p=0; total_f=0; ok=1; skipped=()
for i in "${!NAMES[@]}"; do
  printf '[test]   %-22s %5s passed %3s failed   %s\n' "${NAMES[$i]}" "${PASSED[$i]}" "${FAILED[$i]}" "${STATUS[$i]}"
  total_p=$((total_p + PASSED[i])); total_f=$((total_f + FAILED[i]))
  case "${STATUS[$i]}" in ok) ;; SKIPPED*) skipped+=("${NAMES[$i]}") ;; *) ok=0 ;; esac
done
[ "$ok" = 1 ] || total_f=$((total_f > 0 ? total_f : 1))
[ "${#skipped[@]}" = 0 ] || echo "[test] SKIPPED tiers (counted neither passed nor failed): ${skipped[*]}"
echo "${total_p} passed, ${total_f} failed"
[ "$ok" = 1 ]
