// End-to-end tests of the TokenManager (issue 3) in headless Chromium against the real auth server on loopback,
// with the real built package from pkg/. Each test gets a fresh browser context (its own cookie jar); the
// counters come from the server (/metrics and /demo/stats), never from the client under test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from './support/browser.mjs';
import { startStaticServer } from './support/static-server.mjs';
import { startAuthServer } from './support/server.mjs';
import { HARNESS_DIR, openHarness, recordRequests, routeVendors, until } from './support/app.mjs';

const REFRESHES = 'auth_refresh_requests_total';

let browser;
let slow;   // access tokens live 120 s: no proactive refresh during a test
let fast;   // access tokens live 5 s, no verifier leeway: for renewal over several lifetimes
let capture; // a second origin that logs what it receives

before(async () => {
  browser = await launchChromium();
  [slow, fast, capture] = await Promise.all([
    startAuthServer({ www: HARNESS_DIR, accessTtl: 120 }),
    startAuthServer({ www: HARNESS_DIR, accessTtl: 5, args: ['--leeway', '0'] }),
    startStaticServer(HARNESS_DIR),
  ]);
});
after(async () => {
  await browser?.close();
  await Promise.all([slow?.stop(), fast?.stop(), capture?.close()]);
});

/** A fresh context (cookie jar) with the harness page open, a manager in window.tm, signed in as demo. */
async function signedIn(server, options = {}) {
  const context = await browser.newContext();
  await routeVendors(context);
  const { page, errors } = await openHarness(context, server, options);
  assert.equal(await page.evaluate(() => window.loginDemo()), 200, 'demo/demo signs in');
  assert.equal(await page.evaluate(() => window.tm.isAuthenticated), true);
  return { context, page, errors };
}

test('F1/C38: 100 concurrent requests on a token the server rejects share exactly one refresh call, and all 100 succeed', { timeout: 60_000 }, async () => {
  const { context, page, errors } = await signedIn(slow);
  try {
    assert.equal(await page.evaluate(() => window.revokeAccess()), 200);
    const refreshBefore = await slow.metric(REFRESHES);
    const statsBefore = await slow.stats();
    const results = await page.evaluate(() => Promise.all(Array.from({ length: 100 }, () =>
      window.tm.fetch('/api/me').then(async (r) => ({ status: r.status, sub: (await r.json()).sub })))));
    const refreshAfter = await slow.metric(REFRESHES);
    const statsAfter = await slow.stats();

    assert.equal(results.length, 100);
    assert.deepEqual(results.filter((r) => r.status !== 200 || r.sub !== 'demo'), [], 'every request succeeds as demo');
    assert.equal(refreshAfter - refreshBefore, 1, 'exactly one refresh call reached the server');
    const api401 = statsAfter.api401 - statsBefore.api401;
    const apiCalls = statsAfter.apiCalls - statsBefore.apiCalls;
    assert.ok(api401 >= 1, 'requests really went out with the revoked token and got 401');
    assert.ok(api401 <= 100);
    assert.equal(apiCalls, 100 + api401, 'each request is sent at most twice, and re-sent only after its 401');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('F1: 100 concurrent requests just after the token expired on the server (page clock paused) share one refresh', { timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  try {
    await routeVendors(context);
    const page = await context.newPage();
    // The page's clock stands still, so the manager cannot renew ahead of exp: its token simply expires on the
    // server while it believes it fresh, and every request meets the 401 at expiry.
    await page.clock.install();
    await page.goto(`${fast.url}/index.html`);
    await page.waitForFunction(() => window.harnessReady === true, null, { timeout: 20_000 });
    await page.evaluate(() => window.setup({ refreshMarginSeconds: 2 }));
    await page.clock.pauseAt(Date.now() + 100);
    assert.equal(await page.evaluate(() => window.loginDemo()), 200);
    const expiresAt = await page.evaluate(() => window.tm.expiresAt);
    assert.equal(typeof expiresAt, 'number');
    // Bounded wait for the token to be past its exp on the server (5 s tokens, no leeway).
    await until(async () => (await fetch(`${fast.url}/api/me`, { headers: await bearerHeader(page) })).status === 401,
      { timeout: 12_000, interval: 250, what: 'the server to reject the expired token' });

    const refreshBefore = await fast.metric(REFRESHES);
    const statsBefore = await fast.stats();
    const statuses = await page.evaluate(() => Promise.all(Array.from({ length: 100 }, () =>
      window.tm.fetch('/api/me').then((r) => r.status, (e) => `${e.name}: ${e.message}`))));
    const refreshAfter = await fast.metric(REFRESHES);
    const statsAfter = await fast.stats();

    assert.deepEqual(statuses.filter((s) => s !== 200), [], 'all 100 succeed');
    assert.equal(refreshAfter - refreshBefore, 1, 'exactly one refresh call reached the server');
    const api401 = statsAfter.api401 - statsBefore.api401;
    assert.ok(api401 >= 1 && api401 <= 100, `requests hit the 401 at expiry (${api401})`);
    assert.equal(statsAfter.apiCalls - statsBefore.apiCalls, 100 + api401, 'each request is sent at most twice');
  } finally {
    await context.close();
  }
});

/** The Authorization header the page's manager last sent to /api/me (asks it to send one). */
async function bearerHeader(page) {
  const token = await page.evaluate(() => window.__lastBearer ?? null);
  if (token) return { authorization: token };
  const seen = [];
  const handler = (req) => { if (new URL(req.url()).pathname === '/api/me' && req.headers().authorization) seen.push(req.headers().authorization); };
  page.on('request', handler);
  await page.evaluate(() => window.tm.fetch('/api/me').then((r) => r.status));
  page.off('request', handler);
  assert.ok(seen.length >= 1, 'the manager sent a bearer to its own origin');
  await page.evaluate((b) => { window.__lastBearer = b; }, seen[0]);
  return { authorization: seen[0] };
}

test('F18: JSON, text, Blob, bytes, URLSearchParams and FormData bodies arrive byte-identical after a 401 retry', { timeout: 90_000 }, async () => {
  const { context, page, errors } = await signedIn(slow);
  try {
    const kinds = ['json', 'text', 'blob', 'bytes', 'urlsearchparams', 'formdata', 'formdata-request', 'blob-request'];
    for (const kind of kinds) {
      assert.equal(await page.evaluate(() => window.revokeAccess()), 200, `${kind}: revoked the token first`);
      const before = await slow.stats();
      const r = await page.evaluate(async (kind) => {
        const bytes = new Uint8Array(256 * 1024);
        for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
        const fd = () => {
          const f = new FormData();
          f.append('name', 'wörld ☃');
          f.append('file', new Blob([bytes.subarray(0, 40_000)], { type: 'application/octet-stream' }), 'data.bin');
          return f;
        };
        let call;
        let expected; // { hash } or { template: Request } for FormData sent via init
        switch (kind) {
          case 'json': {
            const s = JSON.stringify({ hello: 'wörld', n: [1, 2, 3], emoji: '🙂' });
            call = ['/api/echo', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: s }];
            expected = { bytes: new TextEncoder().encode(s) };
            break;
          }
          case 'text': {
            const s = 'plain text\r\nwith lines and ünïcode';
            call = ['/api/echo', { method: 'POST', body: s }];
            expected = { bytes: new TextEncoder().encode(s) };
            break;
          }
          case 'blob':
            call = ['/api/echo', { method: 'POST', body: new Blob([bytes], { type: 'application/octet-stream' }) }];
            expected = { bytes };
            break;
          case 'bytes':
            call = ['/api/echo', { method: 'POST', body: bytes.slice(0, 100_000) }];
            expected = { bytes: bytes.slice(0, 100_000) };
            break;
          case 'urlsearchparams': {
            const p = new URLSearchParams({ a: '1', b: 'x y&z', c: 'ü' });
            call = ['/api/echo', { method: 'POST', body: p }];
            expected = { bytes: new TextEncoder().encode(p.toString()) };
            break;
          }
          case 'formdata':
            call = ['/api/echo', { method: 'POST', body: fd() }];
            expected = { template: new Request(location.origin, { method: 'POST', body: fd() }) };
            break;
          case 'formdata-request': {
            const req = new Request('/api/echo', { method: 'POST', body: fd() });
            expected = { bytes: new Uint8Array(await req.clone().arrayBuffer()) };
            call = [req];
            break;
          }
          case 'blob-request': {
            const req = new Request('/api/echo', { method: 'POST', body: new Blob([bytes]) });
            expected = { bytes };
            call = [req];
            break;
          }
        }
        const res = await window.tm.fetch(...call);
        const text = await res.text();
        let echo = null;
        try { echo = JSON.parse(text); } catch { /* reported below */ }
        if (expected.template) {
          // A FormData body is serialized with a random boundary: rebuild the expected bytes with the boundary the
          // server received (same browser, same serializer, so everything else is byte-for-byte the same).
          const tmplType = expected.template.headers.get('content-type');
          const tmplBoundary = tmplType.split('boundary=')[1];
          const gotBoundary = (echo?.contentType ?? '').split('boundary=')[1] ?? '';
          const rebuilt = new Uint8Array(await expected.template.arrayBuffer());
          const from = new TextEncoder().encode(tmplBoundary);
          const to = new TextEncoder().encode(gotBoundary);
          if (from.length === to.length) {
            for (let i = 0; i + from.length <= rebuilt.length; i += 1) {
              if (from.every((b, j) => rebuilt[i + j] === b)) { rebuilt.set(to, i); i += from.length - 1; }
            }
          }
          expected = { bytes: rebuilt };
        }
        return {
          status: res.status,
          echo,
          text: echo ? null : text.slice(0, 200),
          expectedHash: await window.sha256hex(expected.bytes),
          expectedLength: expected.bytes.byteLength,
        };
      }, kind);
      const after = await slow.stats();
      assert.equal(r.status, 200, `${kind}: the retried request succeeded (${r.text ?? ''})`);
      assert.equal(after.api401 - before.api401, 1, `${kind}: the first send met a 401`);
      assert.equal(after.refreshCalls - before.refreshCalls, 1, `${kind}: one refresh before the retry`);
      assert.equal(r.echo.length, r.expectedLength, `${kind}: the retried body has the right length`);
      assert.equal(r.echo.sha256, r.expectedHash, `${kind}: the retried body is byte-identical`);
    }
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('F2: proactive renewal over several token lifetimes: zero 401s reach the server, at most one refresh per lifetime', { timeout: 90_000 }, async () => {
  // 5 s tokens, no verifier leeway on the server, renewal 2 s before exp.
  const { context, page, errors } = await signedIn(fast, { refreshMarginSeconds: 2 });
  try {
    const statsBefore = await fast.stats();
    const refreshBefore = await fast.metric(REFRESHES);
    const RUN_MS = 16_000; // a little over three 5 s lifetimes
    const out = await page.evaluate(async (runMs) => {
      const statuses = {};
      const end = Date.now() + runMs;
      let rounds = 0;
      while (Date.now() < end && rounds < 1000) {
        rounds += 1;
        const batch = await Promise.all(Array.from({ length: 4 }, () => window.tm.fetch('/api/me').then((r) => r.status, () => 'rejected')));
        for (const s of batch) statuses[s] = (statuses[s] ?? 0) + 1;
        await new Promise((r) => setTimeout(r, 100));
      }
      return { statuses, renewals: window.events.filter((e) => e.type === 'tokenchange' && e.detail?.source === 'refresh').length };
    }, RUN_MS);
    const statsAfter = await fast.stats();
    const refreshes = (await fast.metric(REFRESHES)) - refreshBefore;

    assert.deepEqual(Object.keys(out.statuses), ['200'], `every call succeeded: ${JSON.stringify(out.statuses)}`);
    assert.ok(out.statuses['200'] >= 100, 'the run made many calls');
    assert.equal(statsAfter.api401 - statsBefore.api401, 0, 'the server answered no 401');
    assert.ok(out.renewals >= 3, `the token was renewed ahead of expiry several times (${out.renewals})`);
    assert.equal(refreshes, out.renewals, 'every refresh call the server saw produced a renewal');
    assert.ok(refreshes <= Math.ceil(RUN_MS / 3000) + 1, `no refresh loop: ${refreshes} refreshes in ${RUN_MS / 1000} s of 5 s tokens`);
    assert.deepEqual(await page.evaluate(() => window.events.filter((e) => e.type !== 'tokenchange').map((e) => e.type)), []);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('logout (S21): revokes on the server, fires logout, and later calls carry no bearer', { timeout: 60_000 }, async () => {
  const { context, page, errors } = await signedIn(slow);
  try {
    const sent = recordRequests(page, /^\/api\/me$/);
    assert.equal(await page.evaluate(() => window.tm.fetch('/api/me').then((r) => r.status)), 200);
    const bearer = sent.at(-1)?.authorization;
    assert.match(bearer ?? '', /^Bearer \S+$/, 'signed-in calls carry the bearer');
    const before = await slow.stats();

    await page.evaluate(() => window.tm.logout());
    const state = await page.evaluate(() => ({
      isAuthenticated: window.tm.isAuthenticated,
      expiresAt: window.tm.expiresAt,
      logoutEvents: window.events.filter((e) => e.type === 'logout').length,
    }));
    assert.deepEqual(state, { isAuthenticated: false, expiresAt: null, logoutEvents: 1 });
    const after = await slow.stats();
    assert.equal(after.logouts - before.logouts, 1, 'the logout reached the server');

    // The server rejects the old access token (sid-level revocation, within a second).
    await until(async () => (await fetch(`${slow.url}/api/me`, { headers: { authorization: bearer } })).status === 401,
      { timeout: 2_000, what: 'the server to reject the logged-out access token' });

    const count = sent.length;
    const status = await page.evaluate(() => window.tm.fetch('/api/me').then((r) => r.status));
    assert.equal(status, 401);
    assert.ok(sent.length > count);
    assert.deepEqual(sent.slice(count).map((r) => r.authorization), sent.slice(count).map(() => null), 'no bearer after logout');

    await page.evaluate(() => window.tm.logout()); // idempotent
    const afterLogout = await page.evaluate(() => window.events.slice(window.events.findIndex((e) => e.type === 'logout')));
    assert.deepEqual(afterLogout.filter((e) => e.type === 'tokenchange' && e.detail?.expiresAt != null), [], 'nothing brought the session back');
    assert.equal(await page.evaluate(() => window.tm.isAuthenticated), false);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('F19/C36: the bearer never reaches another origin, and a 401 from another origin triggers no refresh', { timeout: 60_000 }, async () => {
  const { context, page, errors } = await signedIn(slow);
  try {
    const seenBrowser = [];
    page.on('request', (req) => seenBrowser.push({ url: req.url(), authorization: req.headers().authorization ?? null }));
    const other = capture.url; // http://127.0.0.1:<another port>
    const otherLocalhost = other.replace('127.0.0.1', 'localhost');
    // A 401 from a foreign origin, answered by the browser-side route (nothing leaves the machine).
    await page.route(`${other}/deny`, (route) => route.fulfill({
      status: 401,
      headers: { 'www-authenticate': 'Bearer error="invalid_token"', 'access-control-allow-origin': '*' },
      body: '',
    }));
    const refreshBefore = await slow.metric(REFRESHES);
    const capturedBefore = capture.requests.length;

    const results = await page.evaluate(async ({ other, otherLocalhost, own }) => {
      const port = new URL(other).port;
      const variants = {
        plain: `${other}/whoami`,
        localhost: `${otherLocalhost}/whoami`,
        schemeRelative: `//127.0.0.1:${port}/whoami`,
        upperCaseScheme: `HTTP://127.0.0.1:${port}/whoami`,
        ownOriginInQuery: `${other}/whoami?next=${encodeURIComponent(own)}`,
        ownOriginInFragment: `${other}/whoami#${own}`,
        userinfoLooksOwn: `http://${new URL(own).host}@127.0.0.1:${port}/whoami`,
        urlObject: new URL('/whoami', other),
        requestObject: new Request(`${other}/whoami`),
        ownHostOtherScheme: `https://${new URL(own).host}/api/me`,
        foreign401: `${other}/deny`,
      };
      const out = {};
      for (const [name, input] of Object.entries(variants)) {
        try {
          const res = await window.tm.fetch(input);
          out[name] = { status: res.status, body: res.status === 200 ? await res.json() : null };
        } catch (e) {
          out[name] = { rejected: `${e.name}` };
        }
      }
      return out;
    }, { other, otherLocalhost, own: slow.url });

    // The capture server answered, so the requests really went there, without the bearer.
    for (const name of ['plain', 'localhost', 'schemeRelative', 'upperCaseScheme', 'ownOriginInQuery', 'ownOriginInFragment', 'urlObject', 'requestObject']) {
      assert.equal(results[name].status, 200, `${name}: reached the other origin`);
      assert.equal(results[name].body.authorization, null, `${name}: no Authorization at the other origin`);
    }
    assert.equal(results.userinfoLooksOwn.rejected, 'TypeError', 'a URL with credentials is refused, as fetch does');
    assert.equal(results.foreign401.status, 401, 'the foreign 401 is passed through untouched');
    const captured = capture.requests.slice(capturedBefore);
    assert.ok(captured.filter((r) => r.path === '/whoami').length >= 8);
    assert.deepEqual(captured.filter((r) => r.authorization !== null), [], 'the capture server saw no Authorization');
    const foreignWithBearer = seenBrowser.filter((r) => !r.url.startsWith(`${slow.url}/`) && r.authorization);
    assert.deepEqual(foreignWithBearer, [], 'the browser sent no Authorization to any other origin');
    assert.equal((await slow.metric(REFRESHES)) - refreshBefore, 0, 'foreign 401s trigger no refresh');
    assert.deepEqual(await page.evaluate(() => window.events.filter((e) => e.type !== 'tokenchange' || e.detail?.source !== 'login').length), 0);

    // Positive control: the same manager does attach the bearer to its own origin, and a manager that lists the
    // capture origin sends it there (so the capture server would have seen a leak).
    const ownSent = recordRequests(page, /^\/api\/me$/);
    assert.equal(await page.evaluate(() => window.tm.fetch('/api/me').then((r) => r.status)), 200);
    const token = ownSent.at(-1)?.authorization?.replace(/^Bearer /, '');
    assert.ok(token, 'the bearer went to the own origin');
    const control = await page.evaluate(async ({ other, token }) => {
      const tm2 = new window.TokenManager({ refreshUrl: '/auth/refresh', apiOrigins: [other] });
      tm2.setAccessToken(token);
      const body = await (await tm2.fetch(`${other}/whoami`)).json();
      tm2.dispose();
      return body.authorization;
    }, { other, token });
    assert.equal(control, `Bearer ${token}`, 'an allowed origin gets the bearer');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('ky and openapi-fetch use tm.fetch as their fetch: requests carry the bearer and recover from a 401', { timeout: 60_000 }, async () => {
  const { context, page, errors } = await signedIn(slow);
  try {
    for (const lib of ['ky', 'openapi-fetch']) {
      assert.equal(await page.evaluate(() => window.revokeAccess()), 200);
      const before = await slow.stats();
      const r = await page.evaluate(async (lib) => {
        const payload = { lib, items: [1, 2, 3], note: 'héllo' };
        const expected = await window.sha256hex(new TextEncoder().encode(JSON.stringify(payload)));
        if (lib === 'ky') {
          const { default: ky } = await import('ky');
          const api = ky.create({ fetch: window.tm.fetch, retry: 0 });
          const me = await api.get(`${location.origin}/api/me`).json();
          const echo = await api.post(`${location.origin}/api/echo`, { json: payload }).json();
          return { sub: me.sub, echoHash: echo.sha256, expected };
        }
        const { default: createClient } = await import('openapi-fetch');
        const client = createClient({ baseUrl: location.origin, fetch: window.tm.fetch });
        const me = await client.GET('/api/me');
        const echo = await client.POST('/api/echo', { body: payload });
        return { sub: me.data?.sub, status: me.response.status, echoHash: echo.data?.sha256, expected };
      }, lib);
      const after = await slow.stats();
      assert.equal(r.sub, 'demo', `${lib}: GET /api/me through tm.fetch`);
      assert.equal(r.echoHash, r.expected, `${lib}: the JSON body arrived intact`);
      assert.equal(after.api401 - before.api401, 1, `${lib}: the first call met the revoked token's 401`);
      assert.equal(after.refreshCalls - before.refreshCalls, 1, `${lib}: one refresh, then the call was retried`);
    }
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
