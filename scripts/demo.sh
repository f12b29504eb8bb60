#!/usr/bin/env bash
# Starts the live demo: installs what is missing, builds the package, and runs the reference auth server with
# short token lifetimes and DPoP allowed (--dpop allowed: the page binds its tokens to its own key), serving the
# demo site (www/) and the built package (pkg/). Prints the URL.
#
#   scripts/demo.sh                 # http://127.0.0.1:8080
#   WTM_DEMO_ADDR=127.0.0.1:9000 scripts/demo.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/build.sh
# shellcheck source=/dev/null
source .toolchain/env
cargo build -p auth-server
echo "[demo] open the URL below in a browser (Ctrl-C stops the server)"
exec target/debug/auth-server --demo --dpop allowed --addr "${WTM_DEMO_ADDR:-127.0.0.1:8080}" --www www --pkg pkg
