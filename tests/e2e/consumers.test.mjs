// Zero-config consumption of the packed npm tarball (issue 2, item 5): a plain <script type="module"> page
// with an import map and no bundler, and the TypeScript declarations in a strict app. Every bundler and framework
// setup (Vite 5-8, webpack, Rollup, esbuild, Next.js, Node, Vitest) is in consumer-setups.test.mjs. Each fixture is copied
// to a clean folder under target/consumers/, the tarball is installed there with npm, and the page is loaded
// in headless Chromium, where it constructs a TokenManager and fetches through it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium, watchErrors } from './support/browser.mjs';
import { startStaticServer } from './support/static-server.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const VERSION = JSON.parse(fs.readFileSync(path.join(ROOT, 'pkg-template/package.json'), 'utf8')).version;
const TARBALL = path.join(ROOT, `target/npm/wasm-token-manager-${VERSION}.tgz`);

let browser;
before(async () => {
  assert.ok(fs.existsSync(TARBALL), `${TARBALL} is missing: run scripts/build.sh`);
  browser = await launchChromium();
});
after(() => browser?.close());

/** Copies a fixture to a clean folder and installs the packed tarball into it, as a user would. */
function prepare(name) {
  const dir = path.join(ROOT, 'target/consumers', name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(path.join(ROOT, 'tests/consumers', name), dir, { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'tests/consumers/shared/check.js'), path.join(dir, 'check.js'));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', TARBALL], { cwd: dir, stdio: 'pipe' });
  const installed = JSON.parse(fs.readFileSync(path.join(dir, 'node_modules/wasm-token-manager/package.json'), 'utf8'));
  assert.equal(installed.version, VERSION);
  return dir;
}

async function loadAndCheck(dir) {
  const server = await startStaticServer(dir);
  const page = await browser.newPage();
  const errors = watchErrors(page);
  try {
    await page.goto(`${server.url}/index.html`);
    await page.waitForFunction(() => window.__consumerResult !== undefined, null, { timeout: 20_000 });
    const result = await page.evaluate(() => window.__consumerResult);
    assert.equal(result.error, undefined, `the consumer page failed: ${result.error}`);
    assert.equal(result.status, 200);
    assert.equal(result.sentBearer, true, 'the bearer must reach the page origin');
    assert.equal(result.isAuthenticated, true);
    assert.equal(result.expiresAtInLifetime, true, `expiresAt ${result.expiresAt} is receipt + 600 s`);
    assert.deepEqual(result.tokenchange, ['set']);
    assert.deepEqual(errors, []);
    const whoami = server.requests.filter((r) => r.path === '/whoami');
    assert.equal(whoami.length, 1);
    return server.requests;
  } finally {
    await page.close();
    await server.close();
  }
}

test('the packed tarball ships exactly the files package.json lists', () => {
  const listing = execFileSync('tar', ['-tzf', TARBALL], { encoding: 'utf8' }).trim().split('\n').sort();
  assert.deepEqual(listing, [
    'package/README.md',
    'package/index.d.ts',
    'package/index.js',
    'package/package.json',
    'package/wasm_token_manager_bg.inline.js',
    'package/wasm_token_manager_bg.wasm',
    'package/wasm_token_manager_dpop.js',
  ]);
});

test('plain ES module page with an import map, no bundler', async () => {
  const dir = prepare('plain');
  const requests = await loadAndCheck(dir);
  assert.ok(requests.some((r) => r.path.endsWith('/wasm_token_manager_bg.wasm')), 'the .wasm was fetched next to the entry module');
});

test('C64: importing the package does nothing: no globals, no request but its own module, not even the wasm', async () => {
  const dir = prepare('plain');
  const server = await startStaticServer(dir);
  const page = await browser.newPage();
  const errors = watchErrors(page);
  try {
    await page.goto(`${server.url}/import-only.html`);
    await page.waitForFunction(() => window.__importResult !== undefined, null, { timeout: 20_000 });
    const result = await page.evaluate(() => window.__importResult);
    assert.equal(result.type, 'function');
    assert.deepEqual(result.added, [], 'importing added globals');
    const fetched = server.requests.map((r) => r.path).filter((p) => p !== '/import-only.html');
    assert.deepEqual(fetched, ['/node_modules/wasm-token-manager/index.js']);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
    await server.close();
  }
});

test('TypeScript: an app type-checks against the shipped declarations, strictly and precisely', () => {
  const dir = prepare('types');
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir], { cwd: dir, stdio: 'pipe', encoding: 'utf8' });
  } catch (e) {
    assert.fail(`tsc reported errors:\n${e.stdout}${e.stderr}`);
  }
});

test("TypeScript: the declarations type-check with create-vite's default compiler options (react-ts / vanilla-ts)", () => {
  const dir = prepare('types');
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(dir, 'tsconfig.vite.json')], { cwd: dir, stdio: 'pipe', encoding: 'utf8' });
  } catch (e) {
    assert.fail(`tsc reported errors:\n${e.stdout}${e.stderr}`);
  }
});
