#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer) of every parser that reads untrusted input: the client's token,
# answer-body, origin, Retry-After and cross-tab readers, and the server's token, claims, cookie, bearer,
# login-body and legacy-token readers, and the APIs' verifier's token, bearer, JWKS and Cache-Control readers
# (fuzz/fuzz_targets/, one target each; see fuzz/README.md).
#
#   scripts/fuzz.sh --short            # every target for a few seconds (WTM_FUZZ_SECONDS, default 4): part of scripts/test.sh
#   scripts/fuzz.sh --long             # every target for 10 minutes (WTM_FUZZ_SECONDS overrides), one after the other
#   scripts/fuzz.sh --long server_http # only the targets named
#
# Needs a nightly toolchain and cargo-fuzz (scripts/bootstrap.sh installs both when it can). Where either is
# missing it SKIPS LOUDLY: it prints why and "fuzz result: skipped", and exits 0 (scripts/test.sh counts the
# tier as skipped, never as passed). The corpus grows in fuzz/corpus/ (not committed; fuzz/seeds/ is);
# a crash is saved in fuzz/artifacts/<target>/ and the run fails: turn it into a regression test in the normal
# suite (tests/fuzz_regressions.rs, server/tests/fuzz_regressions.rs), then fix it.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

MODE="${1:---short}"
shift || true
case "$MODE" in
  --short) SECONDS_EACH="${WTM_FUZZ_SECONDS:-4}" ;;
  --long) SECONDS_EACH="${WTM_FUZZ_SECONDS:-600}" ;;
  *) echo "usage: scripts/fuzz.sh --short|--long [target…]" >&2; exit 2 ;;
esac
ALL=(client_token client_body client_origin client_retry_after client_crosstab server_token server_signed_claims server_dpop server_http verifier_input)
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=("${ALL[@]}")

skip() {
  echo "[fuzz] ======================================================================"
  echo "[fuzz] SKIPPED: $1"
  echo "[fuzz] (scripts/bootstrap.sh installs it when it can; the fuzz tier counts as skipped, not passed)"
  echo "[fuzz] ======================================================================"
  echo "fuzz result: skipped. 0 passed; 0 failed"
  exit 0
}
command -v rustup >/dev/null 2>&1 || skip "rustup is not installed, so there is no nightly toolchain for cargo fuzz"
rustup run nightly rustc --version >/dev/null 2>&1 || skip "no nightly Rust toolchain (rustup toolchain install nightly --profile minimal)"
command -v cargo-fuzz >/dev/null 2>&1 || skip "cargo-fuzz is not installed (cargo install cargo-fuzz)"

# -s none: the targets are safe Rust, so AddressSanitizer adds little but halves the speed;
# -a: debug assertions and overflow checks, as in the native tests.
FLAGS=(-s none -a)
mkdir -p "$ROOT/target"
echo "[fuzz] building the fuzz targets ($(rustup run nightly rustc --version))"
if ! rustup run nightly cargo fuzz build "${FLAGS[@]}" >"$ROOT/target/fuzz-build.log" 2>&1; then
  tail -n 40 "$ROOT/target/fuzz-build.log"
  echo "[fuzz] error: the fuzz targets do not build (log: target/fuzz-build.log)"
  echo "fuzz result: FAILED. 0 passed; ${#TARGETS[@]} failed"
  exit 1
fi
BIN="$ROOT/fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"

dict_for() {
  case "$1" in
    client_origin | client_retry_after | server_http) echo dicts/http.dict ;;
    *) echo dicts/json.dict ;;
  esac
}

passed=0
failed=0
for t in "${TARGETS[@]}"; do
  [ -x "$BIN/$t" ] || { echo "[fuzz] $t: no such target (one of: ${ALL[*]})"; failed=$((failed + 1)); continue; }
  mkdir -p "corpus/$t" "artifacts/$t"
  dirs=("corpus/$t")
  [ -d "seeds/$t" ] && dirs+=("seeds/$t")
  log="$ROOT/target/fuzz-$t.log"
  "$BIN/$t" "${dirs[@]}" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 \
    -dict="$(dict_for "$t")" -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)$/\1/p' "$log" | tail -n1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1)
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1))
    printf '[fuzz] %-22s ok: %s runs in %s s, %s\n' "$t" "${runs:-?}" "$SECONDS_EACH" "${cov:-cov: ?}"
  else
    failed=$((failed + 1))
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    grep -m1 -A4 -E "panicked at|ERROR: libFuzzer" "$log" | sed 's/^/[fuzz]   /'
    printf '[fuzz] %-22s FAILED (rc %s): input in fuzz/%s; replay: %s %s\n' "$t" "$rc" "${crash:-?}" "fuzz/target/…/release/$t" "fuzz/${crash:-?}"
    echo "[fuzz]   make it a regression test in the normal suite, then fix it (log: target/fuzz-$t.log)"
  fi
done
echo "fuzz result: $([ "$failed" = 0 ] && echo ok || echo FAILED). $passed passed; $failed failed"
[ "$failed" = 0 ]
