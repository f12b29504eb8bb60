// Bytes each contender adds to a minimal Vite production app, gzip -9 and brotli (quality 11), measured in one
// run with one tool. Each app is an entry that dynamically imports one contender module
// (bench/contenders/NAME.js, the same code the other benchmarks run), creates it and makes one call; the
// `fetch` app (the floor: the platform fetch, no library) is the baseline subtracted from every figure.
//
// Only what the browser downloads counts: bench/run.mjs loads every app in Chromium and passes the files it
// requested (entry, chunks, the package's .wasm). wasm-token-manager's inline base64 copy of its wasm is emitted
// as a separate chunk that a production build never requests; it is reported apart. Run alone
// (`node bench/size-vs-peers.mjs`), the script loads each app once in Chromium itself to learn that.
//
// The size-only rows (oidc-client-ts, @supabase/auth-js) are the other auth libraries the README compared with
// before: they have no fetch wrapper to wire to the bench server, so they appear only here (statically imported;
// every emitted file counts).
import { build } from 'vite';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const APPS_DIR = path.join(ROOT, 'target/bench/apps');

export const version = (name) => JSON.parse(fs.readFileSync(name === 'wasm-token-manager'
  ? path.join(ROOT, 'pkg/package.json') : path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;

/** The contenders: name (bench/contenders/NAME.js), label, what it is. */
export function contenders() {
  return [
    { name: 'fetch', label: 'fetch (the floor)', floor: true },
    { name: 'wasm-token-manager', label: `wasm-token-manager ${version('wasm-token-manager')}`, ours: true },
    { name: 'axios', label: `axios ${version('axios')} + axios-auth-refresh ${version('axios-auth-refresh')}` },
    { name: 'ky', label: `ky ${version('ky')}` },
    { name: 'openapi-fetch', label: `openapi-fetch ${version('openapi-fetch')}` },
    { name: 'auth0', label: `@auth0/auth0-spa-js ${version('@auth0/auth0-spa-js')} createFetcher` },
  ];
}
export function sizeOnly() {
  return [
    { name: 'oidc-client-ts', label: `oidc-client-ts ${version('oidc-client-ts')}`, code: "import { UserManager } from 'oidc-client-ts'; window.lib = UserManager;" },
    { name: 'supabase-auth-js', label: `@supabase/auth-js ${version('@supabase/auth-js')}`, code: "import { GoTrueClient } from '@supabase/auth-js'; window.lib = GoTrueClient;" },
  ];
}

// The entry: the time from the import to the contender being usable (`ready`) and to its first call answered.
const entry = (name) => `
const token = location.hash.slice(1);
const t0 = performance.now();
import(${JSON.stringify(path.join(ROOT, 'bench/contenders', `${name}.js`))}).then(async ({ create }) => {
  const client = create({ token });
  await client.ready;
  const ready = performance.now() - t0;
  const status = await client.get('/api/me');
  window.__startup = { ready, first: performance.now() - t0, status };
}).catch((e) => { window.__startup = { error: String(e && e.stack || e) }; });
`;

/** Builds one Vite production app per contender (and size-only library) into target/bench/apps/NAME/dist. */
export async function buildApps({ withSizeOnly = true } = {}) {
  fs.rmSync(APPS_DIR, { recursive: true, force: true });
  const apps = [...contenders().map((c) => ({ ...c, code: entry(c.name) })), ...(withSizeOnly ? sizeOnly().map((c) => ({ ...c, sizeOnly: true })) : [])];
  for (const app of apps) {
    const dir = path.join(APPS_DIR, app.name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><link rel="icon" href="data:,"><script type="module" src="./main.js"></script>');
    fs.writeFileSync(path.join(dir, 'main.js'), app.code);
    await build({
      root: dir,
      base: './',
      logLevel: 'silent',
      configFile: false,
      resolve: { alias: { 'wasm-token-manager': path.join(ROOT, 'pkg/index.js') } },
      build: { outDir: path.join(dir, 'dist'), modulePreload: false },
      cacheDir: path.join(dir, '.vite'),
    });
    app.dist = path.join(dir, 'dist');
    app.files = fs.readdirSync(path.join(app.dist, 'assets')).filter((f) => /\.(js|wasm)$/.test(f)).map((f) => `assets/${f}`);
  }
  return apps;
}

const compressed = (buf) => ({
  raw: buf.length,
  gzip: zlib.gzipSync(buf, { level: 9 }).length,
  brotli: zlib.brotliCompressSync(buf, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: buf.length } }).length,
});

/**
 * Sizes of what the browser downloaded. `downloaded` maps an app name to the set of its asset paths
 * ('assets/x.js') requested during a load (size-only apps: every emitted file). Returns rows with
 * { name, label, files: [{file, raw, gzip, brotli}], skipped: [...] , gzip, brotli, addedGzip, addedBrotli }.
 */
export function measureSizes(apps, downloaded) {
  const rows = apps.map((app) => {
    const got = app.sizeOnly ? new Set(app.files) : downloaded.get(app.name) ?? new Set();
    const files = []; const skipped = [];
    for (const f of app.files) {
      const entry = { file: f, ...compressed(fs.readFileSync(path.join(app.dist, f))) };
      (got.has(f) ? files : skipped).push(entry);
    }
    const sum = (k) => files.reduce((a, f) => a + f[k], 0);
    return { ...app, files, skipped, raw: sum('raw'), gzip: sum('gzip'), brotli: sum('brotli') };
  });
  const base = rows.find((r) => r.floor);
  for (const r of rows) { r.addedGzip = r.gzip - base.gzip; r.addedBrotli = r.brotli - base.brotli; }
  return rows;
}

export function sizeTable(rows) {
  const ours = rows.find((r) => r.ours);
  const peers = rows.filter((r) => !r.floor && !r.ours && !r.sizeOnly);
  const best = peers.reduce((a, b) => (b.addedGzip < a.addedGzip ? b : a));
  const lines = ['| contender | files downloaded | adds, gzip -9 | adds, brotli | ours ÷ this (gzip) |', '| --- | --- | ---: | ---: | ---: |'];
  for (const r of rows) {
    const files = r.files.map((f) => f.file.replace(/^assets\//, '').replace(/-[A-Za-z0-9_-]{8}\./, '.')).join(', ');
    const ratio = r.floor || r.ours ? '—' : (ours.addedGzip / r.addedGzip).toFixed(2);
    lines.push(`| ${r.label}${r.floor ? ' (baseline)' : ''}${r.sizeOnly ? ' (size only)' : ''} | ${files} | ${r.floor ? `${r.gzip.toLocaleString('en')} B total` : `${r.addedGzip.toLocaleString('en')} B`} | ${r.floor ? `${r.brotli.toLocaleString('en')} B total` : `${r.addedBrotli.toLocaleString('en')} B`} | ${ratio} |`);
  }
  const skipped = ours.skipped.map((f) => `${f.file.replace(/^assets\//, '')} (${f.gzip.toLocaleString('en')} B gzip)`).join(', ');
  return { lines, best, ours, skippedNote: skipped };
}

// Run alone: build, load each app once in Chromium to learn what it downloads, print the table.
if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { startBenchServer } = await import('./support/bench-server.mjs');
  const { launchChromium } = await import('../tests/e2e/support/browser.mjs');
  const apps = await buildApps();
  const server = await startBenchServer({ statics: { '/apps/': APPS_DIR } });
  const browser = await launchChromium();
  const downloaded = new Map();
  try {
    for (const app of apps.filter((a) => !a.sizeOnly)) {
      const context = await browser.newContext();
      const page = await context.newPage();
      const got = new Set();
      const prefix = `${server.url}/apps/${app.name}/dist/`;
      page.on('request', (r) => { if (r.url().startsWith(prefix)) got.add(r.url().slice(prefix.length)); });
      await page.goto(`${prefix}index.html#${server.mint()}`);
      await page.waitForFunction(() => window.__startup, null, { timeout: 30_000 });
      downloaded.set(app.name, got);
      await context.close();
    }
  } finally {
    await browser.close();
    await server.close();
  }
  const { lines, skippedNote } = sizeTable(measureSizes(apps, downloaded));
  console.log(lines.join('\n'));
  if (skippedNote) console.log(`emitted but never downloaded by wasm-token-manager's app: ${skippedNote}`);
}
