// The whole benchmark harness (scripts/bench.sh runs it after building): headless Chromium through Playwright,
// the loopback bench server (bench/support/bench-server.mjs), and every contender of bench/contenders/ wired to
// the same endpoints. Sections:
//   1. bytes     what each contender adds to a minimal Vite production app (bench/size-vs-peers.mjs)
//   2. startup   from the import to the first usable call, fresh page loads, unthrottled and on slow 4G
//   3. overhead  per call against an in-page stub fetch and against the loopback server; GET and 64 KiB POST
//   4. expiry    N concurrent requests just after the token expired at the server, 1 tab and 5 tabs
//   5. soak      a long run with 10-second tokens: heap, listeners and promises after it against after warm-up
// Every figure that compares is a ratio measured in the same run, contenders interleaved round by round.
// Prints each table and writes BENCHMARKS.md.
//
//   node bench/run.mjs [--only bytes,startup,overhead,expiry,soak] [--quick] [--no-write]
// Counts can be changed with WTM_BENCH_* variables (see COUNTS below).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { build as esbuild } from 'esbuild';
import { launchChromium } from '../tests/e2e/support/browser.mjs';
import { memorySnapshot } from '../tests/e2e/support/memory.mjs';
import { startBenchServer } from './support/bench-server.mjs';
import { ROOT, APPS_DIR, buildApps, contenders, measureSizes, sizeTable } from './size-vs-peers.mjs';

const args = process.argv.slice(2);
const arg = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const ONLY = new Set((arg('--only') ?? 'bytes,startup,overhead,expiry,soak').split(','));
const QUICK = args.includes('--quick');
const WRITE = !args.includes('--no-write') && ONLY.size === 5;
const env = (name, full, quick) => Number(process.env[`WTM_BENCH_${name}`] ?? (QUICK ? quick : full));
const COUNTS = {
  startupLoads: env('STARTUP_LOADS', 12, 3),          // fresh page loads per contender, unthrottled
  startupLoadsSlow: env('STARTUP_LOADS_SLOW', 4, 1),  // the same on slow 4G
  rounds: env('ROUNDS', 5, 2),                        // interleaved rounds of the per-call loops
  calls: env('CALLS', 100, 30),                       // calls per contender per round and per kind
  expiryRounds: env('EXPIRY_ROUNDS', 2, 1),           // rounds per N of the expiry bursts (N = 10 and 100)
  expiryRounds1000: env('EXPIRY_ROUNDS_1000', 1, 1),  // rounds at N = 1,000 (about 100 s a round in 1 and 5 tabs)
  soakRequests: env('SOAK_REQUESTS', 100_000, 3_000), // the soak's ceiling per contender
  soakSeconds: env('SOAK_SECONDS', 15, 5),            // and its time bound per contender
};
const BURSTS = QUICK ? [10, 100] : [10, 100, 1000];
const TABS = 5;
// Chrome DevTools' "Slow 4G" preset: 150 ms RTT × 3.75, 1.6 Mbit/s × 0.9 down, 750 kbit/s × 0.9 up.
const SLOW_4G = { offline: false, latency: 562.5, downloadThroughput: (1.6 * 1e6 / 8) * 0.9, uploadThroughput: (750 * 1e3 / 8) * 0.9 };

const started = Date.now();
const log = (...a) => console.log(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s]`, ...a);
const CONTENDERS = contenders();
const OURS = CONTENDERS.find((c) => c.ours).name;
const FLOOR = CONTENDERS.find((c) => c.floor).name;
const PEERS = CONTENDERS.filter((c) => !c.ours && !c.floor).map((c) => c.name);
const REFRESHING = CONTENDERS.filter((c) => !c.floor).map((c) => c.name); // the floor has no refresh logic
const label = (name) => CONTENDERS.find((c) => c.name === name).label;

// ---- statistics -------------------------------------------------------------------------------------------
const sorted = (xs) => [...xs].sort((a, b) => a - b);
const quantile = (xs, q) => { if (!xs.length) return NaN; const s = sorted(xs); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
const median = (xs) => quantile(xs, 0.5);
const p95 = (xs) => quantile(xs, 0.95);
/** Rotates the order each round, so no contender always runs first or last. */
const rotate = (xs, r) => xs.map((_, i) => xs[(i + r) % xs.length]);
const ms = (x, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : '—');
const ratio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '—');

// ---- the pages --------------------------------------------------------------------------------------------
const WWW = path.join(ROOT, 'target/bench/www');
async function bundleContenders() {
  fs.rmSync(WWW, { recursive: true, force: true });
  fs.mkdirSync(path.join(WWW, 'c'), { recursive: true });
  for (const f of ['index.html', 'harness.js']) fs.copyFileSync(path.join(ROOT, 'bench/page', f), path.join(WWW, f));
  await esbuild({
    entryPoints: CONTENDERS.map((c) => ({ in: path.join(ROOT, 'bench/contenders', `${c.name}.js`), out: c.name })),
    outdir: path.join(WWW, 'c'),
    bundle: true, format: 'esm', minify: true, target: 'es2022', logLevel: 'warning',
    // The package itself is served as built (pkg/ at /pkg/), so it loads its .wasm by URL as in an app.
    plugins: [{ name: 'pkg', setup(b) { b.onResolve({ filter: /^wasm-token-manager$/ }, () => ({ path: '/pkg/index.js', external: true })); } }],
  });
}

async function openPage(browser, server, { context } = {}) {
  const ctx = context ?? await browser.newContext();
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${server.url}/www/index.html`);
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 10_000 });
  return { context: ctx, page, errors };
}

// ---- 2. startup -------------------------------------------------------------------------------------------
async function startupSection(browser, server) {
  const downloaded = new Map();
  const results = {};
  for (const c of CONTENDERS) results[c.name] = { fast: [], slow: [], firstFast: [], firstSlow: [] };
  async function load(name, throttle) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const prefix = `${server.url}/apps/${name}/dist/`;
    const got = new Set();
    page.on('request', (r) => { if (r.url().startsWith(prefix)) got.add(r.url().slice(prefix.length)); });
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    if (throttle) await cdp.send('Network.emulateNetworkConditions', throttle);
    await page.goto(`${prefix}index.html#${server.mint()}`, { timeout: 60_000 });
    const s = await (await page.waitForFunction(() => window.__startup, null, { timeout: 60_000 })).jsonValue();
    await context.close();
    if (s.error || s.status !== 200) throw new Error(`${name}: startup failed: ${s.error ?? `status ${s.status}`}`);
    downloaded.set(name, got);
    return s;
  }
  for (const [key, firstKey, n, throttle] of [['fast', 'firstFast', COUNTS.startupLoads, null], ['slow', 'firstSlow', COUNTS.startupLoadsSlow, SLOW_4G]]) {
    for (let r = 0; r < n; r += 1) {
      for (const c of rotate(CONTENDERS, r)) {
        const s = await load(c.name, throttle);
        results[c.name][key].push(s.ready);
        results[c.name][firstKey].push(s.first);
      }
    }
    log(`startup ${key === 'fast' ? 'unthrottled' : 'slow 4G'}: ${n} loads per contender done`);
  }
  return { results, downloaded };
}

// ---- 3. per-call overhead ---------------------------------------------------------------------------------
async function overheadSection(browser, server) {
  const out = {};
  for (const target of ['stub', 'loopback']) {
    const { context, page, errors } = await openPage(browser, server);
    if (!await page.evaluate(() => window.bench.isolated())) throw new Error('the bench page is not cross-origin isolated: timer resolution would be 100 µs');
    if (target === 'stub') await page.evaluate(() => window.bench.installStub());
    const token = server.mint();
    for (const c of CONTENDERS) {
      const options = { token, ...(target === 'stub' && c.name === 'axios' ? { adapter: 'fetch' } : {}) };
      await page.evaluate(([n, o]) => window.bench.create(n, o), [c.name, options]);
      for (const op of ['get', 'post']) await page.evaluate(([n, o]) => window.bench.seq(n, o, 100), [c.name, op]); // warm-up
    }
    const times = {}; const perRound = {}; let bad = 0;
    for (const op of ['get', 'post']) {
      times[op] = {}; perRound[op] = {};
      for (const c of CONTENDERS) { times[op][c.name] = []; perRound[op][c.name] = []; }
      for (let r = 0; r < COUNTS.rounds; r += 1) {
        for (const c of rotate(CONTENDERS, r)) {
          const res = await page.evaluate(([n, o, k]) => window.bench.seq(n, o, k), [c.name, op, COUNTS.calls]);
          times[op][c.name].push(...res.times);
          perRound[op][c.name].push(median(res.times));
          bad += res.bad;
        }
      }
    }
    const missing = target === 'stub' ? await page.evaluate(() => window.bench.missingBearer()) : 0;
    if (bad || missing || errors.length) throw new Error(`overhead (${target}): ${bad} calls not 200, ${missing} without a bearer, page errors: ${errors.join('; ')}`);
    await context.close();
    out[target] = { times, perRound };
    log(`overhead against the ${target}: ${COUNTS.rounds} rounds × ${COUNTS.calls} calls per contender and kind done`);
  }
  return out;
}

// ---- 4. expiry under load ---------------------------------------------------------------------------------
async function expirySection(browser, server) {
  const out = {}; // out[tabs][N][name] = { refresh: [], failed: [], freshLat: [], expLat: [], api401: [] }
  for (const tabs of [1, TABS]) {
    out[tabs] = {};
    for (const n of BURSTS) {
      out[tabs][n] = {};
      for (const name of REFRESHING) out[tabs][n][name] = { refresh: [], failed: [], failures: {}, freshLat: [], expLat: [], api401: [], reuse: [] };
      const rounds = n >= 1000 ? COUNTS.expiryRounds1000 : COUNTS.expiryRounds;
      for (let r = 0; r < rounds; r += 1) {
        for (const name of rotate(REFRESHING, r)) {
          const context = await browser.newContext();
          const pages = [];
          for (let t = 0; t < tabs; t += 1) pages.push(await openPage(browser, server, { context }));
          for (const { page } of pages) await page.evaluate((nm) => window.bench.create(nm), name);
          await pages[0].page.evaluate((nm) => window.bench.login(nm), name);
          // Warm-up: every tab makes one call (a tab without a token gets one, each library its own way).
          // Sequential calls: the expiry burst is what is measured, not how a library copes with no token.
          for (const { page } of pages) {
            for (let i = 0; i < 2; i += 1) {
              const w = await page.evaluate((nm) => window.bench.burst(nm, 1), name);
              if (w.lat.length !== 1) throw new Error(`${name}: warm-up call failed in a tab: ${JSON.stringify(w.failures)}`);
            }
          }
          const per = Math.max(1, Math.round(n / tabs));
          const burst = () => Promise.all(pages.map(({ page }) => page.evaluate(([nm, k]) => window.bench.burst(nm, k), [name, per])));
          const fresh = await burst();
          server.reset();
          server.expireAll();
          const expired = await burst();
          const slot = out[tabs][n][name];
          slot.refresh.push(server.counters.refresh);
          slot.api401.push(server.counters.api401);
          slot.reuse.push(server.counters.reuse);
          slot.freshLat.push(...fresh.flatMap((b) => b.lat));
          slot.expLat.push(...expired.flatMap((b) => b.lat));
          let failed = 0;
          for (const b of expired) for (const [k, v] of Object.entries(b.failures)) { failed += v; slot.failures[k] = (slot.failures[k] ?? 0) + v; }
          slot.failed.push(failed);
          const errs = pages.flatMap((p) => p.errors);
          if (errs.length) slot.pageErrors = errs.slice(0, 3);
          await context.close();
        }
      }
      log(`expiry: ${tabs} tab(s), N = ${n}, ${rounds} round(s) done`);
    }
  }
  return out;
}

// ---- 5. soak ----------------------------------------------------------------------------------------------
const snapshot = memorySnapshot;

async function soakSection(browser, server) {
  const out = {};
  server.setAccessTtl(10);
  try {
    for (const name of REFRESHING) {
      const { context, page, errors } = await openPage(browser, server);
      const cdp = await context.newCDPSession(page);
      await cdp.send('HeapProfiler.enable');
      await page.evaluate((nm) => window.bench.create(nm), name);
      await page.evaluate((nm) => window.bench.login(nm), name);
      const warm = await page.evaluate(([nm, s]) => window.bench.soak(nm, 2_000, 8, s), [name, 5_000]);
      const before = await snapshot(cdp);
      server.reset();
      const run = await page.evaluate(([nm, k, s]) => window.bench.soak(nm, k, 8, s), [name, COUNTS.soakRequests, COUNTS.soakSeconds * 1000]);
      const refreshes = server.counters.refresh;
      const after = await snapshot(cdp);
      out[name] = { warm, run, before, after, refreshes, api401: server.counters.api401, errors: errors.slice(0, 3) };
      await context.close();
      log(`soak ${name}: ${run.issued} requests in ${(run.ms / 1000).toFixed(1)} s, ${run.failed} failed, ${refreshes} refreshes`);
    }
  } finally {
    server.setAccessTtl(3600);
  }
  return out;
}

// ---- report -----------------------------------------------------------------------------------------------
function table(header, rows) {
  return [`| ${header.join(' | ')} |`, `| ${header.map((h, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}

function report({ sizes, startup, overhead, expiry, soak, wallSeconds }) {
  const md = [];
  const headline = {};
  const chromium = (() => { try { return execFileSync(process.env.WTM_CHROMIUM || '/usr/bin/chromium', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return 'Chromium (version unknown)'; } })();
  md.push('# Benchmarks: what wasm-token-manager costs a user, against the libraries they would pick instead', '');
  md.push('Written by `scripts/bench.sh` (which builds the package and runs `node bench/run.mjs`); do not edit by hand. ' +
    'Benchmarks, not tests: nothing here fails a build, and `scripts/test.sh` does not run them.', '');
  md.push(`- date: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`);
  md.push(`- browser: ${chromium}, headless, through playwright-core ${JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/playwright-core/package.json'), 'utf8')).version}`);
  md.push(`- Node ${process.version}; machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; shared with other builds, so absolute times are noisy`);
  md.push(`- command: \`scripts/bench.sh\`${QUICK ? ' (--quick)' : ''}; harness wall time ${wallSeconds.toFixed(0)} s (builds before it not counted)`);
  md.push(`- server: the loopback bench server (\`bench/support/bench-server.mjs\`), the reference server's contract (cookie refresh with rotation and a 10 s reuse grace, CSRF header, 401 + \`WWW-Authenticate\`) at one Map lookup per request; the reference server's debug build verifies ES256 unoptimized (about 9 ms a request here) and would dominate every figure`);
  md.push('- contenders: the code each runs is in `bench/contenders/`, written as each library\'s docs show; `fetch` is the floor (no refresh logic: it takes part in bytes, startup and per-call cost only)');
  md.push('');
  md.push('**How to read it**: ratios against `fetch` and against the best peer, each measured in the same run with the contenders interleaved round by round (the order rotates every round), are the figures that count; milliseconds are context.', '');

  if (sizes) {
    const { lines, best, ours, skippedNote } = sizeTable(sizes);
    headline.bytes = { ours: ours.addedGzip, best: best.label, bestBytes: best.addedGzip, ratio: ours.addedGzip / best.addedGzip };
    md.push('## 1. Bytes: what each contender adds to a minimal Vite production app', '');
    md.push(`Vite ${JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/vite/package.json'), 'utf8')).version} production build of an entry that dynamically imports the contender module, creates it and makes one call; only the files the browser requested while loading the app count (entry, chunks and, for ours, the \`.wasm\`), compressed with gzip -9 and brotli (quality 11); the \`fetch\` app is the baseline subtracted from each row. ` +
      `The package loads its wasm at the first construction; the inline base64 copy Vite emits as a separate chunk (${skippedNote}) is never requested by a production build and is not counted. ` +
      'The size-only rows are other auth libraries without a fetch wrapper to wire to the server (statically imported, every emitted file counted).', '');
    md.push(...lines, '');
    md.push(`Best peer by bytes: ${best.label}. Ours is ${ratio(ours.addedGzip / best.addedGzip)} its size (gzip).`, '');
  }

  if (startup) {
    md.push('## 2. Startup: from `import` to the first usable call', '');
    md.push(`Fresh page loads of the same Vite apps (a new browser context each: empty HTTP and compiled-code caches, cache disabled): the entry takes a timestamp, dynamically imports the contender, creates it and awaits its \`ready\` (ours: the \`.wasm\` fetched, compiled and instantiated); then makes one authenticated GET. ${COUNTS.startupLoads} loads per contender unthrottled and ${COUNTS.startupLoadsSlow} on DevTools' "Slow 4G" profile (CDP \`Network.emulateNetworkConditions\`: 562.5 ms latency, 180 KB/s down, 84 KB/s up), interleaved. Ratios are of medians.`, '');
    const rows = [];
    const f = (n, k) => median(startup.results[n][k]);
    for (const c of CONTENDERS) {
      const s = startup.results[c.name];
      rows.push([c.label, ms(median(s.fast), 1), ms(p95(s.fast), 1), ratio(f(c.name, 'fast') / f(FLOOR, 'fast')), ms(median(s.firstFast), 1),
        ms(median(s.slow), 0), ms(p95(s.slow), 0), ratio(f(c.name, 'slow') / f(FLOOR, 'slow')), ms(median(s.firstSlow), 0)]);
    }
    md.push(...table(['contender', 'ready, median ms', 'p95', '× fetch', 'first call answered, median', 'slow 4G: ready, median ms', 'p95', '× fetch', 'first call answered, median'], rows), '');
    const bestFast = PEERS.reduce((a, b) => (f(b, 'fast') < f(a, 'fast') ? b : a));
    const bestSlow = PEERS.reduce((a, b) => (f(b, 'slow') < f(a, 'slow') ? b : a));
    headline.startup = { fast: f(OURS, 'fast') / f(bestFast, 'fast'), bestFast: label(bestFast), slow: f(OURS, 'slow') / f(bestSlow, 'slow'), bestSlow: label(bestSlow),
      fastMs: f(OURS, 'fast'), slowMs: f(OURS, 'slow') };
    md.push(`Ours against the best peer: unthrottled ${ratio(headline.startup.fast)} (${label(bestFast)}), slow 4G ${ratio(headline.startup.slow)} (${label(bestSlow)}).`, '');
  }

  if (overhead) {
    md.push('## 3. Per-call overhead', '');
    md.push(`Sequential calls timed one by one in the page (cross-origin isolated, so \`performance.now()\` resolves 5 µs), ${COUNTS.rounds} interleaved rounds of ${COUNTS.calls} calls per contender and kind after 100 warm-up calls; GET \`/api/me\` and POST \`/api/echo\` with a 64 KiB body, the response JSON read. "× fetch" and "× best peer" are the medians over rounds of the ratio of round medians (a peer below 1.00× fetch on loopback shows the noise level: the server and the browser share 2 busy cores). ` +
      '(a) **stub**: `window.fetch` replaced by a function that answers at once, so the figure is the wrapper\'s own cost (axios here uses its `fetch` adapter; its default browser adapter, XHR, cannot be stubbed that way). (b) **loopback**: the bench server over HTTP/1.1 (axios with its default XHR adapter).', '');
    headline.overhead = {};
    for (const target of ['stub', 'loopback']) {
      const { times, perRound } = overhead[target];
      for (const op of ['get', 'post']) {
        const roundRatio = (a, b) => median(perRound[op][a].map((x, i) => x / perRound[op][b][i]));
        const best = PEERS.reduce((a, b) => (median(times[op][b]) < median(times[op][a]) ? b : a));
        const rows = CONTENDERS.map((c) => [c.label, ms(median(times[op][c.name]) * 1000, 0), ms(p95(times[op][c.name]) * 1000, 0),
          ratio(roundRatio(c.name, FLOOR)), c.ours ? ratio(roundRatio(c.name, best)) : '—']);
        md.push(`**${target === 'stub' ? '(a) stub fetch' : '(b) loopback server'}, ${op === 'get' ? 'GET' : 'POST 64 KiB'}** (best peer: ${label(best)})`, '');
        md.push(...table(['contender', 'median µs/call', 'p95 µs', '× fetch', '× best peer'], rows), '');
        headline.overhead[`${target}-${op}`] = { vsFetch: roundRatio(OURS, FLOOR), vsBest: roundRatio(OURS, best), best: label(best) };
      }
    }
  }

  if (expiry) {
    md.push('## 4. Expiry under load', '');
    md.push(`Each contender signs in (a fresh browser context per contender and round), makes N concurrent GETs with a fresh token (the baseline burst), then the server expires every access token it issued (it answers 401 \`invalid_token\`, exactly as after \`exp\`, while the client still holds an unexpired token, so no contender can renew ahead by its clock) and the same N concurrent GETs are issued at once. Counted at the server: refresh calls that reached it (goal: exactly 1 at every N), 401s it answered; in the page: requests that did not end in a 200 (goal: 0). Added latency: p50 and p95 of the expired burst minus those of the fresh burst, over the requests that ended in a 200 (a negative figure is noise, or a burst whose slow requests failed). ${COUNTS.expiryRounds} round(s) per N at N = 10 and 100, ${COUNTS.expiryRounds1000} at N = 1,000 (the bursts of 1,000 take most of the harness's time), contenders rotated; a figure "a–b" is the range over rounds. With ${TABS} tabs: one browser context, ${TABS} pages, N/${TABS} requests from each at the same moment. \`fetch\` has no refresh logic and is left out.`, '');
    const range = (xs) => { const lo = Math.min(...xs); const hi = Math.max(...xs); return lo === hi ? `${lo}` : `${lo}–${hi}`; };
    headline.expiry = {};
    for (const tabs of [1, TABS]) {
      const rows = [];
      for (const n of BURSTS) {
        for (const name of REFRESHING) {
          const s = expiry[tabs][n][name];
          const miss = (s.refresh.some((x) => x !== 1) ? ' ✗' : '') ;
          const lost = s.failed.some((x) => x !== 0) ? ` ✗ (all rounds: ${Object.entries(s.failures).map(([k, v]) => `${v}× ${k}`).join(', ')})` : '';
          rows.push([String(n), label(name), `${range(s.refresh)}${miss}`, `${range(s.failed)}${lost}`, range(s.api401),
            ms(median(s.expLat) - median(s.freshLat), 1), ms(p95(s.expLat) - p95(s.freshLat), 1), ms(median(s.freshLat), 1)]);
          if (name === OURS) headline.expiry[`${tabs}-${n}`] = { refresh: s.refresh, failed: s.failed };
        }
      }
      md.push(`**${tabs === 1 ? 'One tab' : `${TABS} tabs of one browser context`}** (✗: misses the goal)`, '');
      md.push(...table(['N', 'contender', 'refresh calls', 'requests lost or failed', '401s answered', 'added p50 ms', 'added p95 ms', 'fresh burst p50 ms'], rows), '');
    }
    md.push('Why the peers miss, read from their code (bench/contenders/ and the libraries): **axios-auth-refresh** 5 (default `deduplicateRefresh: true`) refreshes once, but a request whose 401 arrives while that refresh is in flight is rejected, not queued (only requests *issued* during the refresh wait for it); each tab has its own instance, so 5 tabs make 5 refreshes. **ky**\'s README hook has no single-flight: every 401 refreshes, the refresh token rotates under the concurrent calls and an older one is a reuse that ends the session (the failures), and `ky.retry` waits ky\'s retry backoff (300 ms) before resending; at N = 1,000 its default 10 s timeout fires. **openapi-fetch**\'s middleware as documented has no single-flight either (same rotation failures). **auth0-spa-js**\'s `createFetcher` retries only DPoP-nonce errors: a 401 goes back to the caller, so a token the server expired early fails every request that meets it (it does renew ahead by its clock: see the soak). Ours: one refresh for all, in 1 and 5 tabs, nothing lost; at N = 1,000 the added latency is large because on HTTP/1.1 Chromium sends at most 6 requests at a time to a host, so the refresh call waits behind the burst\'s own 401s and the 1,000 retries follow it.', '');
    headline.expiryPeers = Object.fromEntries(PEERS.map((p) => [p, Math.max(...expiry[1][BURSTS.at(-1)][p].refresh)]));
  }

  if (soak) {
    md.push('## 5. Soak', '');
    md.push(`Per contender, in its own page: sign in, 2,000 requests of warm-up, then GETs kept 8 in flight until ${COUNTS.soakRequests.toLocaleString('en')} were issued or ${COUNTS.soakSeconds} s passed (the time bound is what ends it on this machine: 100,000 requests per contender would not fit the 10-minute budget, so the count is scaled down and shown), with 10-second access tokens (the server's clock ends them; contenders that renew ahead do so, the others meet the 401). Snapshots after two forced garbage collections (CDP): JS heap used, \`jsEventListeners\` (Memory.getDOMCounters), live \`Promise\` objects (Runtime.queryObjects: waiters left pending), and in-page requests issued but never settled. Goal: heap within 5 % of the warm-up figure, no listener or promise added, nothing pending.`, '');
    const rows = [];
    headline.soak = {};
    for (const name of REFRESHING) {
      const s = soak[name];
      const growth = (s.after.heap - s.before.heap) / s.before.heap;
      const flag = (ok) => (ok ? '' : ' ✗');
      rows.push([label(name), s.run.issued.toLocaleString('en'), `${(s.run.ms / 1000).toFixed(1)} s`, `${s.run.failed}${flag(s.run.failed === 0)}`, String(s.refreshes),
        `${(s.before.heap / 1024).toFixed(0)} → ${(s.after.heap / 1024).toFixed(0)} KiB (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)} %)${flag(Math.abs(growth) <= 0.05)}`,
        `${s.before.listeners} → ${s.after.listeners}${flag(s.after.listeners <= s.before.listeners)}`,
        `${s.before.promises} → ${s.after.promises}${flag(s.after.promises <= s.before.promises)}`,
        `${s.run.pending}${flag(s.run.pending === 0)}`,
        s.before.backing === null ? '—' : `${(s.before.backing / 1024).toFixed(0)} → ${(s.after.backing / 1024).toFixed(0)} KiB`]);
      headline.soak[name] = { growth, issued: s.run.issued };
    }
    md.push('Refresh calls differ by design: ours renews ahead of `exp` (at half-life for a 10 s token, so about every 5 s), auth0\'s getAccessToken renews when its clock says the token expired; the others refresh on a 401, and a request that meets the 401 while another refresh is settling can fail (axios-auth-refresh rejects it; ky\'s rotation race).', '');
    md.push(...table(['contender', 'requests', 'time', 'failed', 'refresh calls', 'JS heap after warm-up → end', 'listeners', 'live promises', 'pending', 'ArrayBuffer backing stores (ours: wasm memory)'], rows), '');
  }
  return { md: md.join('\n'), headline };
}

// ---- main -------------------------------------------------------------------------------------------------
const server = await startBenchServer({ statics: { '/www/': WWW, '/apps/': APPS_DIR, '/pkg/': path.join(ROOT, 'pkg') } });
const browser = await launchChromium();
const results = {};
try {
  log(`counts: ${JSON.stringify(COUNTS)}; bursts ${BURSTS.join(', ')}`);
  await bundleContenders();
  let apps = null;
  if (ONLY.has('bytes') || ONLY.has('startup')) { apps = await buildApps(); log('Vite apps built'); }
  let startup = null;
  if (ONLY.has('bytes') || ONLY.has('startup')) { startup = await startupSection(browser, server); if (ONLY.has('startup')) results.startup = startup; }
  if (ONLY.has('bytes')) results.sizes = measureSizes(apps, startup.downloaded);
  if (ONLY.has('overhead')) results.overhead = await overheadSection(browser, server);
  if (ONLY.has('expiry')) results.expiry = await expirySection(browser, server);
  if (ONLY.has('soak')) results.soak = await soakSection(browser, server);
} finally {
  await browser.close();
  await server.close();
}
const wallSeconds = (Date.now() - started) / 1000;
const { md, headline } = report({ ...results, wallSeconds });
console.log(`\n${md}\n`);
fs.mkdirSync(path.join(ROOT, 'target/bench'), { recursive: true });
fs.writeFileSync(path.join(ROOT, 'target/bench/headline.json'), `${JSON.stringify(headline, null, 2)}\n`);
if (WRITE) {
  // The server's section (bench/server-load.mjs, between its markers) is its own: carried over as it is.
  const previous = fs.existsSync(path.join(ROOT, 'BENCHMARKS.md')) ? fs.readFileSync(path.join(ROOT, 'BENCHMARKS.md'), 'utf8') : '';
  const serverSection = /<!-- server-load:start -->[\s\S]*?<!-- server-load:end -->/.exec(previous)?.[0];
  fs.writeFileSync(path.join(ROOT, 'BENCHMARKS.md'), `${md}\n${serverSection ? `\n${serverSection}\n` : ''}`);
  log('wrote BENCHMARKS.md');
} else {
  log('BENCHMARKS.md not written (only a full run writes it)');
}
log(`harness wall time ${wallSeconds.toFixed(0)} s`);
