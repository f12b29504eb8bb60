#!/usr/bin/env bash
# Copies the public part of the generated TypeScript declarations (pkg/, from scripts/build.sh) to
# tests/api/wasm_token_manager.d.ts, the checked-in copy the tests diff. Run it when an API change is intended,
# and review the diff.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
node -e '
  const fs = require("fs");
  const text = fs.readFileSync("pkg/wasm_token_manager.d.ts", "utf8");
  const cut = text.indexOf("export type InitInput");
  if (cut <= 0) { console.error("no loader section found in pkg/wasm_token_manager.d.ts"); process.exit(1); }
  fs.writeFileSync("tests/api/wasm_token_manager.d.ts", text.slice(0, cut).trimEnd() + "\n");
'
git --no-pager diff --stat -- tests/api/wasm_token_manager.d.ts || true
