#!/usr/bin/env bash
# Builds the npm package into pkg/ and packs it into target/npm/wasm-token-manager-<version>.tgz.
#
#   release wasm (Cargo.toml [profile.wasm-release]: opt-level z, one codegen unit; see the sizes measured there;
#   no reference types; talc as its allocator, src/lib.rs)
#   -> wasm-bindgen --target web -> wasm-opt -Oz (npm's binaryen) -> short import/export names (wasm and glue)
#   -> pkg/ from pkg-template/ -> esbuild --bundle --minify (entry + glue, one module) -> npm pack
#   -> scripts/size.sh: fails when the gzip -9 total exceeds size-budget.json
#
# Needs the tools scripts/bootstrap.sh installs (it runs it unless WTM_SKIP_BOOTSTRAP=1).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ "${WTM_SKIP_BOOTSTRAP:-0}" = 1 ] || scripts/bootstrap.sh
# shellcheck source=/dev/null
source .toolchain/env

say() { printf '[build] %s\n' "$*"; }
die() { printf '[build] error: %s\n' "$*" >&2; exit 1; }

CRATE_VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
PKG_VERSION="$(node -p 'require("./pkg-template/package.json").version')"
[ "$CRATE_VERSION" = "$PKG_VERSION" ] \
  || die "pkg-template/package.json version $PKG_VERSION differs from Cargo.toml version $CRATE_VERSION"

say "cargo build --profile wasm-release --target wasm32-unknown-unknown"
# Panic locations name the source files of dependencies by their path under cargo's home: strip that prefix, so
# that the package's bytes (and its size budget) do not depend on where cargo keeps its sources (-30 B).
for src in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/; do
  [ -d "$src" ] && RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$src="
done
# Without reference types: wasm-bindgen then keeps JS values in a JS array instead of a wasm table of externrefs,
# which is 691 B gzip -9 smaller in all (the wasm -909 B, the glue +218 B). The precompiled std was built with
# them, so the linker's `target_features` section claims them and wasm-bindgen would switch to externrefs anyway:
# that section is dropped from a copy of the wasm before wasm-bindgen reads it. wasm-opt below runs without
# --enable-reference-types, so it fails the build if any reference-types instruction were left.
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=-reference-types"
cargo build --profile wasm-release --lib --target wasm32-unknown-unknown
RAW=target/wasm32-unknown-unknown/wasm-release/wasm_token_manager.no-features.wasm
node -e '
  // Copies the wasm without its `target_features` custom section (section id 0, named by a length-prefixed string).
  const fs = require("fs");
  const [from, to] = process.argv.slice(1);
  const b = fs.readFileSync(from);
  const leb = (o) => { let v = 0, shift = 0, x; do { x = b[o++]; v |= (x & 0x7f) << shift; shift += 7; } while (x & 0x80); return [v >>> 0, o]; };
  const kept = [b.subarray(0, 8)];
  let dropped = 0;
  for (let o = 8; o < b.length;) {
    const [size, body] = leb(o + 1);
    const [nameLen, name] = b[o] === 0 ? leb(body) : [0, body];
    if (b[o] === 0 && b.toString("utf8", name, name + nameLen) === "target_features") dropped++;
    else kept.push(b.subarray(o, body + size));
    o = body + size;
  }
  if (dropped !== 1) { console.error("[build] error: expected one target_features section, found " + dropped); process.exit(1); }
  fs.writeFileSync(to, Buffer.concat(kept));
' target/wasm32-unknown-unknown/wasm-release/wasm_token_manager.wasm "$RAW"

rm -rf pkg
mkdir -p pkg
say "wasm-bindgen --target web --omit-default-module-path --no-typescript"
# --omit-default-module-path: the glue's own `new URL('wasm_token_manager_bg.wasm', import.meta.url)` fallback is
# dead code here, since the entry always hands `init` the compiled module (and a bundler would see a second asset
# reference). --no-typescript: the package's declarations are pkg-template/index.d.ts.
wasm-bindgen --target web --omit-default-module-path --no-typescript --out-dir pkg --out-name wasm_token_manager "$RAW"

say "wasm-opt -Oz --converge --low-memory-unused"
# The features rustc's wasm32 target emits by default, less reference types (see above); wasm-opt must accept
# them and must not add others.
# Each flag measured on its own (gzip -9 of the package, README "Package size, step by step"): --converge (repeat
# -Oz until it stops shrinking) -55 B; --low-memory-unused (assume the first 1 KiB of memory is never accessed,
# which lets loads and stores fold constant offsets; Rust's wasm32 layout puts the bottom of its 1 MiB stack
# there, reached only by a stack overflow) -141 B; both together -236 B. Measured and left out: --gufa +65 B,
# --traps-never-happen and --ignore-implicit-traps (-91 and -29 B, not worth assuming that no panic happens).
wasm-opt -Oz --converge --low-memory-unused --strip-debug --strip-producers \
  --enable-bulk-memory --enable-bulk-memory-opt --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-multivalue \
  -o pkg/wasm_token_manager_bg.wasm.opt pkg/wasm_token_manager_bg.wasm
mv pkg/wasm_token_manager_bg.wasm.opt pkg/wasm_token_manager_bg.wasm

say "short import and export names in the wasm and the glue (scripts/shorten-names.mjs)"
node scripts/shorten-names.mjs pkg/wasm_token_manager_bg.wasm pkg/wasm_token_manager.js

say "inline copy of the wasm (loaded only where the .wasm URL does not yield WebAssembly)"
node -e '
  const fs = require("fs");
  const b64 = fs.readFileSync("pkg/wasm_token_manager_bg.wasm").toString("base64");
  fs.writeFileSync("pkg/wasm_token_manager_bg.inline.js",
    "// The wasm of this package as base64, for the entry module (index.js) to import where the .wasm URL does not\n" +
    "// yield WebAssembly (a dev server that pre-bundled the package, a bundler that does not copy assets, jsdom).\n" +
    "// Production bundles that serve the .wasm never load this module.\n" +
    "export const wasm = \"" + b64 + "\";\n");
'

say "assembling pkg/ from pkg-template/"
cp pkg-template/package.json pkg-template/index.js pkg-template/index.d.ts pkg-template/README.md pkg/
rm -f pkg/.gitignore

say "esbuild --bundle --minify: the entry and wasm-bindgen's glue as one module (readable sources: pkg-template/index.js, wasm-bindgen's output)"
# One module instead of two: one request fewer, and the glue's unused exports (initSync) and cross-module names go
# (-474 B gzip -9). The `new URL('./…wasm', import.meta.url)` and `import('./….inline.js')` references stay as
# they are, for the app's bundler to resolve; the build checks that they did.
node_modules/.bin/esbuild pkg/index.js --bundle --minify --format=esm --target=es2022 --log-level=warning \
  --external:./wasm_token_manager_bg.inline.js --external:./wasm_token_manager_dpop.js --outfile=pkg/index.min.js
mv pkg/index.min.js pkg/index.js
rm pkg/wasm_token_manager.js
say "esbuild --bundle --minify: the DPoP keyring (pkg-template/dpop.js with dpop and idb-keyval), imported only with the dpop option"
node_modules/.bin/esbuild pkg-template/dpop.js --bundle --minify --format=esm --target=es2022 --log-level=warning \
  --outfile=pkg/wasm_token_manager_dpop.js
node -e '
  const js = require("fs").readFileSync("pkg/index.js", "utf8");
  for (const ref of [`new URL("./wasm_token_manager_bg.wasm",import.meta.url)`, `import("./wasm_token_manager_bg.inline.js")`, `import("./wasm_token_manager_dpop.js")`]) {
    if (!js.includes(ref)) { console.error("[build] error: pkg/index.js lost " + ref); process.exit(1); }
  }
'
# Every file the package lists must exist, and nothing else is shipped.
node -e '
  const fs = require("fs");
  const files = require("./pkg/package.json").files;
  for (const f of files) if (!fs.existsSync("pkg/" + f)) { console.error("[build] error: pkg/" + f + " is missing"); process.exit(1); }
'

mkdir -p target/npm
rm -f target/npm/*.tgz
(cd pkg && npm pack --silent --pack-destination ../target/npm >/dev/null)
TARBALL="target/npm/wasm-token-manager-$CRATE_VERSION.tgz"
[ -f "$TARBALL" ] || die "npm pack did not produce $TARBALL"
say "built pkg/ and $TARBALL"
# The size budget (size-budget.json): the build fails when the package outgrew it.
scripts/size.sh || die "the package is over its size budget (size-budget.json): see the figures above"
