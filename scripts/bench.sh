#!/usr/bin/env bash
# Benchmarks (not tests: figures, reported as ratios against a baseline measured in the same run).
#   1. bundle size added to a Vite app, against the real peer libraries (bench/size-vs-peers.mjs)
#   2. time per authenticated request through tm.fetch, against fetch and axios + axios-auth-refresh
#      (bench/fetch-overhead.mjs)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/build.sh
# shellcheck source=/dev/null
source .toolchain/env
echo "[bench] bundle size against peers"
node bench/size-vs-peers.mjs
echo "[bench] request overhead"
node bench/fetch-overhead.mjs "${WTM_BENCH_REQUESTS:-200}" "${WTM_BENCH_ROUNDS:-5}"
