#!/usr/bin/env bash
# Installs what building and testing wasm-token-manager needs, and nothing that is already there.
#
#   scripts/bootstrap.sh            # idempotent; a second run takes seconds
#
# It writes .toolchain/env, which the other scripts source: it puts the cargo that has a wasm32 std first on PATH.
#
# Routes to a wasm32-unknown-unknown std, in order of preference:
#   1. rustup-existing  rustup's toolchain already has the target (an ordinary developer machine);
#   2. debian-existing  a wasm32 std built earlier by this script for exactly this /usr/bin/rustc;
#   3. rustup-download  `rustup target add` (bounded by a timeout; it cannot download on some machines);
#   4. debian-build     Debian's rustc-web + rust-web-src + lld, then build the wasm32 std from that source once.
# Every download is bounded by a timeout. Nothing here runs at build or test time except through this script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TC="$ROOT/.toolchain"
mkdir -p "$TC"
T0=$SECONDS
CARGO_HOME_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_HOME_BIN:$PATH"

say() { printf '[bootstrap] %s\n' "$*"; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

SUDO=""
if [ "$(id -u)" != 0 ] && have sudo; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  have apt-get || die "need $* but apt-get is not available: install them with your package manager"
  if [ "$APT_UPDATED" = 0 ]; then
    say "apt-get update"
    timeout 300 $SUDO apt-get update -qq || die "apt-get update failed or timed out"
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive timeout 900 $SUDO apt-get install -y -qq "$@" >/dev/null \
    || die "apt-get install $* failed or timed out"
}

# The exact wasm-bindgen version the crate pins (Cargo.toml: wasm-bindgen = "=X").
WB_VERSION="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml | head -n1)"
[ -n "$WB_VERSION" ] || die "Cargo.toml must pin wasm-bindgen with = (wasm-bindgen = \"=X.Y.Z\")"

# ---------------------------------------------------------------- 1. a cargo with a wasm32 std
has_wasm_std() { # $1 = rustc
  local sysroot
  sysroot="$("$1" --print sysroot 2>/dev/null)" || return 1
  compgen -G "$sysroot/lib/rustlib/wasm32-unknown-unknown/lib/libstd-*.rlib" >/dev/null
}

ROUTE=""
WASM_BIN_DIR=""
if have rustup && has_wasm_std "$(rustup which rustc 2>/dev/null || echo /nonexistent)"; then
  ROUTE="rustup-existing"
  WASM_BIN_DIR="$(dirname "$(rustup which cargo)")"
fi

DEB_STD_DIR=/usr/lib/rustlib/wasm32-unknown-unknown/lib
DEB_STAMP=/usr/lib/rustlib/wasm32-unknown-unknown/wtm-std.stamp
deb_std_current() {
  [ -x /usr/bin/rustc ] && [ -f "$DEB_STAMP" ] && [ -e /usr/bin/rust-lld ] \
    && [ "$(cat "$DEB_STAMP")" = "$(/usr/bin/rustc --version)" ] && has_wasm_std /usr/bin/rustc
}
if [ -z "$ROUTE" ] && deb_std_current; then
  ROUTE="debian-existing"
  WASM_BIN_DIR=/usr/bin
fi

if [ -z "$ROUTE" ] && have rustup && [ "${WTM_SKIP_RUSTUP_TARGET:-0}" != 1 ]; then
  say "trying: rustup target add wasm32-unknown-unknown (timeout 60 s)"
  if timeout 60 rustup target add wasm32-unknown-unknown >"$TC/rustup-target.log" 2>&1 \
     && has_wasm_std "$(rustup which rustc)"; then
    ROUTE="rustup-download"
    WASM_BIN_DIR="$(dirname "$(rustup which cargo)")"
  else
    say "rustup could not install the target (see .toolchain/rustup-target.log); using Debian's rustc-web"
  fi
fi

if [ -z "$ROUTE" ]; then
  ROUTE="debian-build"
  if [ ! -x /usr/bin/rustc ] || [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust/library ] \
     || [ ! -e /usr/bin/rust-lld ] || ! have lld-22; then
    apt_install rustc-web cargo-web rust-web-src lld-22
  fi
  RUSTC_VERSION="$(/usr/bin/rustc --version)"
  say "building the wasm32 std once for: $RUSTC_VERSION (about 2 minutes)"
  STD_BUILD="$TC/std-build"
  rm -rf "$STD_BUILD"
  mkdir -p "$STD_BUILD/src"
  printf '[package]\nname = "wtm-std-build"\nversion = "0.0.0"\nedition = "2021"\n[lib]\npath = "src/lib.rs"\n[workspace]\n' \
    >"$STD_BUILD/Cargo.toml"
  : >"$STD_BUILD/src/lib.rs"
  (cd "$STD_BUILD" && PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$STD_BUILD/target" timeout 1800 /usr/bin/cargo build -q --release \
      --target wasm32-unknown-unknown -Z build-std=std,panic_abort,test,proc_macro) \
    || die "building the wasm32 std failed"
  $SUDO mkdir -p "$DEB_STD_DIR"
  find "$STD_BUILD/target/wasm32-unknown-unknown/release/deps" -name '*.rlib' ! -name 'libwtm_std_build-*' \
    -exec $SUDO cp {} "$DEB_STD_DIR/" \;
  echo "$RUSTC_VERSION" | $SUDO tee "$DEB_STAMP" >/dev/null
  rm -rf "$STD_BUILD"
  deb_std_current || die "the wasm32 std was built but rustc does not see it"
  WASM_BIN_DIR=/usr/bin
fi
say "wasm32 route: $ROUTE ($("$WASM_BIN_DIR/rustc" --version))"
# clippy and rustfmt, for the test command's lint tier (rustup's minimal profile lacks them; Debian: rust-clippy,
# rustfmt).
for tool in clippy fmt; do
  if ! PATH="$WASM_BIN_DIR:$PATH" cargo "$tool" --version >/dev/null 2>&1; then
    component=$tool; deb=rust-clippy
    [ "$tool" = fmt ] && { component=rustfmt; deb=rustfmt; }
    if [ "$ROUTE" != debian-build ] && have rustup; then
      say "rustup component add $component (timeout 120 s)"
      timeout 120 rustup component add "$component" >"$TC/rustup-$component.log" 2>&1 \
        || say "$component could not be installed: the lint tier will fail"
    else
      apt_install "$deb"
    fi
  fi
done

# ---------------------------------------------------------------- 2. wasm-bindgen-cli (exact), wasm-pack, geckodriver
cargo_install() { # $1 = crate, $2 = version or "", $3 = timeout
  say "cargo install $1${2:+ $2} (a few minutes)"
  local v=()
  [ -n "$2" ] && v=(--version "$2")
  # Not --locked: a crate's lock file can name a yanked version the registry no longer serves.
  timeout "$3" cargo install -q "$1" "${v[@]}" || die "cargo install $1 failed or timed out"
}
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WB_VERSION" ]; then
  cargo_install wasm-bindgen-cli "$WB_VERSION" 1500
fi
have wasm-pack || cargo_install wasm-pack "" 1500

# ---------------------------------------------------------------- 3. browsers and drivers
CHROMIUM="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
CHROMEDRIVER="$(command -v chromedriver || true)"
FIREFOX="$(command -v firefox-esr || command -v firefox || true)"
need_apt=()
[ -n "$CHROMIUM" ] || need_apt+=(chromium)
[ -n "$CHROMEDRIVER" ] || need_apt+=(chromium-driver)
[ -n "$FIREFOX" ] || need_apt+=(firefox-esr)
if [ "${#need_apt[@]}" -gt 0 ]; then
  apt_install "${need_apt[@]}"
  CHROMIUM="$(command -v chromium || command -v chromium-browser || command -v google-chrome)"
  CHROMEDRIVER="$(command -v chromedriver)"
  FIREFOX="$(command -v firefox-esr || command -v firefox)"
fi
have geckodriver || cargo_install geckodriver "" 1200
GECKODRIVER="$(command -v geckodriver)"

# ---------------------------------------------------------------- 3b. redis-server (the server's shared-store tests)
# Debian's redis-server; the tests start their own instance on a free loopback port with a temporary directory
# (server/tests/common/redis.rs, tests/e2e/support/redis.mjs), so the packaged service is not needed and is left
# stopped where the package started it.
if ! have redis-server; then
  apt_install redis-server
  if have systemctl && systemctl is-active --quiet redis-server 2>/dev/null; then
    $SUDO systemctl stop redis-server >/dev/null 2>&1 || true
  fi
fi
REDIS_SERVER="$(command -v redis-server || true)"
[ -n "$REDIS_SERVER" ] || die "redis-server is not on PATH after installing it"

# ---------------------------------------------------------------- 4. npm packages (playwright-core, binaryen, vite, peers)
have node || die "Node.js 20+ is needed (node not found)"
LOCK_SUM="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat node_modules/.wtm-lock.sha256 2>/dev/null)" != "$LOCK_SUM" ]; then
  say "npm ci"
  timeout 900 npm ci --no-audit --no-fund --loglevel=error || die "npm ci failed or timed out"
  echo "$LOCK_SUM" >node_modules/.wtm-lock.sha256
fi

# ---------------------------------------------------------------- 5. fuzzing: a nightly toolchain and cargo-fuzz
# Optional: scripts/fuzz.sh skips loudly where these are missing, so a failure here is reported, not fatal.
CARGO_FUZZ_VERSION=0.13.2
if [ "${WTM_SKIP_FUZZ_TOOLS:-0}" != 1 ] && have rustup; then
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    say "rustup toolchain install nightly --profile minimal (timeout 300 s, for cargo fuzz)"
    timeout 300 rustup toolchain install nightly --profile minimal >"$TC/rustup-nightly.log" 2>&1 \
      || say "warning: no nightly toolchain (see .toolchain/rustup-nightly.log): scripts/fuzz.sh will skip"
  fi
  if [ "$(cargo-fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
    say "cargo install cargo-fuzz $CARGO_FUZZ_VERSION (about 2 minutes)"
    timeout 900 cargo install -q cargo-fuzz --version "$CARGO_FUZZ_VERSION" \
      || say "warning: cargo install cargo-fuzz failed or timed out: scripts/fuzz.sh will skip"
  fi
fi

# ---------------------------------------------------------------- 6. API fuzzing: schemathesis in a venv
# Optional like the above: scripts/api-fuzz.sh skips loudly where it is missing.
SCHEMATHESIS_VERSION=4.32.5
if [ "${WTM_SKIP_API_FUZZ_TOOLS:-0}" != 1 ] \
   && [ "$("$TC/venv/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
  if have python3 && { [ -x "$TC/venv/bin/pip" ] || timeout 120 python3 -m venv "$TC/venv" >"$TC/venv.log" 2>&1; }; then
    say "pip install schemathesis==$SCHEMATHESIS_VERSION into .toolchain/venv (about a minute)"
    timeout 600 "$TC/venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >>"$TC/venv.log" 2>&1 \
      || say "warning: pip install schemathesis failed or timed out (see .toolchain/venv.log): scripts/api-fuzz.sh will skip"
  else
    say "warning: no python3 with venv (see .toolchain/venv.log): scripts/api-fuzz.sh will skip"
  fi
fi

# ---------------------------------------------------------------- 7. the environment the other scripts use
cat >"$TC/env" <<EOF
# Written by scripts/bootstrap.sh (route: $ROUTE). Source it; do not edit.
export PATH="$WASM_BIN_DIR:$CARGO_HOME_BIN:$ROOT/node_modules/.bin:\$PATH"
export WTM_ROUTE="$ROUTE"
export WTM_CHROMIUM="$CHROMIUM"
export WTM_CHROMEDRIVER="$CHROMEDRIVER"
export WTM_FIREFOX="$FIREFOX"
export WTM_GECKODRIVER="$GECKODRIVER"
export WTM_REDIS_SERVER="$REDIS_SERVER"
EOF
say "ready in $((SECONDS - T0)) s; tools: wasm-bindgen $WB_VERSION, $(wasm-pack --version), $("$CHROMIUM" --version 2>/dev/null | head -n1), $("$FIREFOX" --version 2>/dev/null | head -n1), $("$REDIS_SERVER" --version | cut -d" " -f1-3)"
