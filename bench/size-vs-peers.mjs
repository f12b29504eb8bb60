// Bundle size against the real peer libraries, measured in one run with one tool: each library is imported by
// a minimal app, built by Vite in production mode (minified), and every emitted asset (JS and wasm) is
// compressed with gzip -9. An empty app built the same way is the baseline subtracted from each figure, so
// what remains is what the library adds to an app. Run scripts/build.sh first (it builds pkg/).
//
//   node bench/size-vs-peers.mjs
import { build } from 'vite';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// Read package.json files directly: some packages' "exports" hide them from require().
const version = (name) => JSON.parse(fs.readFileSync(
  path.isAbsolute(name) ? path.join(name, 'package.json') : path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;

const APPS = [
  { name: 'empty app (baseline)', code: 'window.lib = null;' },
  { name: `wasm-token-manager ${version(path.join(ROOT, 'pkg'))}`, ours: true,
    code: "import { TokenManager } from 'wasm-token-manager'; window.lib = TokenManager;" },
  { name: `oidc-client-ts ${version('oidc-client-ts')}`,
    code: "import { UserManager } from 'oidc-client-ts'; window.lib = UserManager;" },
  { name: `@auth0/auth0-spa-js ${version('@auth0/auth0-spa-js')}`,
    code: "import { Auth0Client } from '@auth0/auth0-spa-js'; window.lib = Auth0Client;" },
  { name: `@supabase/auth-js ${version('@supabase/auth-js')}`,
    code: "import { GoTrueClient } from '@supabase/auth-js'; window.lib = GoTrueClient;" },
  { name: `axios ${version('axios')} + axios-auth-refresh ${version('axios-auth-refresh')}`,
    code: "import axios from 'axios'; import refresh from 'axios-auth-refresh'; window.lib = [axios, refresh];" },
];

async function gzippedBuild(app) {
  // Inside the repository, so the peers resolve from its node_modules as an app's would from its own.
  fs.mkdirSync(path.join(ROOT, 'target/bench-size'), { recursive: true });
  const dir = fs.mkdtempSync(path.join(ROOT, 'target/bench-size/app-'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><script type="module" src="./main.js"></script>');
  fs.writeFileSync(path.join(dir, 'main.js'), app.code);
  await build({
    root: dir,
    logLevel: 'silent',
    configFile: false,
    resolve: { alias: { 'wasm-token-manager': path.join(ROOT, 'pkg/index.js') } },
    build: { outDir: path.join(dir, 'dist'), modulePreload: false },
    cacheDir: path.join(dir, '.vite'),
  });
  let total = 0;
  const assets = path.join(dir, 'dist/assets');
  for (const f of fs.readdirSync(assets)) {
    if (!/\.(js|wasm)$/.test(f)) continue;
    total += zlib.gzipSync(fs.readFileSync(path.join(assets, f)), { level: 9 }).length;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return total;
}

const results = [];
for (const app of APPS) results.push({ ...app, bytes: await gzippedBuild(app) });

const baseline = results[0].bytes;
const ours = results.find((r) => r.ours).bytes - baseline;
console.log('library                                        added to an app (gzip -9)   ours / theirs');
for (const r of results.slice(1)) {
  const added = r.bytes - baseline;
  const ratio = r.ours ? '' : (ours / added).toFixed(2);
  console.log(`${r.name.padEnd(46)} ${String(added).padStart(9)} B                 ${ratio}`);
}
console.log(`(baseline: an empty Vite app, ${baseline} B gzip -9, subtracted from each)`);
