// What a consumer app does with the package against the real reference server, end to end:
// login → API call → token expiry → refresh → retry, then a server-side revocation → 401 → refresh → retry,
// then logout. Copied into each fixture of tests/e2e/consumer-setups.test.mjs (Vite, webpack, Rollup, esbuild,
// Next.js, the plain module page); the page is served same-origin with the auth server (started with a short
// --access-ttl), and publishes the outcome in window.__consumerResult for the test to read.
//
// Only `TokenManager` is imported by name: a browser refuses a whole module graph whose named import is missing,
// and this flow should tell an app's view of the package apart from the details of its exports.
import { TokenManager } from 'wasm-token-manager';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The manager as an app constructs it: the reference server's endpoints, every other option at its default; with
 * `?dpop` in the page's URL, `dpop: true` (the DPoP run of tests/e2e/consumer-setups.test.mjs).
 */
export function createManager() {
  const dpop = new URLSearchParams(globalThis.location?.search ?? '').has('dpop');
  return new TokenManager({ refreshUrl: '/auth/refresh', logoutUrl: '/auth/logout', ...(dpop ? { dpop: true } : {}) });
}

/** Resolves at the first `tokenchange` from a refresh, or after `ms` (the flow goes on either way). */
function nextRefresh(tm, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { tm.events.removeEventListener('tokenchange', on); resolve(false); }, ms);
    function on(e) {
      if (e.detail?.source !== 'refresh') return;
      clearTimeout(timer);
      tm.events.removeEventListener('tokenchange', on);
      resolve(true);
    }
    tm.events.addEventListener('tokenchange', on);
  });
}

async function me(tm) {
  const res = await tm.fetch('/api/me');
  const body = res.ok ? await res.json() : null;
  return { status: res.status, sub: body?.sub ?? null };
}

/**
 * Runs the whole flow with `tm` (a fresh manager by default); resolves with what the test asserts on, including
 * `error` and the `step` it happened in when a step failed.
 */
export async function runFlow(tm) {
  const result = { step: 'construct', tokenchange: [] };
  try {
    await steps(tm ?? createManager(), result);
  } catch (error) {
    result.error = `${error?.name}: ${error?.message}`;
    result.code = error?.code ?? null;
  }
  return result;
}

async function steps(tm, result) {
  tm.events.addEventListener('tokenchange', (e) => result.tokenchange.push(e.detail?.source ?? null));

  // The package's contract: `ready` is a Promise that settles once the wasm is instantiated.
  result.step = 'ready';
  result.readyIsPromise = typeof tm.ready?.then === 'function';
  if (result.readyIsPromise) await tm.ready;

  result.step = 'login';
  const login = await tm.login('/auth/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'demo', password: 'demo' }),
  });
  result.login = login.status;
  result.authenticatedAfterLogin = tm.isAuthenticated;
  const firstExpiry = tm.expiresAt;
  result.firstExpiryKnown = typeof firstExpiry === 'number';

  result.step = 'first call';
  result.first = await me(tm);

  // Expiry: wait until the login's token has expired, past the demo server's 1 s leeway, then call again.
  // The manager either renewed ahead of exp or gets a 401, refreshes and retries; both answer 200.
  result.step = 'after expiry';
  await sleep(Math.max(0, firstExpiry - Date.now()) + 1_500);
  result.afterExpiry = await me(tm);

  // Revocation: right after a refresh (so no scheduled renewal falls in between), revoke the access token on
  // the server; the next call gets a 401, and the manager refreshes once and retries.
  result.step = 'revoke';
  result.waitedForRefresh = await nextRefresh(tm, 5_000);
  result.revoke = (await tm.fetch('/demo/revoke-access', { method: 'POST' })).status;
  result.step = 'after revoke';
  result.afterRevoke = await me(tm);

  result.step = 'logout';
  await tm.logout();
  result.authenticatedAfterLogout = tm.isAuthenticated;
  tm.dispose();
  result.step = 'done';
}

/** Publishes the outcome of `flow` (a promise) in window.__consumerResult. */
export function publish(flow) {
  flow.then(
    (result) => { window.__consumerResult = result; },
    (error) => { window.__consumerResult = { error: `${error?.name}: ${error?.message}`, code: error?.code ?? null }; },
  );
}
