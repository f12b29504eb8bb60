// Several tabs of one app (issue 5): pages of one browser context share the cookie jar, BroadcastChannel and Web
// Locks, like the tabs of one browser profile. The real package against the real server; the counts that matter
// (refresh calls, reuse detections, family revocations, logouts) are read from the server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from './support/browser.mjs';
import { startAuthServer } from './support/server.mjs';
import { HARNESS_DIR, openHarness, recordRequests, sleep, until } from './support/app.mjs';

const REFRESHES = 'auth_refresh_requests_total';
const REUSE = 'auth_rt_reuse_detected_total';
const FAMILY_REVOCATIONS = 'auth_family_revocations_total';
const LOGOUTS = 'auth_logouts_total';

let browser;
let short; // 4 s access tokens: expiry comes quickly
let long;  // 120 s access tokens: no scheduled refresh during a test

before(async () => {
  browser = await launchChromium();
  [short, long] = await Promise.all([
    startAuthServer({ www: HARNESS_DIR, accessTtl: 4 }),
    startAuthServer({ www: HARNESS_DIR, accessTtl: 120 }),
  ]);
});
after(async () => {
  await browser?.close();
  await Promise.all([short?.stop(), long?.stop()]);
});

/** Opens `n` tabs of the harness in one new context, each with a manager; returns { context, tabs, errors }. */
async function openTabs(n, server, options = {}, { initScript } = {}) {
  const context = await browser.newContext();
  if (initScript) await context.addInitScript(initScript);
  const tabs = [];
  const errors = [];
  for (let i = 0; i < n; i += 1) {
    const { page, errors: e } = await openHarness(context, server, options);
    tabs.push(page);
    errors.push(e);
  }
  return { context, tabs, errors: () => errors.flat() };
}

/** Signs in in the first tab and waits (bounded) until every tab holds the session. */
async function signInEverywhere(tabs, timeout = 2_000) {
  assert.equal(await tabs[0].evaluate(() => window.loginDemo()), 200);
  await Promise.all(tabs.map((t, i) => t.waitForFunction(() => window.tm.isAuthenticated, null, { timeout })
    .catch(() => { throw new Error(`tab ${i + 1} did not receive the session within ${timeout} ms of the login`); })));
}

const tabState = (t) => t.evaluate(() => ({
  isAuthenticated: window.tm.isAuthenticated,
  expiresAt: window.tm.expiresAt,
  // A tokenchange that clears the token (expiresAt null) is told apart from one that brings a token.
  events: window.events.map((e) => (e.type === 'tokenchange' && e.detail?.expiresAt == null ? 'tokenclear' : e.type)),
}));

/** Every tab calls /api/me through its manager; returns the statuses. */
const callEverywhere = (tabs) => Promise.all(tabs.map((t) => t.evaluate(() => window.tm.fetch('/api/me').then((r) => r.status))));

async function counters(server) {
  return {
    refreshes: await server.metric(REFRESHES),
    reuse: await server.metric(REUSE),
    familyRevocations: await server.metric(FAMILY_REVOCATIONS),
    logouts: await server.metric(LOGOUTS),
    api401: (await server.stats()).api401,
  };
}

function delta(after, before) {
  return Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - before[k]]));
}

/**
 * Waits through the next expiry of the tabs' shared token: every tab must hold a newer token no later than 2 s
 * after the old one's expiry. Returns the counters' deltas over that time.
 */
async function throughOneExpiry(server, tabs) {
  const before = await counters(server);
  const states = await Promise.all(tabs.map(tabState));
  const oldest = Math.max(...states.map((s) => s.expiresAt));
  assert.ok(Number.isFinite(oldest), 'every tab knows its expiry');
  const timeout = Math.max(0, oldest - Date.now()) + 2_000;
  await Promise.all(tabs.map((t, i) => t.waitForFunction((old) => window.tm.isAuthenticated && window.tm.expiresAt > old,
    states[i].expiresAt, { timeout })
    .catch(() => { throw new Error(`tab ${i + 1} held no new token within 2 s of expiry`); })));
  return delta(await counters(server), before);
}

test('F3: 5 tabs at the same expiry: one refresh call, no reuse detection, no logout, every tab renewed within 2 s', { timeout: 60_000 }, async () => {
  const { context, tabs, errors } = await openTabs(5, short, { refreshMarginSeconds: 1 });
  try {
    await signInEverywhere(tabs);
    const d = await throughOneExpiry(short, tabs);
    assert.equal(d.refreshes, 1, 'exactly one refresh call reached the server for all five tabs');
    assert.equal(d.reuse, 0);
    assert.equal(d.familyRevocations, 0);
    assert.equal(d.logouts, 0);
    const before = await counters(short);
    assert.deepEqual(await callEverywhere(tabs), [200, 200, 200, 200, 200], 'every tab holds a valid token');
    assert.equal(delta(await counters(short), before).api401, 0);
    for (const s of await Promise.all(tabs.map(tabState))) {
      assert.deepEqual(s.events.filter((e) => e !== 'tokenchange'), [], 'no logout, sessionexpired or refreshfailed in any tab');
    }
    assert.deepEqual(errors(), []);
  } finally {
    await context.close();
  }
});

test('F4: the same 5 tabs without navigator.locks: no logout, no family revoked, every tab renewed within 2 s', { timeout: 60_000 }, async () => {
  const noLocks = () => {
    delete Navigator.prototype.locks;
    delete window.navigator.locks;
  };
  const { context, tabs, errors } = await openTabs(5, short, { refreshMarginSeconds: 1 }, { initScript: noLocks });
  try {
    assert.deepEqual(await Promise.all(tabs.map((t) => t.evaluate(() => 'locks' in navigator))), [false, false, false, false, false]);
    await signInEverywhere(tabs);
    const d = await throughOneExpiry(short, tabs);
    assert.ok(d.refreshes >= 1 && d.refreshes <= 5, `refresh calls: ${d.refreshes}`);
    assert.equal(d.familyRevocations, 0, 'no family revoked');
    assert.equal(d.logouts, 0);
    const before = await counters(short);
    assert.deepEqual(await callEverywhere(tabs), [200, 200, 200, 200, 200]);
    assert.equal(delta(await counters(short), before).api401, 0);
    for (const s of await Promise.all(tabs.map(tabState))) {
      assert.deepEqual(s.events.filter((e) => e === 'logout' || e === 'sessionexpired'), [], 'nobody was logged out');
      assert.equal(s.isAuthenticated, true);
    }
    assert.deepEqual(errors().filter((e) => !/debug/i.test(e)), []);
  } finally {
    await context.close();
  }
});

test('F12: logout in tab 1 while tab 3 is mid-refresh: all tabs logged out within 1 s, none logged back in', { timeout: 60_000 }, async () => {
  const { context, tabs, errors } = await openTabs(5, long);
  try {
    await signInEverywhere(tabs);
    // Tab 3's refresh reaches the server (which rotates and answers), but the answer is held back until after the
    // logout, so it arrives in a tab that must discard it.
    let reached;
    const atServer = new Promise((resolve) => { reached = resolve; });
    let release;
    const gate = new Promise((resolve) => { release = resolve; });
    const heldBodies = [];
    await tabs[2].route('**/auth/refresh', async (route) => {
      const response = await route.fetch();
      heldBodies.push(await response.text());
      reached();
      await gate;
      await route.fulfill({ response });
    });
    const marks = await Promise.all(tabs.map((t) => t.evaluate(() => window.events.length)));
    await tabs[2].evaluate(() => { window.pendingRefresh = window.tm.refresh().then((ok) => ok, (e) => `rejected: ${e.name}`); });
    await Promise.race([atServer, sleep(10_000).then(() => { throw new Error('tab 3 sent no refresh'); })]);

    await tabs[0].evaluate(() => window.tm.logout());
    await Promise.all(tabs.map((t, i) => t.waitForFunction(() => !window.tm.isAuthenticated, null, { timeout: 1_000 })
      .catch(() => { throw new Error(`tab ${i + 1} still logged in 1 s after the logout`); })));

    release();
    const settled = await tabs[2].evaluate(() => window.pendingRefresh);
    assert.notEqual(settled, true, 'the stale refresh did not report a session');
    await sleep(1_500); // let any late result land before looking
    for (const [i, t] of tabs.entries()) {
      const s = await tabState(t);
      assert.equal(s.isAuthenticated, false, `tab ${i + 1} stays logged out`);
      assert.deepEqual(s.events.slice(marks[i]).filter((e) => e === 'tokenchange'), [], `tab ${i + 1} was not logged back in`);
      assert.ok(s.events.slice(marks[i]).includes('logout'), `tab ${i + 1} fired logout`);
    }
    // The token minted by the discarded refresh is dead on the server too (sid-level revocation).
    const minted = JSON.parse(heldBodies[0] ?? '{}').accessToken;
    assert.ok(minted, 'the held refresh had succeeded at the server: tab 3 received a fresh token to discard');
    await until(async () => (await fetch(`${long.url}/api/me`, { headers: { authorization: `Bearer ${minted}` } })).status === 401,
      { timeout: 1_000, what: 'the server to reject the token minted during logout' });
    // And a tab opened now finds no session in the cookie.
    const { page: fresh } = await openHarness(context, long);
    assert.equal(await fresh.evaluate(() => window.tm.refresh()), false);
    assert.deepEqual(errors(), []);
  } finally {
    await context.close();
  }
});

test('the tab holding the refresh election is closed mid-refresh: the other tabs recover within the bound', { timeout: 60_000 }, async () => {
  const REFRESH_TIMEOUT = 3; // seconds; the manager's lock wait defaults to this + 1
  const { context, tabs, errors } = await openTabs(3, long, { refreshTimeoutSeconds: REFRESH_TIMEOUT });
  try {
    await signInEverywhere(tabs);
    const before = await counters(long);
    let reached;
    const held = new Promise((resolve) => { reached = resolve; });
    await tabs[0].route('**/auth/refresh', () => { reached(); /* never answered: the tab closes first */ });
    await tabs[0].evaluate(() => { window.tm.refresh(); });
    await Promise.race([held, sleep(10_000).then(() => { throw new Error('tab 1 sent no refresh'); })]);

    const others = tabs.slice(1);
    await Promise.all(others.map((t) => t.evaluate(() => {
      window.result = undefined;
      window.tm.refresh().then((ok) => { window.result = ok; }, (e) => { window.result = `rejected: ${e.name}`; });
    })));
    await tabs[0].close();
    const bound = (REFRESH_TIMEOUT + 1 + REFRESH_TIMEOUT + 2) * 1000;
    await Promise.all(others.map((t, i) => t.waitForFunction(() => window.result !== undefined, null, { timeout: bound })
      .catch(() => { throw new Error(`tab ${i + 2} hung: no refresh result within ${bound} ms`); })));
    assert.deepEqual(await Promise.all(others.map((t) => t.evaluate(() => window.result))), [true, true]);
    assert.deepEqual(await callEverywhere(others), [200, 200]);
    const d = delta(await counters(long), before);
    assert.ok(d.refreshes >= 1, 'a remaining tab refreshed');
    assert.equal(d.reuse, 0);
    assert.equal(d.familyRevocations, 0);
    assert.equal(d.logouts, 0);
    for (const t of others) {
      const s = await tabState(t);
      assert.equal(s.isAuthenticated, true);
      assert.deepEqual(s.events.filter((e) => e === 'logout' || e === 'sessionexpired'), []);
    }
    assert.deepEqual(errors(), []);
  } finally {
    await context.close();
  }
});

test('F9: a hidden tab makes no refresh call; once visible after expiry, its first API call succeeds with no 401', { timeout: 60_000 }, async () => {
  // The test drives page visibility: document.visibilityState / document.hidden answer what it says, and it
  // dispatches visibilitychange itself.
  const visibility = () => {
    let state = 'visible';
    Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => state });
    Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => state === 'hidden' });
    window.setVisibility = (s) => { state = s; document.dispatchEvent(new Event('visibilitychange')); };
  };
  const { context, tabs: [tab], errors } = await openTabs(1, short, { refreshMarginSeconds: 1 }, { initScript: visibility });
  try {
    await signInEverywhere([tab]);
    const refreshCalls = recordRequests(tab, /^\/auth\/refresh$/);
    const bearers = recordRequests(tab, /^\/api\/me$/);
    assert.equal(await tab.evaluate(() => window.tm.fetch('/api/me').then((r) => r.status)), 200);
    const bearer = bearers.at(-1).authorization;
    await tab.evaluate(() => window.setVisibility('hidden'));
    assert.equal(await tab.evaluate(() => document.visibilityState), 'hidden');
    // Bounded wait until the token has expired on the server, and a little longer.
    await until(async () => (await fetch(`${short.url}/api/me`, { headers: { authorization: bearer } })).status === 401,
      { timeout: 10_000, interval: 250, what: 'the hidden tab\'s token to expire on the server' });
    await sleep(1_000);
    assert.deepEqual(refreshCalls, [], 'the hidden tab made no refresh call');

    const before = await counters(short);
    const first = await tab.evaluate(() => {
      window.setVisibility('visible');
      return window.tm.fetch('/api/me').then((r) => r.status);
    });
    assert.equal(first, 200, 'the first call after waking succeeded');
    const d = delta(await counters(short), before);
    assert.equal(d.api401, 0, 'no request went out with the expired token');
    assert.ok(d.refreshes >= 1, 'the tab renewed on becoming visible');
    assert.deepEqual((await tabState(tab)).events.filter((e) => e !== 'tokenchange'), []);
    assert.deepEqual(errors(), []);
  } finally {
    await context.close();
  }
});
