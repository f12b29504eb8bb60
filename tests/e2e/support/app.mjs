// Helpers for e2e tests that drive the real package in a page served by the real auth server:
// the harness page (tests/e2e/fixtures/app/, served by auth-server as its --www), the peer libraries
// (ky, openapi-fetch) served from the workspace's node_modules, and small waits.
import path from 'node:path';
import fs from 'node:fs';
import { ROOT } from './server.mjs';

export const HARNESS_DIR = path.join(ROOT, 'tests/e2e/fixtures/app');

const VENDORS = {
  '/vendor/ky/': path.join(ROOT, 'node_modules/ky/distribution/'),
  '/vendor/openapi-fetch/': path.join(ROOT, 'node_modules/openapi-fetch/dist/'),
};

/** Serves /vendor/ky/* and /vendor/openapi-fetch/* to every page of `context` from node_modules. */
export async function routeVendors(context) {
  await context.route(/\/vendor\//, async (route) => {
    const { pathname } = new URL(route.request().url());
    for (const [prefix, dir] of Object.entries(VENDORS)) {
      if (!pathname.startsWith(prefix)) continue;
      const file = path.normalize(path.join(dir, pathname.slice(prefix.length)));
      if (file.startsWith(dir) && fs.existsSync(file)) {
        await route.fulfill({ path: file, contentType: 'text/javascript; charset=utf-8' });
        return;
      }
    }
    await route.fulfill({ status: 404, body: 'not found' });
  });
}

/**
 * Opens the harness page of `server` in a new page of `context`, waits for the package to load, and calls
 * `setup(options)` (a TokenManager in window.tm, its events in window.events) unless options is null.
 */
export async function openHarness(context, server, options = {}) {
  const page = await context.newPage();
  const errors = collectErrors(page);
  await page.goto(`${server.url}/index.html`);
  await page.waitForFunction(() => window.harnessReady === true, null, { timeout: 20_000 });
  if (options !== null) await page.evaluate((o) => window.setup(o), options);
  return { page, errors };
}

/**
 * Page errors and console errors, except the browser's own "Failed to load resource" lines, which Chromium
 * prints for every 4xx/5xx answer (401s are part of these tests).
 */
export function collectErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  return errors;
}

/** Records the requests a page sends to paths matching `re`: { url, method, authorization }. */
export function recordRequests(page, re) {
  const seen = [];
  page.on('request', (req) => {
    const { pathname } = new URL(req.url());
    if (re.test(pathname)) seen.push({ url: req.url(), method: req.method(), authorization: req.headers().authorization ?? null });
  });
  return seen;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `fn` (async, in node) until it returns a truthy value; throws after `timeout` ms with `what`. */
export async function until(fn, { timeout = 10_000, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last value: ${JSON.stringify(last)})`);
    await sleep(interval);
  }
}
