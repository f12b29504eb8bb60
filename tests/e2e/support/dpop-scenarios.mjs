// The DPoP end-to-end scenarios (issue 14 item 9), written once for any browser driver: tests/e2e/dpop.test.mjs
// runs them in Chromium (playwright-core), tests/e2e/dpop-firefox.test.mjs in Firefox ESR (selenium-webdriver and
// geckodriver). The page side is tests/e2e/fixtures/app/dpop.js; the attacker is this node process, with a P-256
// key of its own (panva's `dpop` on node's WebCrypto). Every assertion is on the server's counters (/metrics,
// /demo/stats), on the requests sent, or on answers; none on timing.
//
// A driver is { name, start(), stop(), newContext() } (support/drivers.mjs): a context is { open(server, options), cookies(server), close() }, a tab is
// { call(name, ...args) (awaits window[name](...args) in the page), reload(options), wire(), errors() }.
// `wire()` is the list of requests the tab sent: { path, method, authorization, dpop }.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { generateKeyPair, generateProof } from 'dpop';
import { startAuthServer } from './server.mjs';
import { HARNESS_DIR } from './app.mjs';

const REFRESHES = 'auth_refresh_requests_total';
const LOGINS = 'auth_logins_total';
const LOGOUTS = 'auth_logouts_total';
const KEY_MISMATCH = 'auth_dpop_key_mismatch_total';
const PROOFS_REFUSED = 'auth_dpop_proofs_refused_total';
const REUSE = 'auth_rt_reuse_detected_total';

/** The JSON payload of a JWT (no verification: the test reads `cnf.jkt`). */
export function jwtPayload(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

/** The JSON header of a JWT. */
export function jwtHeader(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString('utf8'));
}

/** RFC 7638 thumbprint of an EC public JWK: base64url SHA-256 of {"crv","kty","x","y"} in that order. */
export function ecThumbprint({ crv, kty, x, y }) {
  return createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url');
}

/** The `cnf.jkt` of an access token (throws when it has none). */
export function jktOf(token) {
  const jkt = jwtPayload(token).cnf?.jkt;
  assert.equal(typeof jkt, 'string', 'the access token is DPoP-bound (cnf.jkt)');
  return jkt;
}

/** The attacker: a P-256 key of its own and the server's current nonce, read from any answer (RFC 9449 §8). */
export async function attacker(server) {
  const key = await generateKeyPair('ES256');
  const nonce = async () => {
    const res = await fetch(`${server.url}/api/me`);
    await res.arrayBuffer();
    const n = res.headers.get('dpop-nonce');
    assert.ok(n, 'the server hands out a DPoP-Nonce on /api answers');
    return n;
  };
  return {
    key,
    /** A valid proof of the attacker's key for `method url` (with `ath` of `token` when given). */
    proof: async (method, url, token) => generateProof(key, url, method, await nonce(), token),
  };
}

/** GET /api/me from node with `headers`: { status, challenge, error } (error: the challenge's error="…"). */
async function apiFromNode(server, headers) {
  const res = await fetch(`${server.url}/api/me`, { headers });
  await res.arrayBuffer();
  const challenge = res.headers.get('www-authenticate');
  return { status: res.status, challenge, error: /error="([^"]+)"/.exec(challenge ?? '')?.[1] ?? null };
}

/** POST /auth/refresh from node with the stolen cookie, passing the CSRF checks as a script can: { status, error }. */
async function refreshFromNode(server, cookie, extra = {}) {
  const res = await fetch(`${server.url}/auth/refresh`, {
    method: 'POST',
    headers: { cookie: `${cookie.name}=${cookie.value}`, origin: server.url, 'x-requested-with': 'fetch', ...extra },
  });
  const body = await res.json().catch(() => null);
  return { status: res.status, error: body?.error ?? null, setCookie: res.headers.get('set-cookie') };
}

async function counters(server) {
  const stats = await server.stats();
  return {
    refreshes: await server.metric(REFRESHES),
    refreshesOk: await server.metric(REFRESHES, { outcome: 'ok' }),
    refreshesRefused: await server.metric(REFRESHES, { outcome: 'invalid_grant' }),
    logins: await server.metric(LOGINS),
    logouts: await server.metric(LOGOUTS),
    keyMismatch: await server.metric(KEY_MISMATCH),
    proofsRefused: await server.metric(PROOFS_REFUSED),
    reuse: await server.metric(REUSE),
    api401: stats.api401,
  };
}

const delta = (after, before) => Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - before[k]]));

/** The servers the scenarios use: start them in `before`, stop them in `after`. */
export async function startDpopServers() {
  const required = (ttl, extra = []) => startAuthServer({ www: HARNESS_DIR, accessTtl: ttl, args: ['--dpop', 'required', ...extra] });
  const [short, long, rotating, allowed] = await Promise.all([
    required(4), // 4 s access tokens: renewals come quickly
    required(120), // no scheduled refresh during a test
    required(120, ['--dpop-nonce-rotate', '1']), // a new server nonce every second
    startAuthServer({ www: HARNESS_DIR, accessTtl: 120, args: ['--dpop', 'allowed'] }),
  ]);
  const servers = { short, long, rotating, allowed };
  servers.stop = () => Promise.all([short, long, rotating, allowed].map((s) => s?.stop()));
  return servers;
}

/** Signs in in `tab` (the harness's demo/demo) and asserts the 200. */
async function signIn(tab) {
  assert.equal(await tab.call('loginDemo'), 200, 'login answered 200');
}

/** Waits in the page until the tab holds a token expiring after its current one (bounded: the old expiry + 3 s). */
async function throughOneExpiry(tab) {
  const { expiresAt } = await tab.call('state');
  assert.ok(Number.isFinite(expiresAt), 'the manager knows its expiry');
  return tab.call('renewedAfter', expiresAt, Math.max(0, expiresAt - Date.now()) + 3_000);
}

/** Every scenario: name → async (context, servers, driver), run in a fresh context of driver (registerDpopTests). */
export const SCENARIOS = {
  'full flow with --dpop required: login, API calls, proactive renewal over 3 lifetimes, logout; every API request carries Authorization: DPoP and a proof, none Bearer': async (ctx, { short: server }) => {
    const tab = await ctx.open(server, { dpop: true, refreshMarginSeconds: 1 });
    const before = await counters(server);
    await signIn(tab);
    assert.deepEqual(await tab.call('callApi', 3), { statuses: [200, 200, 200], failed: 0 });
    const jkt = jktOf(await tab.call('lastToken'));
    for (let i = 0; i < 3; i += 1) {
      await throughOneExpiry(tab);
      assert.deepEqual(await tab.call('callApi', 1), { statuses: [200], failed: 0 }, `API call after renewal ${i + 1}`);
      assert.equal(jktOf(await tab.call('lastToken')), jkt, 'a renewed token is bound to the same key');
    }
    assert.equal(await tab.call('logoutNow'), false, 'signed out');
    const d = delta(await counters(server), before);
    assert.equal(d.logins, 1);
    assert.ok(d.refreshesOk >= 3, `at least 3 renewals reached the server (${d.refreshesOk})`);
    assert.equal(d.refreshes, d.refreshesOk, 'every refresh succeeded');
    assert.equal(d.logouts, 1);
    assert.equal(d.api401, 0, 'no API call was refused');
    assert.equal(d.keyMismatch, 0);
    assert.equal(d.proofsRefused, 0);

    const wire = await tab.wire();
    const api = wire.filter((r) => r.path.startsWith('/api/'));
    assert.equal(api.length, 6, 'six API requests on the wire (no nonce resend within the default nonce period)');
    for (const r of api) {
      assert.match(r.authorization ?? '', /^DPoP [\w-]+\.[\w-]+\.[\w-]+$/, `${r.method} ${r.path} carries Authorization: DPoP`);
      assert.ok(r.dpop, `${r.method} ${r.path} carries a DPoP proof`);
      const h = jwtHeader(r.dpop);
      assert.equal(h.typ, 'dpop+jwt');
      assert.equal(h.alg, 'ES256');
      assert.equal(ecThumbprint(h.jwk), jkt, 'the proof is signed by the key the token is bound to (cnf.jkt = RFC 7638 thumbprint)');
      assert.equal(jwtPayload(r.dpop).ath, createHash('sha256').update(r.authorization.slice(5)).digest('base64url'), 'ath = SHA-256 of the token');
    }
    assert.equal(new Set(api.map((r) => jwtPayload(r.dpop).jti)).size, api.length, 'every proof has its own jti');
    assert.deepEqual(wire.filter((r) => /^Bearer /i.test(r.authorization ?? '')), [], 'no request carries a bearer token');
    for (const path of ['/auth/login', '/auth/refresh', '/auth/logout']) {
      const sent = wire.filter((r) => r.path === path);
      assert.ok(sent.length > 0, `${path} was called`);
      for (const r of sent) {
        assert.ok(r.dpop, `${path} carries a proof`);
        assert.equal(jwtPayload(r.dpop).ath, undefined, `${path}'s proof has no ath`);
      }
    }
    assert.deepEqual(tab.errors(), []);
  },

  'a stolen access token is refused at the API: as Bearer and with the attacker\'s own proof (key mismatch counted); the victim keeps working': async (ctx, { long: server }) => {
    const tab = await ctx.open(server, { dpop: true });
    await signIn(tab);
    const token = await tab.call('currentToken');
    jktOf(token);
    const thief = await attacker(server);
    const before = await counters(server);

    const asBearer = await apiFromNode(server, { authorization: `Bearer ${token}` });
    assert.equal(asBearer.status, 401, 'the stolen token as Bearer');
    assert.equal(asBearer.error, 'invalid_token');
    const url = `${server.url}/api/me`;
    const withOwnKey = await apiFromNode(server, { authorization: `DPoP ${token}`, dpop: await thief.proof('GET', url, token) });
    assert.equal(withOwnKey.status, 401, 'the stolen token with a valid proof of another key');
    assert.equal(withOwnKey.error, 'invalid_token', 'refused for the key, not for the proof or the nonce');
    assert.match(withOwnKey.challenge, /^DPoP /);

    const d = delta(await counters(server), before);
    assert.equal(d.keyMismatch, 2, 'both uses counted as key mismatches');
    assert.equal(d.proofsRefused, 0, "the attacker's proof itself was valid");
    assert.deepEqual(await tab.call('callApi', 2), { statuses: [200, 200], failed: 0 }, 'the victim keeps working');
    assert.deepEqual(tab.errors(), []);
  },

  'a stolen refresh cookie is refused at /auth/refresh without a proof and with the attacker\'s proof (counted); the victim\'s session keeps working': async (ctx, { long: server }) => {
    const tab = await ctx.open(server, { dpop: true });
    await signIn(tab);
    const cookies = await ctx.cookies(server);
    const rt = cookies.find((c) => c.name === 'rt');
    assert.ok(rt?.value, 'the browser holds the refresh cookie');
    const thief = await attacker(server);
    const before = await counters(server);

    const bare = await refreshFromNode(server, rt);
    assert.equal(bare.status, 400, 'the cookie without a proof');
    assert.equal(bare.error, 'invalid_dpop_proof', '--dpop required: no proof, no refresh');
    const withOwnKey = await refreshFromNode(server, rt, { dpop: await thief.proof('POST', `${server.url}/auth/refresh`) });
    assert.equal(withOwnKey.status, 401, "the cookie with the attacker's proof (the server answers invalid_grant with 401)");
    assert.equal(withOwnKey.error, 'invalid_grant');
    assert.equal(withOwnKey.setCookie, null, 'no new refresh cookie for the attacker');

    const d = delta(await counters(server), before);
    assert.equal(d.keyMismatch, 1, "the cookie with another key's proof is counted as a key mismatch");
    assert.equal(d.proofsRefused, 1, 'the missing proof is counted as a refused proof');
    assert.equal(d.refreshesOk, 0, 'no refresh succeeded for the attacker');
    assert.equal(d.reuse, 0, 'the family was not treated as reused');

    // The victim: its token revoked on the server, the next call refreshes with the victim's key and cookie.
    const mid = await counters(server);
    assert.equal(await tab.call('revokeAccess'), 200);
    assert.deepEqual(await tab.call('callApi', 1), { statuses: [200], failed: 0 }, "the victim's session survives the theft");
    assert.equal(delta(await counters(server), mid).refreshesOk, 1, 'through one refresh with the victim\'s key');
    assert.deepEqual((await tab.call('state')).events.filter((e) => e !== 'tokenchange'), [], 'no logout, no sessionexpired');
  },

  'the access token and refresh cookie copied into another browser context (its own manager and key): its API call and its refresh are refused and counted; the victim keeps working': async (ctx, { long: server }, driver) => {
    const tab = await ctx.open(server, { dpop: true });
    await signIn(tab);
    const token = await tab.call('currentToken');
    const cookies = await ctx.cookies(server);
    assert.ok(cookies.some((c) => c.name === 'rt' && c.httpOnly), 'the httpOnly refresh cookie, as a cookie-stealing malware would copy it');

    const other = await driver.newContext();
    try {
      const thief = await other.open(server, { dpop: true });
      await other.addCookies(server, cookies);
      const before = await counters(server);
      assert.equal(await thief.call('restore'), false, "the copied cookie does not refresh with the thief's key");
      let d = delta(await counters(server), before);
      const refresh = (await thief.call('wireInPage')).filter((r) => r.path === '/auth/refresh');
      // A fresh page holds no server nonce yet: one use_dpop_nonce answer (400), then the refusal of the cookie (401).
      assert.deepEqual(refresh.map((r) => r.status), [400, 401], "the thief's refresh: a nonce challenge, then refused");
      assert.ok(refresh.every((r) => r.dpop), "the thief's manager sent its refreshes with proofs of its own key");
      assert.equal(d.refreshesOk, 0);
      assert.equal(d.keyMismatch, 1, "the cookie with the thief's key is counted as a key mismatch");

      const mid = await counters(server);
      const used = await thief.call('useStolenToken', token);
      assert.equal(used.failed, 1, 'the copied access token fails at the API');
      assert.equal(used.statuses[0], 401);
      d = delta(await counters(server), mid);
      assert.equal(d.api401, 1, 'the API refused it once (the manager retries a call only after a successful refresh)');
      assert.equal(d.keyMismatch, 2, "counted twice: the token sent as Bearer, then the manager's refresh with its own key");
      assert.equal(d.refreshesOk, 0, "no refresh succeeded in the thief's browser");
      assert.ok((await thief.wire()).some((r) => r.path === '/api/me' && r.authorization === `Bearer ${token}`),
        'the stolen token went out as a bearer token (the thief cannot prove the key)');
    } finally {
      await other.close();
    }
    const after = await counters(server);
    assert.equal(await tab.call('revokeAccess'), 200);
    assert.deepEqual(await tab.call('callApi', 1), { statuses: [200], failed: 0 }, "the victim's session survives the theft");
    assert.equal(delta(await counters(server), after).refreshesOk, 1, "through one refresh with the victim's key");
    assert.deepEqual(tab.errors(), []);
  },

  'a replayed proof is refused: the page\'s proof to /api/me resent with the same token from node': async (ctx, { long: server }) => {
    const tab = await ctx.open(server, { dpop: true });
    await signIn(tab);
    assert.deepEqual(await tab.call('callApi', 1), { statuses: [200], failed: 0 });
    const { token, proof } = await tab.call('lastProofTo', '/api/me');
    const before = await counters(server);
    const replayed = await apiFromNode(server, { authorization: `DPoP ${token}`, dpop: proof });
    assert.equal(replayed.status, 401, 'the replayed proof');
    assert.equal(replayed.error, 'invalid_dpop_proof');
    const d = delta(await counters(server), before);
    assert.equal(d.proofsRefused, 1, 'counted as a refused proof');
    assert.equal(d.keyMismatch, 0, 'the key was right: only the jti was spent');
    assert.deepEqual(await tab.call('callApi', 1), { statuses: [200], failed: 0 }, "the page's own fresh proofs still pass");
  },

  'nonce rotation mid-session (--dpop-nonce-rotate 1) costs no refresh and no failed request: the page resends with the new nonce': async (ctx, { rotating: server }) => {
    const tab = await ctx.open(server, { dpop: true });
    await signIn(tab);
    const before = await counters(server);
    // 4 calls 2.5 s apart: the nonce the page holds is two rotations old at each call.
    const { statuses, failed } = await tab.call('callApi', 4, 2_500);
    assert.deepEqual(statuses, [200, 200, 200, 200]);
    assert.equal(failed, 0, 'no failed tm.fetch');
    const d = delta(await counters(server), before);
    assert.equal(d.refreshes, 0, 'no refresh call');
    assert.equal(d.proofsRefused, 0, 'a stale nonce is asked for again, not counted as a refused proof');
    const api = (await tab.call('wireInPage')).filter((r) => r.path === '/api/me');
    const asked = api.filter((r) => r.status === 401 && /error="use_dpop_nonce"/.test(r.challenge ?? ''));
    assert.ok(asked.length >= 1, `the server asked for a new nonce mid-session (${asked.length} times)`);
    assert.equal(api.length, 4 + asked.length, 'each challenge was answered by exactly one resend');
    assert.ok(new Set(api.map((r) => r.nonce)).size >= 3, 'the server rotated its nonce during the calls');
    assert.deepEqual((await tab.call('state')).events.filter((e) => e !== 'tokenchange'), [], 'no refreshfailed, sessionexpired or logout');
  },

  'login\'s first proof has no nonce: the server asks for one and the page resends once': async (ctx, { long: server }) => {
    const tab = await ctx.open(server, { dpop: true });
    await signIn(tab);
    const logins = (await tab.call('wireInPage')).filter((r) => r.path === '/auth/login');
    assert.deepEqual(logins.map((r) => r.status), [400, 200], 'one use_dpop_nonce answer, one resend');
    assert.equal(jwtPayload(logins[0].dpop).nonce, undefined);
    assert.equal(typeof jwtPayload(logins[1].dpop).nonce, 'string', 'the resend carries the nonce');
    assert.notEqual(jwtPayload(logins[0].dpop).jti, jwtPayload(logins[1].dpop).jti, 'the resend carries a fresh proof');
  },

  '5 tabs share one key (equal cnf.jkt) and make one refresh per lifetime': async (ctx, { short: server }) => {
    const tabs = [];
    for (let i = 0; i < 5; i += 1) tabs.push(await ctx.open(server, { dpop: true, refreshMarginSeconds: 1 }));
    await signIn(tabs[0]);
    for (const t of tabs) await t.call('authenticated', 3_000);
    const jkts = [];
    for (const t of tabs) jkts.push(jktOf(await t.call('currentToken')));
    assert.equal(new Set(jkts).size, 1, `one key for the 5 tabs: ${jkts.join(', ')}`);
    for (let lifetime = 1; lifetime <= 2; lifetime += 1) {
      const before = await counters(server);
      const states = [];
      for (const t of tabs) states.push(await t.call('state'));
      const oldest = Math.max(...states.map((s) => s.expiresAt));
      for (const t of tabs) await t.call('renewedAfter', oldest, Math.max(0, oldest - Date.now()) + 3_000);
      const d = delta(await counters(server), before);
      assert.equal(d.refreshes, 1, `lifetime ${lifetime}: one refresh call for the five tabs`);
      assert.equal(d.reuse, 0);
      assert.equal(d.keyMismatch, 0);
    }
    for (const t of tabs) {
      assert.deepEqual(await t.call('callApi', 1), { statuses: [200], failed: 0 });
      assert.equal(jktOf(await t.call('lastToken')), jkts[0], 'still the shared key');
      assert.deepEqual(t.errors(), []);
    }
  },

  'the key survives a reload (same cnf.jkt, the session restored by a refresh, no new login); a logout and a new login bring a new key': async (ctx, { long: server }) => {
    const tab = await ctx.open(server, { dpop: true });
    await signIn(tab);
    const first = jktOf(await tab.call('currentToken'));
    const before = await counters(server);
    await tab.reload({ dpop: true });
    assert.equal(await tab.call('restore'), true, 'the reloaded page restores the session from the cookie');
    const afterReload = jktOf(await tab.call('currentToken'));
    assert.equal(afterReload, first, 'the same key after the reload');
    const d = delta(await counters(server), before);
    assert.equal(d.logins, 0, 'no new login');
    assert.equal(d.refreshesOk, 1, 'the session came back through one refresh, proven with the stored key');
    assert.equal(d.keyMismatch, 0);

    assert.equal(await tab.call('logoutNow'), false);
    await signIn(tab);
    const second = jktOf(await tab.call('currentToken'));
    assert.notEqual(second, first, 'a new key after logout and login');
    assert.deepEqual(tab.errors(), []);
  },

  "without IndexedDB, dpop: true throws DPOP_UNSUPPORTED; dpop: 'if-supported' works with bearer tokens against --dpop allowed": async (ctx, { allowed: server }) => {
    const strict = await ctx.open(server, null);
    assert.deepEqual(await strict.call('setupWithout', 'indexedDB', { dpop: true }),
      { created: false, code: 'DPOP_UNSUPPORTED', name: 'TokenManagerError', present: 'undefined' });

    const lenient = await ctx.open(server, null);
    assert.deepEqual(await lenient.call('setupWithout', 'indexedDB', { dpop: 'if-supported' }),
      { created: true, code: null, present: 'undefined' });
    await signIn(lenient);
    assert.deepEqual(await lenient.call('callApi', 2), { statuses: [200, 200], failed: 0 });
    const token = await lenient.call('lastToken');
    assert.equal(jwtPayload(token).cnf, undefined, 'a bearer token (no cnf)');
    const wire = await lenient.wire();
    const api = wire.filter((r) => r.path.startsWith('/api/'));
    assert.equal(api.length, 2);
    for (const r of api) {
      assert.match(r.authorization ?? '', /^Bearer /, 'Authorization: Bearer');
      assert.equal(r.dpop, null, 'no proof');
    }
    assert.deepEqual(wire.filter((r) => r.dpop), [], 'no request carries a proof');
  },
};

/**
 * Registers one node:test per scenario, each in a fresh context of `driver` (label: 'Chromium', 'Firefox'), with
 * the servers of startDpopServers around them. `check()` runs first in `before` (throw: the browser is missing).
 */
export function registerDpopTests(driver, label, check = () => {}) {
  let servers;
  before(async () => {
    check();
    await driver.start();
    servers = await startDpopServers();
  });
  after(async () => {
    await driver.stop();
    await servers?.stop();
  });
  for (const [name, run] of Object.entries(SCENARIOS)) {
    test(`DPoP (${label}): ${name}`, { timeout: 60_000 }, async () => {
      const ctx = await driver.newContext();
      try {
        await run(ctx, servers, driver);
      } finally {
        await ctx.close();
      }
    });
  }
}
