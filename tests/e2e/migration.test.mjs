// End-to-end: a legacy-token client carried through the migration phases 0 → 4 (issue 10, docs/migration.md) in
// headless Chromium against the real auth server on loopback, configured as a team would: the old system's HMAC
// secret from a file (--legacy-hmac-secret-file, user id in `userId`), an admin secret, phases switched at runtime
// through POST /admin/legacy/phase. Legacy tokens are minted here exactly as the old system did (HS256, no kid, no
// exp). The counters come from the server (/metrics, GET /admin/legacy), never from the client under test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchChromium } from './support/browser.mjs';
import { startAuthServer } from './support/server.mjs';
import { HARNESS_DIR, openHarness, routeVendors, until } from './support/app.mjs';

const LEGACY_SECRET = crypto.randomBytes(24).toString('base64url');
const ADMIN_SECRET = crypto.randomBytes(24).toString('base64url');
const UPGRADE = '/auth/legacy/upgrade';

let browser;
let server;
let dir;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wtm-migration-'));
  // Files as an operator writes them: with a trailing newline, which is not part of the secret.
  fs.writeFileSync(path.join(dir, 'legacy.key'), `${LEGACY_SECRET}\n`);
  fs.writeFileSync(path.join(dir, 'admin.key'), `${ADMIN_SECRET}\n`);
  browser = await launchChromium();
  server = await startAuthServer({
    www: HARNESS_DIR, demo: false, accessTtl: 120,
    args: ['--legacy-hmac-secret-file', path.join(dir, 'legacy.key'), '--legacy-subject-claim', 'userId',
      '--admin-secret-file', path.join(dir, 'admin.key'), '--reuse-grace', '0'],
  });
});
after(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** A never-expiring token as the old system minted it: HS256, one shared secret, no kid, no exp. */
function legacyToken(userId) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ userId, iat: 1_500_000_000, jti: crypto.randomUUID() })}`;
  return `${head}.${crypto.createHmac('sha256', LEGACY_SECRET).update(head).digest('base64url')}`;
}

async function admin(method, p, body) {
  const res = await fetch(`${server.url}${p}`, {
    method, headers: { authorization: `Bearer ${ADMIN_SECRET}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  assert.equal(res.status, 200, `${method} ${p}`);
  return res.json();
}

const setPhase = async (phase) => assert.equal((await admin('POST', '/admin/legacy/phase', { phase })).phase, phase);

/** A page whose manager holds `token` as its legacy token. */
async function legacyClient(token) {
  const context = await browser.newContext();
  await routeVendors(context);
  const { page, errors } = await openHarness(context, server, { legacyUpgradeUrl: UPGRADE, legacyToken: token, crossTab: false });
  return { context, page, errors };
}

/** `n` requests to /api/me through the manager, one after the other; their statuses. */
const calls = (page, n) => page.evaluate(async (k) => {
  const out = [];
  for (let i = 0; i < k; i++) out.push((await window.tm.fetch('/api/me')).status);
  return out;
}, n);

test('a legacy-token client goes through phases 0 → 4: no failed request while it upgrades, refused without a loop in phase 3, alerts in phase 4', { timeout: 120_000 }, async () => {
  const a = await legacyClient(legacyToken('demo'));
  const b = await legacyClient(legacyToken('alice'));
  const pages = [a, b];
  try {
    // Phase 0, detect: the legacy token works as before, and every use is counted.
    assert.deepEqual(await calls(a.page, 5), [200, 200, 200, 200, 200]);
    assert.equal(await a.page.evaluate(() => window.tm.legacyUpgrade), 'held');
    assert.equal(await server.metric('auth_legacy_uses_total', { phase: '0' }), 5);
    let report = await admin('GET', '/admin/legacy');
    assert.equal(report.report.usersStillOnLegacy, 1);
    assert.equal(report.report.legacyShare, 1);

    // Phase 1, dual: the Deprecation header makes the client exchange its token once; requests keep succeeding.
    await setPhase(1);
    assert.deepEqual(await calls(a.page, 1), [200]);
    await until(() => a.page.evaluate(() => window.tm.legacyUpgrade === 'upgraded'), { what: 'the exchange in phase 1' });
    assert.deepEqual(await calls(a.page, 5), [200, 200, 200, 200, 200]);
    assert.equal(await server.metric('auth_legacy_exchanges_total', { outcome: 'ok' }), 1);
    assert.equal(await server.metric('auth_legacy_uses_total', { phase: '1' }), 1, 'after the exchange only new tokens are sent');
    const me = await a.page.evaluate(async () => (await window.tm.fetch('/api/me')).json());
    assert.equal(me.sub, 'demo');
    assert.ok(me.sid, 'a real session');
    assert.equal(me.legacy, undefined);

    // Phase 2, force refresh: a client that still holds its legacy token gets 401 naming the upgrade, exchanges
    // once, and every one of its concurrent requests succeeds on the retry.
    await setPhase(2);
    const concurrent = await b.page.evaluate(() => Promise.all([1, 2, 3].map(() => window.tm.fetch('/api/me').then((r) => r.status))));
    assert.deepEqual(concurrent, [200, 200, 200]);
    assert.equal(await b.page.evaluate(() => window.tm.legacyUpgrade), 'upgraded');
    assert.equal(await server.metric('auth_legacy_exchanges_total', { outcome: 'ok' }), 2);
    assert.equal(await server.metric('auth_legacy_security_events_total'), 0);
    assert.ok(await server.metric('auth_legacy_refusals_total', { phase: '2' }) >= 1, 'the legacy requests were refused first');
    assert.deepEqual(await calls(a.page, 3), [200, 200, 200], 'the client upgraded in phase 1 is unaffected');
    // upgradeLegacyToken called before the wasm is ready is queued, then exchanges.
    const early = await (async () => {
      const context = await browser.newContext();
      pages.push({ context });
      const { page } = await openHarness(context, server, null);
      return page.evaluate(async (token) => {
        const tm = new window.TokenManager({ refreshUrl: '/auth/refresh', legacyUpgradeUrl: '/auth/legacy/upgrade', crossTab: false,
          refreshHeaders: { 'X-Requested-With': 'fetch' } });
        const before = tm.legacyUpgrade;
        const upgraded = await tm.upgradeLegacyToken(token);
        return { before, upgraded, after: tm.legacyUpgrade, status: (await tm.fetch('/api/me')).status };
      }, legacyToken('bob'));
    })();
    assert.deepEqual(early, { before: 'none', upgraded: true, after: 'upgraded', status: 200 });

    // Phase 3, revoke: a client still on a legacy token is refused everywhere; one exchange attempt, one event,
    // then no more calls (no loop) and no refresh.
    await setPhase(3);
    const d = await legacyClient(legacyToken('late-user'));
    pages.push(d);
    const refreshesBefore = await server.metric('auth_refresh_requests_total');
    assert.deepEqual(await calls(d.page, 4), [401, 401, 401, 401]);
    const failed = await d.page.evaluate(() => window.events.filter((e) => e.type === 'legacyupgradefailed').map((e) => e.detail));
    assert.deepEqual(failed, [{ status: 401, reason: 'retired', retryable: false }]);
    assert.equal(await d.page.evaluate(() => window.tm.legacyUpgrade), 'failed');
    assert.equal(await server.metric('auth_legacy_upgrades_total', { outcome: 'retired' }), 1, 'one exchange attempt');
    assert.equal(await server.metric('auth_refresh_requests_total') - refreshesBefore, 0, 'no refresh either');
    assert.deepEqual(await calls(a.page, 2), [200, 200]);

    // Phase 4, enforce and monitor: legacy tokens still arriving raise alerts, as does refresh-token reuse.
    await setPhase(4);
    const late = await fetch(`${server.url}/api/me`, { headers: { authorization: `Bearer ${legacyToken('ghost')}` } });
    assert.equal(late.status, 401);
    assert.doesNotMatch(late.headers.get('www-authenticate') ?? '', /upgrade/);
    assert.ok(await server.metric('auth_alerts_total', { kind: 'legacy_token' }) >= 1);
    const login = await fetch(`${server.url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'bob', password: 'bob' }) });
    const rt = /rt=([^;]+)/.exec(login.headers.get('set-cookie'))[1];
    const refresh = () => fetch(`${server.url}/auth/refresh`, { method: 'POST',
      headers: { cookie: `rt=${rt}`, origin: server.url, 'x-requested-with': 'fetch' } });
    assert.equal((await refresh()).status, 200);
    assert.equal((await refresh()).status, 401, 'the rotated token replayed');
    assert.equal(await server.metric('auth_alerts_total', { kind: 'rt_reuse' }), 1);
    await until(() => server.logs.some((l) => /alert/.test(l) && /legacy_token/.test(l)), { what: 'the alert log line' });

    report = await admin('GET', '/admin/legacy');
    assert.equal(report.phase, 4);
    assert.equal(report.report.upgrades, 3);
    assert.ok(report.report.legacyShare > 0 && report.report.legacyShare < 1, `share ${report.report.legacyShare}`);
    for (const p of pages) assert.deepEqual(p.errors ?? [], []);
  } finally {
    for (const p of pages) await p.context.close();
  }
});

test('the kill switch takes a phase back at once, for the next request', { timeout: 60_000 }, async () => {
  const token = legacyToken('kill-switch-user');
  const get = () => fetch(`${server.url}/api/me`, { headers: { authorization: `Bearer ${token}` } });
  await setPhase(1);
  const dual = await get();
  assert.equal(dual.status, 200);
  assert.match(dual.headers.get('deprecation') ?? '', /^@\d+$/);
  assert.ok(dual.headers.get('sunset'));
  assert.equal(dual.headers.get('link'), '</auth/legacy/upgrade>; rel="successor-version"');
  await setPhase(3);
  assert.equal((await get()).status, 401);
  const back = await admin('POST', '/admin/legacy/kill-switch');
  assert.equal(back.phase, 1);
  assert.equal(back.reverted, true);
  assert.equal((await get()).status, 200, 'phase 1 again at once');
});

test('two tabs holding the same legacy token exchange it once between them (the refresh election), both succeed', { timeout: 60_000 }, async () => {
  await setPhase(2);
  const token = legacyToken('two-tabs-user');
  const context = await browser.newContext();
  try {
    await routeVendors(context);
    // The default tabs channel (derived from refreshUrl), as two tabs of one app would have it.
    const tabs = await Promise.all([1, 2].map(() => openHarness(context, server, { legacyUpgradeUrl: UPGRADE, legacyToken: token })));
    const before = await admin('GET', '/admin/legacy');
    const statuses = await Promise.all(tabs.map(({ page }) => page.evaluate(() => window.tm.fetch('/api/me').then((r) => r.status))));
    assert.deepEqual(statuses, [200, 200]);
    const after = await admin('GET', '/admin/legacy');
    assert.equal(after.report.upgrades - before.report.upgrades, 1, 'one exchange for both tabs');
    assert.equal(after.report.securityEvents, before.report.securityEvents, 'no replay');
    const states = await Promise.all(tabs.map(({ page }) => page.evaluate(() => window.tm.legacyUpgrade)));
    assert.deepEqual(states, ['upgraded', 'upgraded']);
    const sids = await Promise.all(tabs.map(({ page }) => page.evaluate(async () => (await (await window.tm.fetch('/api/me')).json()).sid)));
    assert.equal(sids[0], sids[1], 'one session');
    for (const { errors } of tabs) assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
