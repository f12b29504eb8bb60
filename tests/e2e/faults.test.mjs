// Fault scenarios of the catalogue (4(c), issue 9 item 9) and the client cases that need a second layer in front of
// the server: the real package in headless Chromium, the real auth server on loopback, and a fault-injecting proxy
// (support/faults.mjs) between them that drops an answer after the server committed it, hangs, or serves
// redirect chains and a body sink. The page is loaded through the proxy, so the proxy sees every request the
// package makes; the figures (refresh calls, grace answers, reuse detections, family revocations, logouts) are read
// from the server's /metrics, never from the client under test. No assertion is about time: waits are bounded polls.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { launchChromium } from './support/browser.mjs';
import { startAuthServer, sumSeries } from './support/server.mjs';
import { startFaultProxy } from './support/faults.mjs';
import { HARNESS_DIR, openHarness, sleep, until } from './support/app.mjs';
import { keepWasmMemories, memorySnapshot, wasmBytes } from './support/memory.mjs';

let browser;
let short;  // 5 s access tokens, the default 10 s reuse grace: proactive renewal comes quickly
let tight;  // 5 s access tokens, a 1 s reuse grace: for the replay outside the grace window
let long;   // 120 s access tokens: no scheduled refresh during a test
let longTight; // 120 s access tokens and a 1 s reuse grace

before(async () => {
  browser = await launchChromium();
  [short, tight, long, longTight] = await Promise.all([
    startAuthServer({ www: HARNESS_DIR, accessTtl: 5 }),
    startAuthServer({ www: HARNESS_DIR, accessTtl: 5, args: ['--reuse-grace', '1'] }),
    startAuthServer({ www: HARNESS_DIR, accessTtl: 120 }),
    startAuthServer({ www: HARNESS_DIR, accessTtl: 120, args: ['--reuse-grace', '1'] }),
  ]);
});
after(async () => {
  await browser?.close();
  await Promise.all([short?.stop(), tight?.stop(), long?.stop(), longTight?.stop()]);
});

/** The server's counters that the fault scenarios are judged by. */
async function counters(server) {
  const m = await server.metrics();
  return {
    refreshOk: sumSeries(m, 'auth_refresh_requests_total', { outcome: 'ok' }),
    refreshGrace: sumSeries(m, 'auth_refresh_requests_total', { outcome: 'grace' }),
    refreshInvalid: sumSeries(m, 'auth_refresh_requests_total', { outcome: 'invalid_grant' }),
    reuse: sumSeries(m, 'auth_rt_reuse_detected_total'),
    familyRevocations: sumSeries(m, 'auth_family_revocations_total'),
    logouts: sumSeries(m, 'auth_logouts_total'),
  };
}
const delta = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, a[k] - b[k]]));

/** A fresh context with the harness opened through `proxy`, signed in as demo. */
async function signedInThrough(proxy, options = {}) {
  const context = await browser.newContext();
  const { page, errors } = await openHarness(context, proxy, options);
  assert.equal(await page.evaluate(() => window.loginDemo()), 200, 'demo/demo signs in through the proxy');
  return { context, page, errors };
}

const eventTypes = (page) => page.evaluate(() => window.events.map((e) => e.type));

/**
 * Calls /api/me through the manager every 100 ms (4 at a time) until `stop()` resolves truthy or `maxMs` passed
 * (bounded); returns every call's status (or rejection) in the order they settled.
 */
async function callWhile(page, stop, maxMs = 30_000) {
  await page.evaluate(() => {
    window.calls = [];
    window.calling = true;
    (async () => {
      while (window.calling) {
        const batch = await Promise.all(Array.from({ length: 4 }, () =>
          window.tm.fetch('/api/me').then((r) => r.status, (e) => `${e.name}: ${e.message}`)));
        window.calls.push(...batch);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
  });
  try {
    await until(stop, { timeout: maxMs, interval: 100, what: 'the scenario to play out' });
  } finally {
    await page.evaluate(() => { window.calling = false; });
  }
  await sleep(300); // the batch in flight settles
  return page.evaluate(() => window.calls);
}

test('F5: a refresh answer lost after the server rotated: the retry with the old cookie within the grace window gets the current child; no logout, no family revoked, no call lost', { timeout: 60_000 }, async () => {
  const proxy = await startFaultProxy(short.url);
  const { context, page, errors } = await signedInThrough(proxy, { refreshMarginSeconds: 2 });
  try {
    const before = await counters(short);
    proxy.fault('/auth/refresh', { kind: 'drop-answer' });
    // Proactive renewal runs into the dropped answer; then one more renewal must rotate normally, which only
    // works if the grace answer gave the browser the current child cookie.
    const renewals = () => page.evaluate(() => window.events.filter((e) => e.type === 'tokenchange' && e.detail?.source === 'refresh').length);
    const calls = await callWhile(page, async () => (await renewals()) >= 2);

    const dropped = proxy.seen('/auth/refresh', 'drop-answer');
    assert.equal(dropped.length, 1, 'one refresh answer was dropped');
    assert.equal(dropped[0].upstreamStatus, 200, 'the server had rotated the token before the answer was lost');
    const d = delta(await counters(short), before);
    assert.equal(d.refreshGrace, 1, 'the retry with the old cookie got the current child (grace answer)');
    assert.equal(d.refreshOk, 2, 'the dropped rotation and the next normal one');
    assert.equal(d.reuse, 0, 'no reuse detected');
    assert.equal(d.familyRevocations, 0, 'no family revoked');
    assert.equal(d.logouts, 0);
    assert.equal(d.refreshInvalid, 0);
    assert.ok(calls.length >= 8, `calls were made throughout (${calls.length})`);
    assert.deepEqual(calls.filter((s) => s !== 200), [], 'no call was lost');
    const events = await eventTypes(page);
    assert.deepEqual(events.filter((e) => e === 'sessionexpired' || e === 'logout'), [], 'the session was kept');
    assert.equal(await page.evaluate(() => window.tm.isAuthenticated), true);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await proxy.close();
  }
});

test('F5: the same lost answer, retried only after the grace window: reuse is detected and the session ends once, without a refresh loop (the documented outcome)', { timeout: 60_000 }, async () => {
  const proxy = await startFaultProxy(tight.url);
  const { context, page, errors } = await signedInThrough(proxy, { refreshMarginSeconds: 2 });
  try {
    const before = await counters(tight);
    proxy.fault('/auth/refresh', { kind: 'drop-answer' });
    // The retry is held past the 1 s grace window before it reaches the server.
    proxy.fault('/auth/refresh', { kind: 'delay', ms: 2_500 });
    await page.waitForFunction(() => window.events.some((e) => e.type === 'sessionexpired'), null, { timeout: 20_000 });
    const d = delta(await counters(tight), before);
    assert.equal(proxy.seen('/auth/refresh', 'drop-answer')[0]?.upstreamStatus, 200, 'the dropped answer was a rotation');
    assert.equal(d.reuse, 1, 'the old cookie after the grace window is reuse');
    assert.equal(d.familyRevocations, 1, 'the family was revoked');
    assert.equal(d.refreshGrace, 0);
    assert.equal(await page.evaluate(() => window.tm.isAuthenticated), false);

    // No loop: calls after the end go out without a bearer and cause no further refresh call.
    const refreshCalls = proxy.seen('/auth/refresh').length;
    const statuses = await page.evaluate(() => Promise.all(Array.from({ length: 5 }, () => window.tm.fetch('/api/me').then((r) => r.status))));
    assert.deepEqual(statuses, [401, 401, 401, 401, 401]);
    await sleep(1_000);
    assert.equal(proxy.seen('/auth/refresh').length, refreshCalls, 'no refresh call after the session ended');
    const events = await eventTypes(page);
    assert.equal(events.filter((e) => e === 'sessionexpired').length, 1, 'sessionexpired fired once');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await proxy.close();
  }
});

test('F7: a refresh call that hangs is aborted at the refresh timeout, every waiting call settles, the lock is released and the next attempt renews both tabs', { timeout: 60_000 }, async () => {
  const REFRESH_TIMEOUT = 2; // seconds
  const proxy = await startFaultProxy(long.url);
  const context = await browser.newContext();
  try {
    const { page: tab1, errors: e1 } = await openHarness(context, proxy, { refreshTimeoutSeconds: REFRESH_TIMEOUT });
    const { page: tab2, errors: e2 } = await openHarness(context, proxy, { refreshTimeoutSeconds: REFRESH_TIMEOUT });
    // Both managers are loaded (their channel open) before the login, so tab 2 hears it.
    await Promise.all([tab1, tab2].map((t) => t.evaluate(() => window.tm.ready)));
    assert.equal(await tab1.evaluate(() => window.loginDemo()), 200);
    await tab2.waitForFunction(() => window.tm.isAuthenticated, null, { timeout: 5_000 });
    const before = await counters(long);
    proxy.fault('/auth/refresh', { kind: 'hang' });
    // The tabs share one token; revoking it on the server makes every call meet a 401 and need a refresh.
    assert.equal(await tab1.evaluate(() => window.revokeAccess()), 200);
    const start = (t) => t.evaluate(() => {
      window.settled = [];
      for (let i = 0; i < 10; i += 1) {
        window.tm.fetch('/api/me').then((r) => window.settled.push(r.status), (e) => window.settled.push(`${e.name}`));
      }
    });
    await start(tab1);
    await until(() => proxy.seen('/auth/refresh', 'hang').length === 1, { what: 'the hung refresh call' });
    await start(tab2);

    // The hung call is abandoned by the browser (the manager aborted it) and nobody waits forever.
    await until(() => proxy.seen('/auth/refresh', 'hang')[0].closedByClient, { timeout: (REFRESH_TIMEOUT + 3) * 1000, what: 'the manager to abort the hung call' });
    for (const [i, t] of [tab1, tab2].entries()) {
      await t.waitForFunction(() => window.settled.length === 10, null, { timeout: (REFRESH_TIMEOUT + 3) * 1000 * 2 })
        .catch(() => { throw new Error(`tab ${i + 1}: calls still waiting after the refresh timeout`); });
      const settled = await t.evaluate(() => window.settled);
      assert.deepEqual(settled.filter((s) => s !== 200 && s !== 401), [], `tab ${i + 1}: every call got an answer (${settled})`);
    }
    const failed = await tab1.evaluate(() => window.events.filter((e) => e.type === 'refreshfailed').map((e) => e.detail));
    assert.ok(failed.length >= 1 && failed.every((d) => d.retryable === true), `the timeout is a retryable failure: ${JSON.stringify(failed)}`);

    // The lock was released: the next attempt (after the backoff) reaches the server and renews both tabs.
    for (const t of [tab1, tab2]) {
      await until(() => t.evaluate(() => window.tm.fetch('/api/me').then((r) => r.status === 200)), { timeout: 20_000, interval: 500, what: 'a call to succeed after the hang' });
    }
    const d = delta(await counters(long), before);
    assert.equal(proxy.seen('/auth/refresh', 'hang').length, 1);
    assert.ok(d.refreshOk >= 1, 'a later refresh call reached the server and rotated');
    assert.equal(d.reuse, 0);
    assert.equal(d.familyRevocations, 0);
    assert.equal(d.logouts, 0);
    for (const t of [tab1, tab2]) {
      assert.deepEqual((await eventTypes(t)).filter((e) => e === 'sessionexpired' || e === 'logout'), [], 'the session was kept');
      assert.equal(await t.evaluate(() => window.tm.isAuthenticated), true);
    }
    assert.deepEqual([...e1, ...e2], []);
  } finally {
    await context.close();
    await proxy.close();
  }
});

test('F11: a stolen refresh cookie replayed after the grace window revokes the family at once: the victim\'s access token is refused within 1 s and its tab ends the session with one refresh call, no loop', { timeout: 60_000 }, async () => {
  const proxy = await startFaultProxy(longTight.url);
  const { context, page, errors } = await signedInThrough(proxy);
  try {
    const stolen = (await context.cookies()).find((c) => c.name === 'rt')?.value;
    assert.ok(stolen, 'the refresh cookie the attacker copies');
    // The victim rotates (the stolen value becomes the parent), then the grace window (1 s) passes.
    assert.equal(await page.evaluate(() => window.tm.refresh()), true);
    assert.equal(await page.evaluate(() => window.tm.fetch('/api/me').then((r) => r.status)), 200);
    const victimToken = proxy.seen('/api/me').at(-1).authorization;
    assert.match(victimToken ?? '', /^Bearer \S+$/, 'the victim\'s bearer');
    await sleep(2_000); // grace (1 s) + 1 s
    const before = await counters(longTight);
    const replay = await fetch(`${longTight.url}/auth/refresh`, {
      method: 'POST',
      headers: { origin: longTight.url, 'x-requested-with': 'fetch', cookie: `rt=${stolen}` },
    });
    assert.equal(replay.status, 401, 'the replay is refused');
    assert.equal((await replay.json()).error, 'invalid_grant');
    const d = delta(await counters(longTight), before);
    assert.equal(d.reuse, 1, 'rt_reuse_detected_total +1');
    assert.equal(d.familyRevocations, 1, 'the family was revoked');
    await until(async () => (await fetch(`${longTight.url}/api/me`, { headers: { authorization: victimToken } })).status === 401,
      { timeout: 1_000, interval: 50, what: 'the victim\'s access token to be refused' });

    const refreshBefore = proxy.seen('/auth/refresh').length;
    const statuses = await page.evaluate(() => Promise.all(Array.from({ length: 5 }, () => window.tm.fetch('/api/me').then((r) => r.status))));
    assert.deepEqual(statuses, [401, 401, 401, 401, 401], 'the victim\'s calls get the 401');
    await page.waitForFunction(() => window.events.some((e) => e.type === 'sessionexpired'), null, { timeout: 5_000 });
    assert.equal(await page.evaluate(() => window.tm.isAuthenticated), false);
    assert.equal(await page.evaluate(() => window.tm.fetch('/api/me').then((r) => r.status)), 401);
    await sleep(1_000);
    assert.equal(proxy.seen('/auth/refresh').length - refreshBefore, 1, 'one refresh call, then no loop');
    assert.equal((await eventTypes(page)).filter((e) => e === 'sessionexpired').length, 1);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await proxy.close();
  }
});

// Found by F7 under load: a tab whose manager is still loading its wasm when another tab signs in or out must hear it
// (the package entry opens the BroadcastChannel at construction and hands what arrived to the wasm manager once it
// exists). The wasm load is held back here so the timing is deterministic.

/**
 * Two tabs of a new context: tab 1 with its manager loaded, tab 2 whose manager is created while its wasm is held
 * back (until `release()`), recording tab 2's refresh calls; then tab 1 signs in.
 */
async function signInWhileLoading(server) {
  const context = await browser.newContext();
  const { page: tab1 } = await openHarness(context, server);
  await tab1.evaluate(() => window.tm.ready);
  const tab = await context.newPage();
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await tab.route('**/*.wasm', async (route) => { await held; await route.continue(); });
  const refreshes = [];
  tab.on('request', (r) => { if (new URL(r.url()).pathname === '/auth/refresh') refreshes.push(r.url()); });
  await tab.goto(`${server.url}/index.html`);
  await tab.waitForFunction(() => window.harnessReady === true, null, { timeout: 20_000 });
  await tab.evaluate(() => window.setup({}));
  assert.equal(await tab1.evaluate(() => window.loginDemo()), 200);
  return { context, tab1, tab2: tab, refreshes, release };
}

test('a tab still loading its manager when another tab signs in picks up the session without a refresh call of its own', { timeout: 60_000 }, async () => {
  const { context, tab1, tab2, refreshes, release } = await signInWhileLoading(long);
  try {
    assert.equal(await tab2.evaluate(() => window.tm.isAuthenticated), false, 'the wasm is still held back');
    release();
    await tab2.evaluate(() => window.tm.ready);
    assert.equal(await tab2.evaluate(() => window.tm.isAuthenticated), true, 'tab 2 holds the session tab 1 signed in to');
    assert.deepEqual(await tab2.evaluate(() => window.events.map((e) => `${e.type}:${e.detail.source}`)), ['tokenchange:login'],
      'the login was applied once');
    assert.equal(await tab2.evaluate(() => window.tm.fetch('/api/me').then((r) => r.status)), 200);
    assert.deepEqual(refreshes, [], 'tab 2 got the session without a refresh call');
  } finally {
    await context.close();
  }
});

test('a tab still loading its manager when another tab signs in and then out ends signed out, in order, and does not restore the session from the cookie the server still honours', { timeout: 60_000 }, async () => {
  const { context, tab1, tab2, refreshes, release } = await signInWhileLoading(long);
  try {
    // The server never hears of the logout (the call is dropped), so the refresh cookie stays valid: a tab that
    // missed the logout message would restore the session with it at its first call.
    await tab1.route('**/auth/logout', (route) => route.abort());
    assert.equal(await tab1.evaluate(() => window.tm.logout().then(() => 'ok', (e) => e.code)), 'LOGOUT_FAILED');
    release();
    await tab2.evaluate(() => window.tm.ready);
    assert.deepEqual(await tab2.evaluate(() => window.events.map((e) => `${e.type}:${e.detail.source ?? e.detail.reason}`)),
      ['tokenchange:login', 'logout:remote'], 'the login, then the logout, each applied once');
    assert.equal(await tab2.evaluate(() => window.tm.isAuthenticated), false);
    assert.equal(await tab2.evaluate(() => window.tm.fetch('/api/me').then((r) => r.status)), 401, 'no session restored');
    assert.deepEqual(refreshes, [], 'no refresh with the cookie after the logout');
    // The cookie was still good: tab 2 stayed signed out because it heard the logout, not because refreshing failed.
    assert.equal(await tab1.evaluate(() => window.tm.refresh()), true);
  } finally {
    await context.close();
  }
});

test('C51: 307 and 308 redirects from the API to another origin, and a chain back to the API origin, never carry the bearer past the first origin', { timeout: 60_000 }, async () => {
  const proxy = await startFaultProxy(long.url);
  // Origin B: records what it receives; answers JSON with CORS, or bounces the request on to `to`.
  const seenAtB = [];
  const b = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    seenAtB.push({ method: req.method, path: url.pathname, authorization: req.headers.authorization ?? null });
    const cors = {
      'access-control-allow-origin': '*',
      'access-control-allow-headers': 'authorization, content-type',
      'access-control-allow-methods': 'GET, POST, PUT',
    };
    if (url.pathname === '/bounce') {
      res.writeHead(307, { location: url.searchParams.get('to'), ...cors });
      res.end();
      return;
    }
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', ...cors });
      res.end(JSON.stringify({ at: 'B', method: req.method, body, authorization: req.headers.authorization ?? null }));
    });
  });
  await new Promise((resolve) => b.listen(0, '127.0.0.1', resolve));
  const bUrl = `http://127.0.0.1:${b.address().port}`;
  // Origin A (the page's own, the manager's API origin): /redirect/* are served here by the test.
  const seenAtA2 = [];
  proxy.handle('/redirect/', (req, res) => {
    const url = new URL(req.url, 'http://x');
    const hop = url.pathname.slice('/redirect/'.length);
    const redirect = (status, location) => { res.writeHead(status, { location }); res.end(); };
    if (hop === '307-to-b') redirect(307, `${bUrl}/whoami`);
    else if (hop === '308-to-b') redirect(308, `${bUrl}/whoami`);
    else if (hop === 'chain') redirect(307, `${bUrl}/bounce?to=${encodeURIComponent(`${proxy.url}/redirect/a2`)}`);
    else if (hop === 'same-origin') redirect(307, '/redirect/a2');
    else if (hop === 'a2') {
      seenAtA2.push({ via: req.headers.origin ?? null, authorization: req.headers.authorization ?? null });
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
      res.end(JSON.stringify({ at: 'A2', authorization: req.headers.authorization ?? null }));
    } else redirect(404, '/');
  });
  const { context, page, errors } = await signedInThrough(proxy);
  try {
    const before = await counters(long);
    const out = await page.evaluate(async () => {
      const call = (path, init) => window.tm.fetch(path, init).then(async (r) => ({ status: r.status, redirected: r.redirected, body: await r.json() }), (e) => ({ rejected: `${e.name}: ${e.message}` }));
      return {
        get307: await call('/redirect/307-to-b'),
        post307: await call('/redirect/307-to-b', { method: 'POST', body: 'the body' }),
        put308: await call('/redirect/308-to-b', { method: 'PUT', body: 'the body' }),
        chain: await call('/redirect/chain'),
        sameOrigin: await call('/redirect/same-origin'),
      };
    });
    for (const name of ['get307', 'post307', 'put308']) {
      assert.equal(out[name].status, 200, `${name}: followed to B (${JSON.stringify(out[name])})`);
      assert.equal(out[name].body.at, 'B');
      assert.equal(out[name].body.authorization, null, `${name}: B got no Authorization`);
    }
    assert.deepEqual([out.post307.body.method, out.post307.body.body], ['POST', 'the body'], '307 keeps the method and body');
    assert.deepEqual([out.put308.body.method, out.put308.body.body], ['PUT', 'the body'], '308 keeps the method and body');
    assert.equal(out.chain.status, 200, `the chain A1 → B → A2 was followed (${JSON.stringify(out.chain)})`);
    assert.equal(out.chain.body.at, 'A2');
    assert.equal(out.chain.body.authorization, null, 'A2, reached through B, got no Authorization');
    assert.deepEqual(seenAtB.filter((r) => r.authorization !== null), [], 'origin B never saw a bearer');
    assert.ok(seenAtB.filter((r) => r.path === '/whoami').length >= 3 && seenAtB.some((r) => r.path === '/bounce'), 'B was reached');
    // Control: a same-origin redirect keeps the header, so A2 would have shown a bearer had one survived the chain.
    assert.match(out.sameOrigin.body.authorization ?? '', /^Bearer \S+$/, 'a same-origin redirect keeps the bearer');
    assert.equal(seenAtA2.filter((r) => r.authorization).length, 1, 'only the same-origin hop reached A2 with a bearer');
    const d = delta(await counters(long), before);
    assert.equal(d.refreshOk + d.refreshInvalid + d.refreshGrace, 0, 'no refresh');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await proxy.close();
    b.closeAllConnections();
    await new Promise((resolve) => b.close(resolve));
  }
});

test('C55: a Request whose body was already used rejects with the TypeError fetch raises, sends nothing, and the manager keeps working', { timeout: 60_000 }, async () => {
  const proxy = await startFaultProxy(long.url);
  const { context, page, errors } = await signedInThrough(proxy);
  try {
    const echoesBefore = proxy.seen('/api/echo').length;
    const out = await page.evaluate(async () => {
      const used = new Request('/api/echo', { method: 'POST', body: 'consumed' });
      await used.text();
      const outcome = (p) => p.then((r) => `resolved ${r.status}`, (e) => ({ name: e.name, isTypeError: e instanceof TypeError, message: e.message }));
      return {
        bodyUsed: used.bodyUsed,
        platform: await outcome(fetch(used)),
        managed: await outcome(window.tm.fetch(used)),
        managedWithInit: await outcome(window.tm.fetch(used, { headers: { 'x-a': '1' } })),
        after: await window.tm.fetch('/api/me').then((r) => r.status),
      };
    });
    assert.equal(out.bodyUsed, true);
    assert.equal(out.platform.isTypeError, true, `the platform's own answer: ${JSON.stringify(out.platform)}`);
    for (const name of ['managed', 'managedWithInit']) {
      assert.equal(typeof out[name], 'object', `${name}: rejected (${JSON.stringify(out[name])})`);
      assert.equal(out[name].isTypeError, true, `${name}: a TypeError, as fetch`);
      assert.equal(out[name].name, 'TypeError');
    }
    assert.equal(proxy.seen('/api/echo').length, echoesBefore, 'nothing was sent');
    assert.equal(out.after, 200, 'the manager still works (no trap, no poisoned instance)');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await proxy.close();
  }
});

test('C56: a 256 MiB Blob body meeting a 401 is resent byte-identical without being copied: the wasm memory and the JS heap stay flat', { timeout: 180_000 }, async () => {
  const SIZE = 256 * 1024 * 1024;
  const proxy = await startFaultProxy(long.url);
  // The sink answers 401 (invalid_token) to the first upload and 200 to the next, each with the body's length and
  // SHA-256 as received.
  const uploads = [];
  proxy.handle('/sink', (req, res) => {
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (c) => { hash.update(c); length += c.length; });
    req.on('end', () => {
      const got = { length, sha256: hash.digest('hex'), authorization: req.headers.authorization ?? null };
      uploads.push(got);
      const first = uploads.length === 1;
      res.writeHead(first ? 401 : 200, {
        'content-type': 'application/json',
        ...(first ? { 'www-authenticate': 'Bearer error="invalid_token"' } : {}),
      });
      res.end(JSON.stringify(got));
    });
  });
  const context = await browser.newContext();
  await context.addInitScript(keepWasmMemories); // every wasm memory the page creates, to read its size
  try {
    const { page, errors } = await openHarness(context, proxy);
    assert.equal(await page.evaluate(() => window.loginDemo()), 200);
    const cdp = await context.newCDPSession(page);
    const heap = async () => {
      const m = await memorySnapshot(cdp);
      return m.heap + (m.backing ?? 0);
    };
    const expected = await page.evaluate(async (size) => {
      const chunk = new Uint8Array(1024 * 1024);
      for (let i = 0; i < chunk.length; i += 65536) crypto.getRandomValues(chunk.subarray(i, i + 65536));
      window.big = new Blob(Array.from({ length: size / chunk.length }, () => chunk));
      // Count every read of a Blob's bytes in the page from here on.
      window.blobReads = 0;
      for (const m of ['arrayBuffer', 'text', 'stream', 'bytes']) {
        const orig = Blob.prototype[m];
        if (orig) Blob.prototype[m] = function (...a) { window.blobReads += 1; return orig.apply(this, a); };
      }
      let bin = '';
      for (let i = 0; i < chunk.length; i += 8192) bin += String.fromCharCode(...chunk.subarray(i, i + 8192));
      return { size: window.big.size, chunk: btoa(bin) };
    }, SIZE);
    assert.equal(expected.size, SIZE);
    const wasmBefore = await wasmBytes(page);
    assert.ok(wasmBefore > 0, 'the manager\'s wasm memory is visible');
    const heapBefore = await heap();

    const r = await page.evaluate(() => window.tm.fetch('/sink', { method: 'POST', body: window.big }).then(async (res) => ({ status: res.status, body: await res.json() })));
    const wasmAfter = await wasmBytes(page);
    const heapAfter = await heap();

    assert.equal(r.status, 200, 'the retry after the 401 succeeded');
    assert.equal(uploads.length, 2, 'sent twice: the 401, then the retry');
    const chunk = Buffer.from(expected.chunk, 'base64');
    const wanted = createHash('sha256');
    for (let i = 0; i < SIZE / chunk.length; i += 1) wanted.update(chunk);
    const sha256 = wanted.digest('hex');
    assert.deepEqual(uploads.map((u) => [u.length, u.sha256]), [[SIZE, sha256], [SIZE, sha256]], 'both uploads carried the Blob byte for byte');
    assert.match(uploads[1].authorization ?? '', /^Bearer /, 'the retry carried the new bearer');
    assert.equal(await page.evaluate(() => window.blobReads), 0, 'the manager never read the Blob\'s bytes');
    const MB = 1024 * 1024;
    assert.ok(wasmAfter - wasmBefore <= 10 * MB, `wasm memory grew by ${(wasmAfter - wasmBefore) / MB} MB`);
    assert.ok(heapAfter - heapBefore <= 10 * MB, `JS heap grew by ${(heapAfter - heapBefore) / MB} MB`);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await proxy.close();
  }
});
