#!/usr/bin/env bash
# Benchmarks (not tests: figures, reported as ratios against baselines measured in the same run, contenders
# interleaved round by round; nothing here fails on a timing). One command for the whole comparison:
#
#   scripts/bench.sh            # builds the package, runs bench/run.mjs, prints the tables, writes BENCHMARKS.md
#   scripts/bench.sh --quick    # small counts, a smoke run of every section (does not write BENCHMARKS.md)
#   scripts/bench.sh --only bytes,startup   # some sections (does not write BENCHMARKS.md)
#
# Sections (bench/run.mjs): bytes added to a Vite app (bench/size-vs-peers.mjs), startup (fresh loads,
# unthrottled and slow 4G), per-call overhead (stub fetch and loopback), expiry under load (1 and 5 tabs), soak.
# Contenders (bench/contenders/): fetch, wasm-token-manager, axios + axios-auth-refresh, ky, openapi-fetch,
# @auth0/auth0-spa-js createFetcher, all against the loopback bench server (bench/support/bench-server.mjs).
# Takes about 8 minutes on a 2-core machine once the package is built. Counts: WTM_BENCH_* (bench/run.mjs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/build.sh
# shellcheck source=/dev/null
source .toolchain/env
node bench/run.mjs "$@"
