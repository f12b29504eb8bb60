// The live demo (issue 4): the server started as scripts/demo.sh starts it (--demo, www/ and pkg/, 20 s access
// tokens, the default rate limits), and every button clicked in headless Chromium, checking that it does what
// it says against the server's own counters. The tests run in order on one page, like a visitor would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from './support/browser.mjs';
import { startAuthServer } from './support/server.mjs';
import { collectErrors, until } from './support/app.mjs';

const REFRESHES = 'auth_refresh_requests_total';

let browser;
let server;
let context;
let page;
let errors;
const loaded = [];

before(async () => {
  browser = await launchChromium();
  // Exactly the demo's flags (scripts/demo.sh), on a free port.
  server = await startAuthServer({ rateLimits: true, args: ['--dpop', 'allowed'] });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  errors = collectErrors(page);
  page.on('request', (r) => loaded.push(new URL(r.url()).pathname));
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

const text = async (sel, p = page) => (await p.textContent(sel)).trim();
const sessionState = (p = page) => p.getAttribute('#state', 'data-state');
const logKinds = (p = page) => p.$$eval('#log li', (lis) => lis.map((li) => li.dataset.kind));

/** Clicks a button and waits (bounded) for the result line to change; returns its text. */
async function clickForResult(selector, p = page, timeout = 20_000) {
  const seq = await p.getAttribute('#result', 'data-seq');
  await p.click(selector);
  await p.waitForFunction((s) => document.querySelector('#result').dataset.seq !== s, seq, { timeout });
  await p.waitForFunction(() => !document.body.dataset.busy, null, { timeout });
  return text('#result', p);
}

/** Seconds until the demo's next scheduled refresh, as the page shows it (null when not a number). */
async function secondsToNextRefresh(p = page) {
  const m = /^([\d.]+) s$/.exec(await text('#refresh-countdown', p));
  return m ? Number(m[1]) : null;
}

/** Bounded wait until the next scheduled refresh is far enough away that it cannot mix into a measurement. */
async function awayFromScheduledRefresh(p = page, seconds = 6) {
  await until(async () => ((await secondsToNextRefresh(p)) ?? 0) > seconds,
    { timeout: 25_000, interval: 200, what: `the next scheduled refresh to be more than ${seconds} s away` });
}

/** Bounded wait until the page's counter `id` shows the server's value of `key`. */
async function counterShows(id, key) {
  await until(async () => Number(await text(`#${id}`)) === (await server.stats())[key],
    { timeout: 5_000, what: `#${id} to show the server's ${key}` });
}

test('demo: the page loads the built package from /pkg/ and offers the prefilled sign-in form', { timeout: 30_000 }, async () => {
  await page.goto(`${server.url}/`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
  assert.equal(await sessionState(), 'out');
  assert.equal(await page.isVisible('#login-form'), true);
  assert.equal(await page.inputValue('#username'), 'demo');
  assert.equal(await page.inputValue('#password'), 'demo');
  for (const id of ['btn-call', 'btn-burst', 'btn-revoke', 'btn-steal', 'btn-fail', 'btn-logout']) {
    assert.equal(await page.isDisabled(`#${id}`), true, `${id} waits for a session`);
  }
  assert.equal(await page.isDisabled('#btn-tab'), false);
  assert.ok(loaded.includes('/pkg/index.js'), 'the page imports the package entry');
  assert.ok(loaded.includes('/pkg/wasm_token_manager_bg.wasm'), 'the package instantiated its wasm');
  assert.deepEqual(errors, []);
});

test('demo: "Sign in" logs in as demo and shows the session, both countdowns and the event', { timeout: 30_000 }, async () => {
  const before = await server.stats();
  await page.click('#btn-login');
  await page.waitForSelector('#state[data-state="in"]', { timeout: 10_000 });
  assert.equal(await page.isVisible('#login-form'), false);
  await page.waitForFunction(() => document.querySelector('#who-sub').textContent === 'demo', null, { timeout: 5_000 });
  assert.match(await text('#who-sid'), /\S{6,}/, 'the session id from /api/me');
  assert.match(await text('#exp-countdown'), /^\d+\.\d s$/);
  const next = await secondsToNextRefresh();
  const exp = Number((await text('#exp-countdown')).split(' ')[0]);
  assert.ok(next !== null && next < exp, `the next refresh (${next} s) comes before expiry (${exp} s)`);
  assert.ok((await logKinds()).includes('tokenchange'));
  assert.match(await text('#log li[data-kind="tokenchange"] .msg'), /from login/);
  assert.equal((await server.stats()).logins - before.logins, 1);
  assert.deepEqual(errors, []);
});

test('demo: "Call the API" makes one authenticated call and the counter follows the server', { timeout: 30_000 }, async () => {
  const before = await server.stats();
  assert.match(await clickForResult('#btn-call'), /^GET \/api\/me → 200 \(sub demo\)$/);
  const after = await server.stats();
  assert.ok(after.apiOk - before.apiOk >= 1);
  assert.equal(after.api401 - before.api401, 0);
  await counterShows('stat-api', 'apiCalls');
  await counterShows('stat-401', 'api401');
  await counterShows('stat-refresh', 'refreshCalls');
});

test('demo: "Fire 50 concurrent calls" (F1): all succeed and the counter shows one refresh', { timeout: 60_000 }, async () => {
  await awayFromScheduledRefresh();
  const refreshBefore = await server.metric(REFRESHES);
  const statsBefore = await server.stats();
  const result = await clickForResult('#btn-burst');
  const m = /^50\/50 calls succeeded · the server answered (\d+) × 401 and saw 1 refresh call\(s\)$/.exec(result);
  assert.ok(m, `result line: ${result}`);
  assert.ok(Number(m[1]) >= 1, 'the calls met the revoked token');
  assert.equal((await server.metric(REFRESHES)) - refreshBefore, 1, 'one refresh call reached the server');
  assert.equal((await server.stats()).accessRevocations - statsBefore.accessRevocations, 1);
  await counterShows('stat-refresh', 'refreshCalls');
  assert.equal(Number(await text('#stat-refresh')) - statsBefore.refreshCalls, 1, 'the page counter moved by one');
  assert.equal(await sessionState(), 'in');
});

test('demo: "Revoke the access token", then the next call recovers transparently (C35)', { timeout: 60_000 }, async () => {
  await awayFromScheduledRefresh();
  const before = await server.stats();
  const tokenchanges = (await logKinds()).filter((k) => k === 'tokenchange').length;
  assert.match(await clickForResult('#btn-revoke'), /rejects this access token/);
  assert.equal((await server.stats()).accessRevocations - before.accessRevocations, 1, 'the server revoked it');
  assert.match(await clickForResult('#btn-call'), /^GET \/api\/me → 200 \(sub demo\)$/, 'the app saw a plain success');
  const after = await server.stats();
  assert.equal(after.api401 - before.api401, 1, 'the revoked token met one 401');
  assert.equal(after.refreshCalls - before.refreshCalls, 1, 'one refresh repaired it');
  assert.equal((await logKinds()).filter((k) => k === 'tokenchange').length, tokenchanges + 1);
  assert.equal(await sessionState(), 'in');
});

test('demo: "Steal the token" (issue 14): the copied token and the refresh cookie fail without the key, the manager\'s own call succeeds', { timeout: 60_000 }, async () => {
  await awayFromScheduledRefresh();
  const MISMATCH = 'auth_dpop_key_mismatch_total';
  const before = { mismatch: await server.metric(MISMATCH), refreshOk: await server.metric(REFRESHES, { outcome: 'ok' }), stats: await server.stats() };
  const sent = [];
  const onRequest = (r) => { if (new URL(r.url()).pathname === '/api/me') sent.push(r.headers().authorization ?? null); };
  page.on('request', onRequest);
  const result = await clickForResult('#btn-steal');
  page.off('request', onRequest);
  assert.equal(result, "DPoP token stolen · 4 of 4 stolen uses refused · the manager's own call → 200");
  const rows = await page.$$eval('#steal li', (lis) => lis.map((li) => ({ id: li.dataset.case, outcome: li.dataset.outcome, text: li.textContent })));
  assert.deepEqual(rows.map((r) => `${r.id}: ${r.outcome}`), [
    'bearer: refused', 'token-other-key: refused', 'cookie-no-key: refused', 'cookie-other-key: refused', 'own: accepted',
  ]);
  assert.match(rows[0].text, /→ 401 invalid_token$/, 'the stolen token as Bearer');
  assert.match(rows[1].text, /→ 401 invalid_token$/, "the stolen token with another key's valid proof");
  assert.match(rows[2].text, /→ 401 invalid_grant$/, 'the refresh cookie without a proof');
  assert.match(rows[3].text, /→ 401 invalid_grant$/, "the refresh cookie with another key's proof");
  assert.match(rows[4].text, /→ 200$/);
  assert.equal((await server.metric(MISMATCH)) - before.mismatch, 4, 'the server counted the four stolen uses as key mismatches');
  assert.equal((await server.metric(REFRESHES, { outcome: 'ok' })) - before.refreshOk, 0, 'no refresh succeeded');
  assert.equal((await server.stats()).api401 - before.stats.api401, 2, 'two 401s at the API: the stolen token twice');
  assert.deepEqual(sent.map((a) => (a ?? 'none').split(' ')[0]), ['DPoP', 'Bearer', 'DPoP', 'DPoP'],
    "the manager's calls carry DPoP, the thief's copies Bearer and DPoP");
  // The session outlives the theft: a revoked access token is renewed with the page's key and cookie.
  const mid = await server.metric(REFRESHES, { outcome: 'ok' });
  assert.match(await clickForResult('#btn-revoke'), /rejects this access token/);
  assert.match(await clickForResult('#btn-call'), /^GET \/api\/me → 200 \(sub demo\)$/);
  assert.equal((await server.metric(REFRESHES, { outcome: 'ok' })) - mid, 1, 'one refresh with the key succeeded');
  assert.equal(await sessionState(), 'in');
  assert.deepEqual(errors, []);
});

test('demo: "Make refresh fail for 30 s" shows refreshfailed with its backoff, keeps the session, and recovers (C24)', { timeout: 90_000 }, async () => {
  // The button asks for 30 s; the test checks that and shortens the outage to 4 s on the way to the server.
  const asked = [];
  await page.route('**/demo/fail-refresh', async (route) => {
    asked.push(JSON.parse(route.request().postData() ?? '{}'));
    await route.continue({ postData: JSON.stringify({ seconds: 4 }) });
  });
  try {
    const before = await server.stats();
    const result = await clickForResult('#btn-fail');
    assert.deepEqual(asked, [{ seconds: 30 }], 'the button asks the server for 30 s');
    assert.match(result, /refreshes fail for 30 s/);
    assert.ok((await logKinds()).includes('refreshfailed'));
    assert.match(await text('#log li[data-kind="refreshfailed"] .msg'), /refresh failed with 503, retryable, next attempt not before/);
    assert.equal(await sessionState(), 'failing');
    assert.equal(await text('#refresh-label'), 'Refresh backing off, retry in');
    assert.match(await text('#refresh-countdown'), /^(\d+\.\d s|now)$/);
    assert.ok((await server.stats()).refreshUnavailable - before.refreshUnavailable >= 1, 'the server answered 503');
    // The still-valid token is kept: the API keeps working during the outage.
    assert.match(await clickForResult('#btn-call'), /→ 200/);

    await until(async () => (await server.stats()).refreshFailingForSeconds === 0, { timeout: 10_000, what: 'the outage to end' });
    await clickForResult('#btn-call');
    // Recovery: the manager refreshes again (after its backoff, or at the scheduled time) and the pill turns green.
    await page.waitForSelector('#state[data-state="in"]', { timeout: 30_000 });
    assert.match(await clickForResult('#btn-call'), /^GET \/api\/me → 200/);
    assert.equal((await server.stats()).logouts - before.logouts, 0, 'the outage logged nobody out');
  } finally {
    await page.unroute('**/demo/fail-refresh');
  }
});

test('demo: "Log out" ends the session on the server and in the page', { timeout: 30_000 }, async () => {
  const before = await server.stats();
  await clickForResult('#btn-logout');
  await page.waitForSelector('#state[data-state="out"]', { timeout: 5_000 });
  assert.equal(await page.isVisible('#login-form'), true);
  assert.equal((await logKinds())[0], 'logout');
  assert.equal((await server.stats()).logouts - before.logouts, 1);
  assert.equal(await page.isDisabled('#btn-call'), true);
  assert.equal(await text('#who-sub'), '–');
});

test('demo: "Open another tab" opens a second page that shares the session', { timeout: 60_000 }, async () => {
  await page.click('#btn-login');
  await page.waitForSelector('#state[data-state="in"]', { timeout: 10_000 });
  await page.waitForFunction(() => document.querySelector('#who-sub').textContent === 'demo', null, { timeout: 5_000 });
  const sid = await text('#who-sid');
  const [tab] = await Promise.all([context.waitForEvent('page', { timeout: 10_000 }), page.click('#btn-tab')]);
  const tabErrors = collectErrors(tab);
  await tab.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
  await tab.waitForSelector('#state[data-state="in"]', { timeout: 10_000 });
  await tab.waitForFunction(() => document.querySelector('#who-sub').textContent === 'demo', null, { timeout: 5_000 });
  assert.equal(await text('#who-sid', tab), sid, 'the same server session');
  assert.match(await clickForResult('#btn-call', tab), /^GET \/api\/me → 200 \(sub demo\)$/);
  assert.match(await clickForResult('#btn-call'), /^GET \/api\/me → 200 \(sub demo\)$/, 'the first tab still works');
  assert.equal((await server.stats()).reuseDetected, 0);
  assert.deepEqual(tabErrors, []);
  assert.deepEqual(errors, []);
});

test('demo: with two tabs open, one refresh call renews both (issue 5)', { timeout: 60_000 }, async () => {
  const tabs = context.pages();
  assert.equal(tabs.length, 2);
  const before = await server.metric(REFRESHES);
  const olds = await Promise.all(tabs.map((t) => t.evaluate(() => window.tm.expiresAt)));
  const timeout = Math.max(...olds) - Date.now() + 3_000;
  await Promise.all(tabs.map((t, i) => t.waitForFunction((old) => window.tm.isAuthenticated && window.tm.expiresAt > old,
    olds[i], { timeout })));
  assert.equal((await server.metric(REFRESHES)) - before, 1, 'one refresh call for both tabs');
  for (const t of tabs) assert.equal(await sessionState(t), 'in');
  assert.equal((await server.stats()).reuseDetected, 0);
});

test('demo: a logout in the second tab reaches the first within a second (issue 5)', { timeout: 30_000 }, async () => {
  const tabs = context.pages();
  assert.equal(tabs.length, 2);
  const [first, second] = tabs;
  assert.equal(await sessionState(first), 'in');
  await clickForResult('#btn-logout', second);
  await first.waitForSelector('#state[data-state="out"]', { timeout: 1_000 });
  assert.equal((await logKinds(first))[0], 'logout');
});

// ---- the legacy migration (issue 10): every button of the "Migrating off never-expiring tokens" card ----------

/** The server's migration state and report, as /demo/stats gives it. */
const legacy = async () => (await server.stats()).legacy;

/** Bounded wait until the page's legacy counter `id` shows `value`. */
async function legacyShows(id, value) {
  await until(async () => (await text(`#${id}`)) === String(value), { timeout: 5_000, what: `#${id} to show ${value}` });
}

test('demo: the phase buttons switch the server at runtime and the pill follows', { timeout: 30_000 }, async () => {
  for (const phase of [1, 0]) {
    assert.equal(await clickForResult(`#btn-phase-${phase}`), `the server is in phase ${phase}`);
    assert.equal((await legacy()).phase, phase);
    await until(async () => (await text('#legacy-phase-pill')) === `phase ${phase}`, { timeout: 5_000, what: 'the pill' });
    assert.equal(await page.getAttribute(`#btn-phase-${phase}`, 'aria-pressed'), 'true');
  }
});

test('demo: "Mint a legacy token" gives a legacy client a never-expiring token; in phase 0 its calls work and are counted', { timeout: 30_000 }, async () => {
  assert.equal(await page.isDisabled('#btn-legacy-call'), true, 'nothing to call with yet');
  assert.match(await clickForResult('#btn-legacy-mint'), /^minted a legacy token \(HS256, no exp\) for demo/);
  assert.equal(await text('#legacy-client-state'), 'held');
  const before = (await legacy()).report;
  assert.equal(await clickForResult('#btn-legacy-call'), 'legacy client: GET /api/me → 200 with the legacy token · legacy client held');
  const after = (await legacy()).report;
  assert.equal(after.usesByPhase[0] - before.usesByPhase[0], 1, 'one legacy use counted in phase 0');
  assert.ok(after.legacyShare > 0);
  await legacyShows('legacy-uses', after.usesByPhase.reduce((x, y) => x + y, 0));
  assert.match(await text('#legacy-share'), /^\d+\.\d %$/);
  assert.ok((await logKinds()).includes('legacy'));
});

test('demo: phase 1 answers with Deprecation and the legacy client exchanges its token once', { timeout: 30_000 }, async () => {
  await clickForResult('#btn-phase-1');
  const before = (await legacy()).report;
  assert.equal(await clickForResult('#btn-legacy-call'),
    'legacy client: GET /api/me → 200 with the legacy token, Deprecation header · legacy client upgraded');
  assert.equal(await text('#legacy-client-state'), 'upgraded');
  assert.equal((await legacy()).report.upgrades - before.upgrades, 1);
  assert.equal(await clickForResult('#btn-legacy-call'), 'legacy client: GET /api/me → 200 with a new token · legacy client upgraded');
  await legacyShows('legacy-upgrades', (await legacy()).report.upgrades);
  assert.equal((await legacy()).report.securityEvents, 0);
});

test('demo: in phase 2 a fresh legacy client is refused, exchanges, and its call still succeeds', { timeout: 30_000 }, async () => {
  await clickForResult('#btn-phase-2');
  await clickForResult('#btn-legacy-mint');
  const before = (await legacy()).report;
  assert.equal(await clickForResult('#btn-legacy-call'), 'legacy client: GET /api/me → 200 · legacy client upgraded');
  const after = (await legacy()).report;
  assert.equal(after.refusalsByPhase[2] - before.refusalsByPhase[2], 1, 'the legacy request was refused first');
  assert.equal(after.upgrades - before.upgrades, 1);
});

test('demo: in phase 3 a legacy client is refused, fails its exchange once and stops', { timeout: 30_000 }, async () => {
  await clickForResult('#btn-phase-3');
  await clickForResult('#btn-legacy-mint');
  assert.equal(await clickForResult('#btn-legacy-call'), 'legacy client: GET /api/me → 401 · legacy client failed');
  assert.equal((await logKinds())[0], 'legacyupgradefailed');
  assert.match(await text('#log li[data-kind="legacyupgradefailed"] .msg'), /retired, 401\): sign in again/);
  const before = (await server.metric('auth_legacy_upgrades_total', { outcome: 'retired' }));
  assert.equal(await clickForResult('#btn-legacy-call'), 'legacy client: GET /api/me → 401 without a token · legacy client failed');
  assert.equal(await server.metric('auth_legacy_upgrades_total', { outcome: 'retired' }), before, 'no second exchange');
});

test('demo: phase 4 raises an alert for a legacy token still arriving; the kill switch goes back to phase 3', { timeout: 30_000 }, async () => {
  await clickForResult('#btn-phase-4');
  await clickForResult('#btn-legacy-mint');
  const before = (await legacy()).report.alerts.legacy_token;
  assert.equal(await clickForResult('#btn-legacy-call'), 'legacy client: GET /api/me → 401 · legacy client failed');
  const alerts = (await legacy()).report.alerts.legacy_token;
  assert.ok(alerts > before, 'an alert for each legacy token arriving');
  await until(async () => Number(await text('#legacy-alerts')) >= alerts, { timeout: 5_000, what: 'the alert counter' });
  assert.equal(await clickForResult('#btn-legacy-kill'), 'kill switch: the server is back in phase 3');
  assert.equal((await legacy()).phase, 3);
  assert.deepEqual(errors, []);
});
