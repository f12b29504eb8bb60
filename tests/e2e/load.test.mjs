// Load scenarios of the catalogue (4(c), issue 9 item 9), scaled to the test budget and bounded in count and time:
// the real package in headless Chromium and the real auth server on loopback. F8 runs the clock-skew matrix over
// several short token lifetimes, F13 floods /auth/refresh from one address while fifty users on other addresses
// refresh, F14 rotates the signing key under traffic and floods unknown kids, F17 soaks one page. The figures come
// from the server's counters and from what the pages sent; no assertion is about time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { launchChromium } from './support/browser.mjs';
import { startAuthServer } from './support/server.mjs';
import { HARNESS_DIR, collectErrors, openHarness, recordRequests, sleep } from './support/app.mjs';
import { keepWasmMemories, memorySnapshot, wasmBytes } from './support/memory.mjs';

let browser;
before(async () => { browser = await launchChromium(); });
after(async () => { await browser?.close(); });

/** Server counters the load scenarios are judged by. */
async function counters(server) {
  const s = await server.stats();
  return {
    refreshOk: s.refreshOk,
    refreshRateLimited: s.refreshRateLimited,
    reuse: s.reuseDetected,
    familyRevocations: s.familyRevocations,
    logouts: s.logouts,
    api401: s.api401,
    apiOk: s.apiOk,
  };
}
const delta = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, a[k] - b[k]]));

/** In the page: `window.tm.fetch('/api/me')`, `parallel` at a time, until `count` calls or `ms` passed; the statuses. */
const callFor = (page, { ms, count = 100_000, parallel = 2, pause = 150 }) => page.evaluate(async ({ ms, count, parallel, pause }) => {
  const statuses = {};
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end && n < count) {
    const batch = await Promise.all(Array.from({ length: parallel }, () =>
      window.tm.fetch('/api/me').then((r) => r.status, (e) => `${e.name}: ${e.message}`)));
    n += batch.length;
    for (const s of batch) statuses[s] = (statuses[s] ?? 0) + 1;
    if (pause) await new Promise((r) => setTimeout(r, pause));
  }
  return statuses;
}, { ms, count, parallel, pause });

test('F8: the clock-skew matrix (client clock −24 h … +24 h): at most one refresh per token lifetime, every call answered 200, no logout', { timeout: 120_000 }, async (t) => {
  const TTL = 4; // seconds
  const RUN_MS = 13_000; // three lifetimes and a bit
  const server = await startAuthServer({ www: HARNESS_DIR, accessTtl: TTL });
  const H = 3600_000;
  const offsets = { '−24 h': -24 * H, '−10 min': -600_000, '−61 s': -61_000, '0': 0, '+61 s': 61_000, '+10 min': 600_000, '+24 h': 24 * H };
  const contexts = [];
  try {
    const before = await counters(server);
    const runs = await Promise.all(Object.entries(offsets).map(async ([name, offset]) => {
      const context = await browser.newContext();
      contexts.push(context);
      const page = await context.newPage();
      const errors = collectErrors(page);
      // The page's clock (Date, timers, performance) starts `offset` away from the real one and runs on from there.
      await page.clock.install({ time: Date.now() + offset });
      await page.goto(`${server.url}/index.html`);
      await page.waitForFunction(() => window.harnessReady === true, null, { timeout: 20_000 });
      await page.evaluate(() => window.setup({ refreshMarginSeconds: 1 }));
      const skew = await page.evaluate(() => Date.now()) - Date.now();
      const refreshes = recordRequests(page, /^\/auth\/refresh$/);
      assert.equal(await page.evaluate(() => window.loginDemo()), 200);
      const statuses = await callFor(page, { ms: RUN_MS });
      const events = await page.evaluate(() => window.events.map((e) => e.type));
      return { name, offset, skew, statuses, refreshes: refreshes.length, events, errors };
    }));
    t.diagnostic(`refresh calls per offset in ${RUN_MS / 1000} s of ${TTL} s tokens: ${runs.map((r) => `${r.name} ${r.refreshes}`).join(', ')}`);
    for (const r of runs) {
      assert.ok(Math.abs(r.skew - r.offset) < 60_000, `${r.name}: the page's clock is off by ${r.skew} ms`);
      assert.deepEqual(Object.keys(r.statuses), ['200'], `${r.name}: every call answered 200 (${JSON.stringify(r.statuses)})`);
      assert.ok(r.statuses['200'] >= 40, `${r.name}: calls were made throughout (${r.statuses['200']})`);
      assert.ok(r.refreshes >= 2, `${r.name}: the token was renewed (${r.refreshes} refresh calls)`);
      assert.ok(r.refreshes <= Math.ceil(RUN_MS / (TTL * 1000)) + 1, `${r.name}: at most one refresh per ${TTL} s lifetime (${r.refreshes} in ${RUN_MS / 1000} s)`);
      assert.deepEqual(r.events.filter((e) => e !== 'tokenchange'), [], `${r.name}: no refreshfailed, sessionexpired or logout`);
      assert.deepEqual(r.errors, [], r.name);
    }
    const d = delta(await counters(server), before);
    assert.equal(d.api401, 0, 'renewal ahead of expiry worked on every clock: no request went out with an expired token');
    assert.equal(d.logouts, 0);
    assert.equal(d.reuse, 0);
    assert.equal(d.familyRevocations, 0);
  } finally {
    await Promise.all(contexts.map((c) => c.close()));
    await server.stop();
  }
});

/**
 * One HTTP request from `localAddress` (a loopback address) to `server`, on a connection of its own (a kept-alive one
 * could be closed by the server's idle timeout just as it is reused); resolves { status, headers, body }.
 */
function request(server, { localAddress, method = 'POST', path, headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, method, path, headers, localAddress, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
const cookieOf = (res) => /(?:^|\s)rt=([^;]*)/.exec([].concat(res.headers['set-cookie'] ?? []).join('\n'))?.[1] ?? null;

test('F13: a refresh flood from one address with garbage cookies is refused cheaply (401, then 429) while fifty users on other addresses keep refreshing, none of their tokens consumed', { timeout: 120_000 }, async (t) => {
  // The default per-IP limits; fifty sessions of the one demo user, so no per-user cap (its default of 10 would
  // evict the oldest sessions: that is S43, not this case).
  const server = await startAuthServer({ www: HARNESS_DIR, rateLimits: true, args: ['--max-sessions-per-user', '0'] });
  const USERS = 50;
  const ATTACK = 2_000;
  const csrf = { origin: server.url, 'x-requested-with': 'fetch' };
  try {
    // Fifty users, each on its own loopback address, sign in.
    const users = await Promise.all(Array.from({ length: USERS }, async (_, i) => {
      const localAddress = `127.0.1.${i + 1}`;
      const res = await request(server, {
        localAddress, path: '/auth/login', headers: { 'content-type': 'application/json', origin: server.url },
        body: JSON.stringify({ username: 'demo', password: 'demo' }),
      });
      assert.equal(res.status, 200, `user ${i} signs in`);
      return { localAddress, cookie: cookieOf(res), refreshed: [] };
    }));
    const before = await counters(server);

    // The attacker on 127.0.0.2: no cookie, a malformed one, or a well-formed unknown one, in turn.
    const kinds = ['none', 'malformed', 'unknown'];
    let sent = 0;
    const attack = [];
    const attacker = async () => {
      while (sent < ATTACK) {
        const kind = kinds[sent % 3];
        sent += 1;
        const cookie = kind === 'none' ? {} : { cookie: `rt=${kind === 'malformed' ? '%%not-a-token%%' : randomBytes(32).toString('base64url')}` };
        const res = await request(server, { localAddress: '127.0.0.2', path: '/auth/refresh', headers: { ...csrf, ...cookie } });
        attack.push({ kind, status: res.status });
      }
    };
    // The users refresh three times each while the flood runs.
    const legit = async (u) => {
      for (let round = 0; round < 3; round += 1) {
        const res = await request(server, { localAddress: u.localAddress, path: '/auth/refresh', headers: { ...csrf, cookie: `rt=${u.cookie}` } });
        u.refreshed.push(res.status);
        if (res.status === 200) u.cookie = cookieOf(res);
      }
    };
    await Promise.all([...Array.from({ length: 16 }, attacker), ...users.map(legit)]);

    assert.equal(attack.length, ATTACK);
    const byStatus = {};
    for (const a of attack) byStatus[`${a.kind} ${a.status}`] = (byStatus[`${a.kind} ${a.status}`] ?? 0) + 1;
    t.diagnostic(`attack answers by cookie kind and status: ${JSON.stringify(byStatus)}`);
    assert.deepEqual(attack.filter((a) => a.status !== 401 && a.status !== 429), [], `every attack request got 401 or 429: ${JSON.stringify(byStatus)}`);
    assert.deepEqual(attack.filter((a) => a.kind !== 'unknown' && a.status !== 401), [], 'requests without a well-formed cookie are refused before any budget is spent (cheap 401)');
    assert.ok((byStatus['unknown 429'] ?? 0) > 0, `well-formed unknown cookies ran into the per-address limit: ${JSON.stringify(byStatus)}`);
    for (const [i, u] of users.entries()) assert.deepEqual(u.refreshed, [200, 200, 200], `user ${i}: every refresh succeeded`);
    // No user's token was consumed by the flood: each user's latest cookie still rotates.
    const after = await Promise.all(users.map((u) => request(server, { localAddress: u.localAddress, path: '/auth/refresh', headers: { ...csrf, cookie: `rt=${u.cookie}` } })));
    assert.deepEqual(after.map((r) => r.status), users.map(() => 200), 'each user\'s latest cookie is still live');
    const d = delta(await counters(server), before);
    assert.equal(d.refreshOk, USERS * 4, 'rotations are exactly the users\' refreshes');
    assert.equal(d.reuse, 0);
    assert.equal(d.familyRevocations, 0);
  } finally {
    await server.stop();
  }
});

/** An ES256 access token signed with a key the server never had, under a random `kid`. */
function foreignToken(privateKey) {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'ES256', typ: 'at+jwt', kid: randomBytes(8).toString('hex') })}.${b64({
    iss: 'urn:wasm-token-manager:auth-server', aud: 'urn:wasm-token-manager:api', sub: 'demo', sid: 'x', jti: randomBytes(8).toString('hex'), iat: now, exp: now + 60,
  })}`;
  const sig = createSign('sha256').update(input).sign({ key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

test('F14: the signing key rotates every 2 s under traffic: no verification failure, several keys used in turn; a flood of unknown kids is refused and changes nothing', { timeout: 120_000 }, async () => {
  const server = await startAuthServer({ www: HARNESS_DIR, accessTtl: 3, args: ['--key-rotate-every', '2', '--jwks-max-age', '1', '--leeway', '0'] });
  const context = await browser.newContext();
  try {
    const { page, errors } = await openHarness(context, server, { refreshMarginSeconds: 1 });
    const sent = recordRequests(page, /^\/api\/me$/);
    assert.equal(await page.evaluate(() => window.loginDemo()), 200);
    const before = await counters(server);
    // The flood runs while the page calls: 1,000 tokens under unknown kids, 20 at a time.
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const flood = [];
    const flooder = async () => {
      while (flood.length < 1_000) {
        const i = flood.push(0) - 1;
        const res = await fetch(`${server.url}/api/me`, { headers: { authorization: `Bearer ${foreignToken(privateKey)}` } });
        flood[i] = res.status;
        await res.arrayBuffer();
      }
    };
    const [statuses] = await Promise.all([callFor(page, { ms: 12_000 }), ...Array.from({ length: 20 }, flooder)]);
    const d = delta(await counters(server), before);

    assert.deepEqual(Object.keys(statuses), ['200'], `every page call succeeded: ${JSON.stringify(statuses)}`);
    assert.deepEqual([...new Set(flood)], [401], 'every unknown-kid token was refused');
    assert.equal(d.api401, flood.length, 'the only 401s were the flood\'s: zero verification failures for real tokens');
    const kids = new Set(sent.filter((r) => r.authorization).map((r) => JSON.parse(Buffer.from(r.authorization.slice(7).split('.')[0], 'base64url')).kid));
    assert.ok(kids.size >= 3, `the page's tokens were signed by ${kids.size} keys in turn`);
    assert.equal(d.logouts, 0);
    assert.deepEqual(await page.evaluate(() => window.events.filter((e) => e.type !== 'tokenchange').map((e) => e.type)), []);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await server.stop();
  }
});

test('F17: soak: 2,000 calls over many 4 s token lifetimes leave the JS heap and wasm memory within 5 % of the warm-up, and no listener or waiting promise behind', { timeout: 180_000 }, async (t) => {
  const server = await startAuthServer({ www: HARNESS_DIR, accessTtl: 4, args: ['--leeway', '0'] });
  const context = await browser.newContext();
  await context.addInitScript(keepWasmMemories);
  try {
    const { page, errors } = await openHarness(context, server, { refreshMarginSeconds: 1 });
    assert.equal(await page.evaluate(() => window.loginDemo()), 200);
    const cdp = await context.newCDPSession(page);
    // Snapshots are taken at rest: half a second after a renewal (the next one is 3 s away), so that no refresh
    // call, lock or timer callback is in flight.
    const snapshot = async () => {
      await page.evaluate(() => new Promise((resolve) => window.tm.events.addEventListener('tokenchange', resolve, { once: true })));
      await sleep(500);
      const { heap, listeners, promises } = await memorySnapshot(cdp);
      return { heap, listeners, promises, wasm: await wasmBytes(page) };
    };
    const warm = await callFor(page, { ms: 60_000, count: 500, parallel: 8, pause: 0 });
    assert.deepEqual(Object.keys(warm), ['200']);
    const a = await snapshot();
    const before = await counters(server);
    const run = await callFor(page, { ms: 120_000, count: 2_000, parallel: 8, pause: 0 });
    const b = await snapshot();
    const d = delta(await counters(server), before);

    t.diagnostic(`after warm-up → after the run: ${JSON.stringify(a)} → ${JSON.stringify(b)}; ${d.refreshOk} renewals`);
    assert.deepEqual(Object.keys(run), ['200'], `every call succeeded: ${JSON.stringify(run)}`);
    assert.ok(run['200'] >= 2_000, `${run['200']} calls`);
    assert.ok(d.refreshOk >= 2, `the run spanned several lifetimes (${d.refreshOk} renewals)`);
    assert.equal(d.logouts + d.reuse + d.familyRevocations, 0);
    assert.ok(Math.abs(b.heap - a.heap) <= 0.05 * a.heap, `JS heap ${a.heap} → ${b.heap} B`);
    assert.ok(b.wasm <= a.wasm * 1.05, `wasm memory ${a.wasm} → ${b.wasm} B`);
    assert.ok(b.listeners <= a.listeners, `listeners ${a.listeners} → ${b.listeners}`);
    assert.ok(b.promises <= a.promises, `live promises ${a.promises} → ${b.promises} (no waiter left behind)`);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await server.stop();
  }
});
