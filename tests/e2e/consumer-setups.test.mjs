// C64 (import and blocked loads), issue 15: the packed tarball in every mainstream app setup, with no configuration
// for the package. Each fixture of tests/consumers/ is copied to target/consumers/<name>/; one `npm ci` from
// tests/consumers/package-lock.json installs every tool there (Vite 5–8, webpack, Rollup, esbuild, Next.js,
// Vitest + jsdom) and the tarball is installed once into target/consumers/node_modules, which every fixture
// resolves by walking up. Browser setups run tests/consumers/shared/flow.js in headless Chromium, same-origin
// with the real auth server (short access tokens): login → API call → expiry → refresh → retry, then a
// revoked access token → 401 → refresh → retry. Built output is served by the auth server (--www); dev servers
// and `next start` sit behind a loopback proxy that routes /auth, /api, /demo and /metrics to the auth server.
// Node and Vitest setups check the package's documented behaviour outside a browser.
//
// Set WTM_CONSUMERS_REUSE_INSTALL=1 to keep an install made from the same lock (local iteration only), and
// WTM_CONSUMERS_TARBALL=path.tgz to try another packed build of the package, WTM_CONSUMERS_DIR=dir to work
// elsewhere than target/consumers (two runs must not share one folder: each starts with npm ci).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { launchChromium } from './support/browser.mjs';
import { collectErrors } from './support/app.mjs';
import { ROOT, startAuthServer } from './support/server.mjs';
import { startProxy } from './support/proxy.mjs';
import { freePort, run, startServer } from './support/processes.mjs';

const VERSION = JSON.parse(fs.readFileSync(path.join(ROOT, 'pkg-template/package.json'), 'utf8')).version;
const TARBALL = process.env.WTM_CONSUMERS_TARBALL || path.join(ROOT, `target/npm/wasm-token-manager-${VERSION}.tgz`);
const FIXTURES = path.join(ROOT, 'tests/consumers');
const WORK = process.env.WTM_CONSUMERS_DIR ? path.resolve(process.env.WTM_CONSUMERS_DIR) : path.join(ROOT, 'target/consumers');
const MODULES = path.join(WORK, 'node_modules');
// The auth server also serves a package folder at /pkg/ (unused here): the installed one, so these tests depend
// on the tarball only, not on the work tree's pkg/.
const INSTALLED = path.join(MODULES, 'wasm-token-manager');
const ACCESS_TTL = 3; // seconds: the flow waits past one expiry
const NPM_CI_TIMEOUT = 600_000;
const BUILD_TIMEOUT = 300_000;
const TEST_TIMEOUT = 600_000;
const ENV = { NEXT_TELEMETRY_DISABLED: '1', CI: '1' };

const bin = {
  vite5: path.join(MODULES, 'vite5/bin/vite.js'),
  vite6: path.join(MODULES, 'vite6/bin/vite.js'),
  vite7: path.join(MODULES, 'vite7/bin/vite.js'),
  vite8: path.join(MODULES, 'vite/bin/vite.js'),
  webpack: path.join(MODULES, 'webpack/bin/webpack.js'),
  rollup: path.join(MODULES, 'rollup/dist/bin/rollup'),
  esbuild: path.join(MODULES, '.bin/esbuild'), // an executable: a JS shim, or the native binary its postinstall put there
  next: path.join(MODULES, 'next/dist/bin/next'),
  vitest: path.join(MODULES, 'vitest/vitest.mjs'),
};

/** Measured seconds, printed at the end (and kept in target/consumers/timings.json). */
const timings = {};
const seconds = (ms) => Math.round(ms / 100) / 10;

let browser;

before(async () => {
  assert.ok(fs.existsSync(TARBALL), `${TARBALL} is missing: run scripts/build.sh`);
  fs.mkdirSync(WORK, { recursive: true });
  for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(FIXTURES, f), path.join(WORK, f));

  const lockHash = crypto.createHash('sha256').update(fs.readFileSync(path.join(FIXTURES, 'package-lock.json'))).digest('hex');
  const stamp = path.join(MODULES, '.consumers-lock-sha256');
  const reuse = process.env.WTM_CONSUMERS_REUSE_INSTALL === '1' && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === lockHash;
  if (!reuse) {
    const ci = await run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: WORK, timeout: NPM_CI_TIMEOUT });
    assert.ok(!ci.timedOut, `npm ci in ${WORK} did not finish within ${NPM_CI_TIMEOUT / 1000} s:\n${ci.output}`);
    assert.equal(ci.code, 0, `npm ci in ${WORK} failed:\n${ci.output}`);
    fs.writeFileSync(stamp, lockHash);
    timings['npm ci'] = seconds(ci.ms);
  } else {
    timings['npm ci'] = 'reused';
  }
  // The package under test, from the packed tarball, as a user installs it; not saved, so the lock stays as committed.
  const add = await run('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--loglevel=error', TARBALL], { cwd: WORK, timeout: NPM_CI_TIMEOUT });
  assert.equal(add.code, 0, `npm install ${TARBALL} failed:\n${add.output}`);
  timings['npm install tarball'] = seconds(add.ms);
  const installed = JSON.parse(fs.readFileSync(path.join(MODULES, 'wasm-token-manager/package.json'), 'utf8'));
  assert.equal(installed.version, VERSION);
  for (const [name, file] of Object.entries(bin)) assert.ok(fs.existsSync(file), `${name}: ${file} is missing after npm ci`);

  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  fs.mkdirSync(WORK, { recursive: true });
  fs.writeFileSync(path.join(WORK, 'timings.json'), `${JSON.stringify(timings, null, 2)}\n`);
  console.log(`consumer setups, measured seconds: ${JSON.stringify(timings)}`);
});

/** Copies fixture `name` (and the shared flow module) to a clean target/consumers/<as>/. */
function copyFixture(name, as = name) {
  const dir = path.join(WORK, as);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(path.join(FIXTURES, name), dir, { recursive: true });
  fs.copyFileSync(path.join(FIXTURES, 'shared/flow.js'), path.join(dir, 'flow.js'));
  return dir;
}

/** Runs a build step and fails the test with its output if it fails. */
async function build(label, command, args, cwd) {
  const r = await run(command, args, { cwd, env: ENV, timeout: BUILD_TIMEOUT });
  assert.ok(!r.timedOut, `${label} did not finish within ${BUILD_TIMEOUT / 1000} s:\n${r.output}`);
  assert.equal(r.code, 0, `${label} failed (exit ${r.code}):\n${r.output}`);
  return r;
}

/**
 * Opens `url` in a fresh page, waits for the flow's result and checks it against `server`'s counters.
 * Returns a short description of how the wasm was obtained.
 */
async function checkFlow(t, url, server, { appExited, dpop = false } = {}) {
  const page = await browser.newPage();
  const errors = collectErrors(page);
  const failed = [];
  const wasm = [];
  const bearer = [];
  const dpopModule = [];
  page.on('request', (req) => {
    const { pathname } = new URL(req.url());
    const headers = req.headers();
    // With dpop: `Authorization: DPoP <token>` and a proof on every API call, never a bearer.
    if (pathname === '/api/me') {
      bearer.push(dpop ? /^DPoP \S+$/.test(headers.authorization ?? '') && Boolean(headers.dpop)
        : /^Bearer \S+$/.test(headers.authorization ?? ''));
    }
    if (/dpop[^/]*\.js$/.test(pathname)) dpopModule.push(pathname);
  });
  page.on('response', (res) => {
    const { pathname } = new URL(res.url());
    if (pathname.endsWith('.wasm')) wasm.push({ path: pathname, status: res.status(), type: res.headers()['content-type'] ?? null });
    if (res.status() >= 400) failed.push(`${res.status()} ${pathname}`);
  });
  const started = Date.now();
  try {
    // An uncaught page error (e.g. a module graph that fails to link or evaluate) means the flow never reports:
    // fail at once with it rather than waiting out the timeout.
    const crashed = new Promise((resolve) => page.once('pageerror', resolve));
    await page.goto(url);
    const done = page.waitForFunction(() => window.__consumerResult !== undefined, null, { timeout: 60_000 });
    done.catch(() => {}); // when the page crashed first, this rejects once the page is closed
    const stopped = appExited?.then((r) => ({ message: `the app server exited (code ${r.code}, signal ${r.signal})` })) ?? new Promise(() => {});
    const first = await Promise.race([done.then(() => null), crashed, stopped]);
    if (first) {
      await new Promise((resolve) => setTimeout(resolve, 500)); // let the errors that follow it arrive
      assert.fail(`the flow did not finish: ${first.message}\nall page errors: ${errors.join('\n')}\nfailed requests: ${failed.join(', ')}`);
    }
    const result = await page.evaluate(() => window.__consumerResult);
    const shown = JSON.stringify(result);
    assert.equal(result.error, undefined, `the app's flow failed at step "${result.step}": ${result.error} (code ${result.code})\n${shown}\npage errors: ${errors.join('\n')}`);
    assert.equal(result.login, 200, shown);
    assert.equal(result.authenticatedAfterLogin, true, shown);
    assert.deepEqual(result.first, { status: 200, sub: 'demo' }, 'the first API call');
    assert.deepEqual(result.afterExpiry, { status: 200, sub: 'demo' }, 'the API call after the login token expired');
    assert.equal(result.revoke, 200, shown);
    assert.deepEqual(result.afterRevoke, { status: 200, sub: 'demo' }, 'the API call after the access token was revoked');
    assert.equal(result.authenticatedAfterLogout, false, shown);
    assert.equal(result.tokenchange[0], 'login', shown);
    assert.ok(result.tokenchange.filter((s) => s === 'refresh').length >= 2, `a refresh after expiry and one after revocation: ${shown}`);
    assert.ok(bearer.length >= 4 && bearer.every(Boolean), `every /api/me request carried a bearer: ${JSON.stringify(bearer)}`);
    assert.ok(await server.metric('auth_refresh_requests_total', { outcome: 'ok' }) >= 2, 'refresh calls reached the server');
    assert.ok(await server.metric('auth_api_requests_total', { outcome: 'ok' }) >= 3, 'the bearer was accepted by the API');
    assert.ok(await server.metric('auth_api_requests_total', { outcome: 'unauthorized' }) >= 1, 'the revoked token was refused once, then retried');
    assert.equal(await server.metric('auth_logouts_total'), 1);
    assert.equal(dpopModule.length > 0, dpop, `the DPoP module is loaded exactly when dpop is on: ${JSON.stringify(dpopModule)}`);
    if (dpop) assert.equal(await server.metric('auth_dpop_key_mismatch_total'), 0, 'every proof was of the session\'s key');
    // Chromium prints "Failed to load resource" for the server's nonce challenges; collectErrors leaves those out.
    assert.deepEqual(errors, [], 'no page errors');
    // With dpop, the first login and the first refresh after it may meet a server nonce challenge (400), answered by
    // one resend.
    const challenges = dpop ? ['400 /auth/login', '400 /auth/refresh'] : [];
    const unexpected = failed.filter((f) => f !== '401 /api/me' && !/^404 .*\.wasm$/.test(f) && !challenges.includes(f));
    assert.deepEqual(unexpected, [], 'no failed requests but the 401 of the revoked token (and a missing .wasm URL, which the package falls back from)');
    // The contract of the package entry: `tm.ready` is a Promise (resolved before the flow went on).
    assert.equal(result.readyIsPromise, true, 'tm.ready is a Promise');
    const loaded = wasm.find((w) => w.status === 200 && w.type === 'application/wasm');
    const how = loaded ? `wasm fetched from ${loaded.path}` : `no .wasm fetched (${wasm.map((w) => `${w.status} ${w.path}`).join(', ') || 'none requested'}): inline fallback`;
    t.diagnostic(`${how}; flow took ${seconds(Date.now() - started)} s`);
    return how;
  } finally {
    await page.close();
  }
}

/**
 * Serves `www` with the auth server and runs the flow on `pagePath`; with `dpop`, the server requires DPoP
 * (`--dpop required`) and the page creates its manager with `dpop: true`.
 */
async function checkServedBuild(t, label, www, pagePath = '/', { dpop = false } = {}) {
  const args = dpop ? ['--dpop', 'required'] : [];
  const server = await startAuthServer({ www, accessTtl: ACCESS_TTL, pkg: INSTALLED, args });
  try {
    const started = Date.now();
    const how = await checkFlow(t, `${server.url}${pagePath}${dpop ? '?dpop' : ''}`, server, { dpop });
    timings[label] = { ...timings[label], flow: seconds(Date.now() - started), wasm: how };
  } finally {
    await server.stop();
  }
}

/** Starts an app server with `startApp(port)`, puts it and the auth server behind the proxy, runs the flow. */
async function checkBehindProxy(t, label, startApp, pagePath = '/') {
  const server = await startAuthServer({ accessTtl: ACCESS_TTL, pkg: INSTALLED });
  let app;
  let proxy;
  try {
    const port = await freePort();
    app = await startApp(port);
    timings[label] = { ...timings[label], serverStart: seconds(app.ms) };
    proxy = await startProxy({ backend: server.url, app: app.url });
    const started = Date.now();
    const how = await checkFlow(t, `${proxy.url}${pagePath}`, server, { appExited: app.exited });
    timings[label] = { ...timings[label], flow: seconds(Date.now() - started), wasm: how };
  } catch (error) {
    if (app) error.message += `\n--- app server output ---\n${app.output()}`;
    throw error;
  } finally {
    await proxy?.close();
    await app?.stop();
    await server.stop();
  }
}

test('C64 Vite 8 production build with dpop: true against --dpop required: the DPoP module is its own chunk, and the whole flow runs on DPoP-bound tokens', { timeout: TEST_TIMEOUT }, async (t) => {
  const dir = copyFixture('vite-app', 'vite8-build-dpop');
  const r = await build('vite 8 build (dpop)', process.execPath, [bin.vite8, 'build', '--logLevel', 'warn'], dir);
  const chunks = fs.readdirSync(path.join(dir, 'dist', 'assets')).filter((f) => /dpop.*\.js$/.test(f));
  assert.equal(chunks.length, 1, `one DPoP chunk in the build: ${chunks}`);
  if (r.output.trim()) t.diagnostic(`vite 8 build said: ${r.output.trim()}`);
  await checkServedBuild(t, 'vite 8 build (dpop)', path.join(dir, 'dist'), '/', { dpop: true });
});

for (const [major, viteBin] of [['5', 'vite5'], ['6', 'vite6'], ['7', 'vite7'], ['8', 'vite8']]) {
  test(`C64 Vite ${major} dev server, no config: login → API → expiry → refresh → retry`, { timeout: TEST_TIMEOUT }, async (t) => {
    const dir = copyFixture('vite-app', `vite${major}-dev`);
    // The fixture has no package.json of its own, so Vite's package root is target/consumers, whose node_modules
    // holds Vite's dependency cache: start each version from an empty one.
    fs.rmSync(path.join(MODULES, '.vite'), { recursive: true, force: true });
    await checkBehindProxy(t, `vite ${major} dev`, (port) => startServer(process.execPath,
      [bin[viteBin], '--host', '127.0.0.1', '--port', String(port), '--strictPort', '--clearScreen', 'false'],
      { cwd: dir, env: ENV, url: `http://127.0.0.1:${port}/` }));
  });

  test(`C64 Vite ${major} production build, no config, served by the auth server: login → API → expiry → refresh → retry`, { timeout: TEST_TIMEOUT }, async (t) => {
    const dir = copyFixture('vite-app', `vite${major}-build`);
    const r = await build(`vite ${major} build`, process.execPath, [bin[viteBin], 'build', '--logLevel', 'warn'], dir);
    timings[`vite ${major} build`] = { build: seconds(r.ms) };
    if (r.output.trim()) t.diagnostic(`vite ${major} build said: ${r.output.trim()}`);
    await checkServedBuild(t, `vite ${major} build`, path.join(dir, 'dist'));
  });
}

test('C64 webpack 5 with no configuration file: login → API → expiry → refresh → retry', { timeout: TEST_TIMEOUT }, async (t) => {
  const dir = copyFixture('webpack-app');
  const r = await build('webpack', process.execPath, [bin.webpack, '--mode=production'], dir);
  timings.webpack = { build: seconds(r.ms) };
  t.diagnostic(`webpack emitted: ${fs.readdirSync(path.join(dir, 'dist')).join(', ')}`);
  await checkServedBuild(t, 'webpack', dir, '/index.html');
});

test('C64 Rollup with node-resolve, ES module output: login → API → expiry → refresh → retry', { timeout: TEST_TIMEOUT }, async (t) => {
  const dir = copyFixture('rollup-app');
  const r = await build('rollup', process.execPath, [bin.rollup, '-c'], dir);
  timings.rollup = { build: seconds(r.ms) };
  t.diagnostic(`rollup emitted: ${fs.readdirSync(path.join(dir, 'dist')).join(', ')}`);
  await checkServedBuild(t, 'rollup', dir, '/index.html');
});

test('C64 esbuild --bundle --format=esm: login → API → expiry → refresh → retry', { timeout: TEST_TIMEOUT }, async (t) => {
  const dir = copyFixture('esbuild-app', 'esbuild-esm');
  const r = await build('esbuild (esm)', bin.esbuild, ['src/main.js', '--bundle', '--format=esm', '--outdir=dist-esm', '--log-level=warning'], dir);
  timings['esbuild esm'] = { build: seconds(r.ms) };
  if (r.output.trim()) t.diagnostic(`esbuild said: ${r.output.trim()}`);
  await checkServedBuild(t, 'esbuild esm', dir, '/index.html');
});

test('C64 esbuild --bundle with its default format (iife, a classic script): login → API → expiry → refresh → retry', { timeout: TEST_TIMEOUT }, async (t) => {
  const dir = copyFixture('esbuild-app', 'esbuild-iife');
  const r = await build('esbuild (default iife)', bin.esbuild, ['src/main.js', '--bundle', '--outfile=dist-iife/main.js', '--log-level=warning'], dir);
  timings['esbuild iife'] = { build: seconds(r.ms) };
  if (r.output.trim()) t.diagnostic(`esbuild said: ${r.output.trim()}`);
  await checkServedBuild(t, 'esbuild iife', dir, '/iife.html');
});

for (const [bundler, flags] of [['Turbopack', []], ['webpack', ['--webpack']]]) {
  test(`C64 Next.js 16 app router, next build (${bundler}) prerenders a 'use client' page importing the package; next start: login → API → expiry → refresh → retry`, { timeout: TEST_TIMEOUT }, async (t) => {
    const label = `next ${bundler}`;
    const dir = copyFixture('next-app', `next-${bundler.toLowerCase()}`);
    const r = await build(`next build ${flags.join(' ')}`, process.execPath, [bin.next, 'build', ...flags], dir);
    timings[label] = { build: seconds(r.ms) };
    const prerendered = path.join(dir, '.next/server/app/index.html');
    assert.ok(fs.existsSync(prerendered), `next build prerendered / to ${prerendered}:\n${r.output}`);
    assert.match(fs.readFileSync(prerendered, 'utf8'), /client component rendered/, 'the client component was rendered on the server');
    await checkBehindProxy(t, label, (port) => startServer(process.execPath,
      [bin.next, 'start', '--port', String(port), '--hostname', '127.0.0.1'],
      { cwd: dir, env: ENV, url: `http://127.0.0.1:${port}/` }));
  });
}

test('C64 plain <script type="module"> page with an import map, no bundler: login → API → expiry → refresh → retry', { timeout: TEST_TIMEOUT }, async (t) => {
  const dir = copyFixture('plain', 'plain-app');
  // Served as a static site, so the package must sit below the site root, where the import map points.
  fs.cpSync(path.join(MODULES, 'wasm-token-manager'), path.join(dir, 'node_modules/wasm-token-manager'), { recursive: true });
  await checkServedBuild(t, 'plain', dir, '/flow.html');
});

/** Runs a Node program of the node-app fixture and returns the JSON line it prints when it exits. */
async function runNodeProgram(t, file) {
  const dir = path.join(WORK, 'node-app');
  if (!fs.existsSync(path.join(dir, 'checks.cjs'))) copyFixture('node-app');
  // A guard, not a timing assertion: a process that something keeps alive never exits by itself.
  const r = await run(process.execPath, [file], { cwd: dir, timeout: 30_000 });
  timings[`node ${file}`] = seconds(r.ms);
  assert.ok(!r.timedOut, `node ${file} did not exit by itself (killed after 30 s): something keeps the process alive\n${r.output}`);
  const line = r.output.split('\n').find((l) => l.startsWith('{"loaded"'));
  assert.ok(line, `node ${file} printed no result (exit ${r.code}):\n${r.output}`);
  const result = JSON.parse(line);
  if (r.output.trim() !== line) t.diagnostic(`node ${file} also printed: ${r.output.replace(line, '').trim()}`);
  assert.equal(result.loadError, undefined, `loading the package failed: ${JSON.stringify(result.loadError)}`);
  assert.equal(r.code, 0, `node ${file} exited with ${r.code}:\n${r.output}`);
  assert.equal(result.typeofTokenManager, 'function');
  assert.equal(result.typeofTokenManagerError, 'function', `TokenManagerError is exported (exports: ${result.exports})`);
  assert.equal(result.constructed, true, `new TokenManager() works without a DOM: ${JSON.stringify(result.constructError)}`);
  assert.equal(result.isAuthenticated, false);
  assert.equal(result.readyIsPromise, true, 'tm.ready is a Promise');
  for (const [what, outcome] of Object.entries(result.checks)) {
    assert.deepEqual(
      { name: outcome.name, code: outcome.code, isError: outcome.isError, instanceOfTokenManagerError: outcome.instanceOfTokenManagerError },
      { name: 'TokenManagerError', code: 'UNSUPPORTED_ENVIRONMENT', isError: true, instanceOfTokenManagerError: true },
      `${what} rejects with TokenManagerError UNSUPPORTED_ENVIRONMENT: ${JSON.stringify(outcome)}`,
    );
  }
  assert.deepEqual(Object.keys(result.checks), ['ready', 'fetch', 'login', 'refresh', 'logout']);
  assert.equal(result.isAuthenticatedAfter, false);
  assert.deepEqual(result.unhandledRejections, [], 'a manager nobody awaits leaves no unhandled rejection');
}

test('C64 Node 20 import(): loads, inert without a DOM (UNSUPPORTED_ENVIRONMENT), the process exits by itself', { timeout: TEST_TIMEOUT }, async (t) => {
  copyFixture('node-app');
  await runNodeProgram(t, 'import.mjs');
});

test('C64 Node 20 require(): loads, inert without a DOM (UNSUPPORTED_ENVIRONMENT), the process exits by itself', { timeout: TEST_TIMEOUT }, async (t) => {
  await runNodeProgram(t, 'require.cjs');
});

test('C64 Vitest (jsdom environment, no config): a module using the package loads and its manager works', { timeout: TEST_TIMEOUT }, async (t) => {
  const dir = copyFixture('vitest-app');
  const out = path.join(dir, 'vitest-result.json');
  const r = await run(process.execPath, [bin.vitest, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`], { cwd: dir, env: ENV, timeout: 120_000 });
  timings.vitest = seconds(r.ms);
  assert.ok(!r.timedOut, `vitest run did not finish (killed after 120 s):\n${r.output}`);
  assert.equal(r.code, 0, `vitest run failed (exit ${r.code}):\n${r.output}`);
  const report = JSON.parse(fs.readFileSync(out, 'utf8'));
  assert.equal(report.numPassedTests, 2, r.output);
  assert.equal(report.numFailedTests, 0, r.output);
  t.diagnostic(r.output.trim().split('\n').filter((l) => /✓|passed|failed|warn/i.test(l)).join(' | '));
});
