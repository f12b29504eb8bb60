// The live demo: everything here is what an app would write. The token manager comes from the built npm
// package, imported as a plain ES module; the page never sees the refresh token (it is an httpOnly cookie).
import { TokenManager } from '/pkg/index.js';

/** Renew this long before `exp` (the manager shortens it for short tokens; the demo's tokens live 20 s). */
const REFRESH_MARGIN_SECONDS = 5;
const STATS_POLL_MS = 1000;
const BURST_SIZE = 50;
const LOG_LIMIT = 200;

// ---- the thief (the "Steal the token" tile) -----------------------------------------------------------------
// A script that got into the page before the app (XSS, a malicious extension) can wrap fetch and copy the
// Authorization header the manager sends. The demo plays that thief to show what the copy is worth: it keeps the
// last access token it saw and the server's last DPoP-Nonce. The refresh cookie is httpOnly, so no script reads it:
// the thief can only have the browser send it, without the key. The thief's own requests bypass this wrapper.
const stolen = { token: null, scheme: null, nonce: null };
const platformFetch = globalThis.fetch;
async function thiefFetch(input, init) {
  const res = await platformFetch.call(globalThis, input, init);
  stolen.nonce = res.headers.get('dpop-nonce') ?? stolen.nonce;
  return res;
}
globalThis.fetch = (input, init) => {
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  const m = /^(DPoP|Bearer) (\S+)$/.exec(headers.get('authorization') ?? '');
  if (m) [, stolen.scheme, stolen.token] = m;
  return thiefFetch(input, init);
};

const tm = new TokenManager({
  refreshUrl: '/auth/refresh',
  logoutUrl: '/auth/logout',
  refreshMarginSeconds: REFRESH_MARGIN_SECONDS,
  // DPoP (RFC 9449) where the browser can keep a non-extractable key (WebCrypto, IndexedDB); bearer tokens elsewhere.
  // scripts/demo.sh starts the server with --dpop allowed: tokens are then bound to this browser's key.
  dpop: 'if-supported',
  // The reference server refuses refresh and logout calls without this header (CSRF defence).
  refreshHeaders: { 'X-Requested-With': 'fetch' },
});

const $ = (id) => document.getElementById(id);
const ui = {
  state: $('state'),
  loginForm: $('login-form'),
  loginError: $('login-error'),
  tokenPanel: $('token-panel'),
  sub: $('who-sub'),
  sid: $('who-sid'),
  exp: $('exp-countdown'),
  next: $('refresh-countdown'),
  nextLabel: $('refresh-label'),
  fill: $('lifebar-fill'),
  mark: $('lifebar-mark'),
  result: $('result'),
  log: $('log'),
};

// What the page knows about the session, all derived from the manager's events and its public getters.
const view = {
  started: false,        // the first session check has finished
  receivedAt: null,      // when the current token arrived (ms), for the lifetime bar
  retryAt: null,         // after a retryable refresh failure: when the manager may try again (ms)
  failing: false,
  tokenChanges: 0,
};

// ---- events from the manager -------------------------------------------------------------------------------

tm.events.addEventListener('tokenchange', (e) => {
  const { expiresAt, source } = e.detail ?? {};
  if (!tm.isAuthenticated) {
    log('tokenchange', `access token cleared (${source})`);
    render();
    return;
  }
  view.receivedAt = Date.now();
  view.failing = false;
  view.retryAt = null;
  view.tokenChanges += 1;
  $('stat-tokenchange').textContent = String(view.tokenChanges);
  log('tokenchange', `new access token from ${source}${expiresAt ? `, expires ${clock(expiresAt)}` : ''}`);
  if (source !== 'refresh' || ui.sub.textContent === '–') whoAmI();
  render();
});

tm.events.addEventListener('refreshfailed', (e) => {
  const { status, retryable, retryAt } = e.detail ?? {};
  if (!view.started && !retryable) return; // the first session check on a fresh visit: simply no session yet
  view.failing = true;
  view.retryAt = typeof retryAt === 'number' ? retryAt : null;
  const when = view.retryAt ? `, next attempt not before ${clock(view.retryAt)} (in ${seconds(view.retryAt - Date.now())})` : '';
  log('refreshfailed', `refresh failed with ${status || 'a network error'}, ${retryable ? 'retryable' : 'final'}${when}`);
  render();
  refreshStats();
});

tm.events.addEventListener('sessionexpired', () => {
  if (!view.started) return; // the first session check on a fresh visit: simply no session yet
  log('sessionexpired', 'the server ended the session: sign in again');
  signedOutView();
});

tm.events.addEventListener('logout', (e) => {
  log('logout', `logged out${e.detail?.reason ? ` (${e.detail.reason})` : ''}`);
  signedOutView();
});

function signedOutView() {
  view.receivedAt = null;
  view.failing = false;
  view.retryAt = null;
  ui.sub.textContent = '–';
  ui.sid.textContent = '–';
  render();
  refreshStats();
}

// ---- actions -----------------------------------------------------------------------------------------------

ui.loginForm.addEventListener('submit', (e) => {
  e.preventDefault();
  run('login', async () => {
    ui.loginError.hidden = true;
    const res = await tm.login('/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: $('username').value, password: $('password').value }),
    });
    if (!res.ok) {
      ui.loginError.textContent = res.status === 401 ? 'Wrong username or password.' : `Sign-in failed (${res.status}).`;
      ui.loginError.hidden = false;
      return `sign-in answered ${res.status}`;
    }
    return 'signed in';
  });
});

$('btn-call').addEventListener('click', () => run('call', async () => {
  const res = await tm.fetch('/api/me');
  const body = await res.json().catch(() => null);
  if (res.ok && body) showWho(body);
  return `GET /api/me → ${res.status}${body?.sub ? ` (sub ${body.sub})` : ''}`;
}));

$('btn-burst').addEventListener('click', () => run('burst', async () => {
  const before = await fetchStats();
  const revoked = await tm.fetch('/demo/revoke-access', { method: 'POST' });
  if (!revoked.ok) return `could not revoke the token first (${revoked.status})`;
  const results = await Promise.all(
    Array.from({ length: BURST_SIZE }, () => tm.fetch('/api/me').then((r) => r.status, () => 0)),
  );
  const ok = results.filter((s) => s === 200).length;
  const after = await fetchStats();
  renderStats(after);
  const delta = (k) => (before && after ? after[k] - before[k] : '?');
  return `${ok}/${BURST_SIZE} calls succeeded · the server answered ${delta('api401')} × 401 and saw ${delta('refreshCalls')} refresh call(s)`;
}));

$('btn-revoke').addEventListener('click', () => run('revoke', async () => {
  const res = await tm.fetch('/demo/revoke-access', { method: 'POST' });
  return res.ok
    ? 'the server now rejects this access token; the next call refreshes and retries by itself'
    : `revoke answered ${res.status}`;
}));

$('btn-fail').addEventListener('click', (e) => run('fail', async () => {
  const secs = Number(e.currentTarget.dataset.seconds) || 30;
  const res = await fetch('/demo/fail-refresh', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ seconds: secs }),
  });
  if (!res.ok) return `fail-refresh answered ${res.status}`;
  const ok = await tm.refresh(); // try now, so the failure and the backoff show at once
  return ok
    ? `refresh still succeeded?`
    : `refreshes fail for ${secs} s; the manager keeps the token while it is valid and backs off`;
}));

$('btn-logout').addEventListener('click', () => run('logout', async () => {
  await tm.logout();
  return 'logged out: the session is revoked on the server and the token is gone from memory';
}));

$('btn-steal').addEventListener('click', () => run('steal', async () => {
  const first = await tm.fetch('/api/me'); // the thief copies the token this call carries
  await first.arrayBuffer();
  const { token, scheme } = stolen;
  if (!token) return 'nothing to steal: no request carried an access token';
  const key = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const api = new URL('/api/me', location.href).href;
  const refresh = new URL('/auth/refresh', location.href).href;
  const refreshWith = (headers) => thiefFetch('/auth/refresh', {
    method: 'POST', credentials: 'same-origin', headers: { 'X-Requested-With': 'fetch', ...headers },
  });
  const rows = [
    ['bearer', 'stolen token as Bearer', await thiefFetch('/api/me', { headers: { Authorization: `Bearer ${token}` } })],
    ['token-other-key', "stolen token + another key's proof", await thiefFetch('/api/me', {
      headers: { Authorization: `DPoP ${token}`, DPoP: await proofOf(key, 'GET', api, stolen.nonce, token) },
    })],
    ['cookie-no-key', 'refresh cookie without the key', await refreshWith({})],
    ['cookie-other-key', "refresh cookie + another key's proof", await refreshWith({ DPoP: await proofOf(key, 'POST', refresh, stolen.nonce) })],
  ];
  const own = await tm.fetch('/api/me');
  rows.push(['own', "the manager's own GET /api/me", own]);
  const shown = await Promise.all(rows.map(async ([id, label, res]) => ({ id, label, status: res.status, error: await errorOf(res) })));
  showSteal(shown);
  const refused = shown.filter((r) => r.id !== 'own' && !(r.status >= 200 && r.status < 300)).length;
  log('info', `stole a ${scheme} token: ${refused} of 4 stolen uses refused, the manager's own call → ${own.status}`);
  return `${scheme} token stolen · ${refused} of 4 stolen uses refused · the manager's own call → ${own.status}`;
}));

/** The `error` of a refusal: the WWW-Authenticate challenge's error="…", or the JSON body's `error`; null on success. */
async function errorOf(res) {
  if (res.ok) return null;
  const challenge = /error="([^"]+)"/.exec(res.headers.get('www-authenticate') ?? '');
  if (challenge) return challenge[1];
  const body = await res.json().catch(() => null);
  return typeof body?.error === 'string' ? body.error : null;
}

/** base64url (RFC 4648 §5, no padding) of bytes. */
const b64u = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const b64uJson = (value) => b64u(new TextEncoder().encode(JSON.stringify(value)));

/**
 * A DPoP proof (RFC 9449 §4.2) signed with the thief's own ES256 key: a valid proof, only of another key than the
 * one the stolen token and cookie are bound to. `ath` (base64url SHA-256 of the token) when `token` is given.
 */
async function proofOf(key, htm, htu, nonce, token) {
  const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', key.publicKey);
  const claims = { jti: crypto.randomUUID(), htm, htu, iat: Math.floor(Date.now() / 1000) };
  if (nonce) claims.nonce = nonce;
  if (token) claims.ath = b64u(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token)));
  const input = `${b64uJson({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } })}.${b64uJson(claims)}`;
  const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.privateKey, new TextEncoder().encode(input));
  return `${input}.${b64u(signature)}`;
}

/** Lists the stolen uses and the manager's own call under the result line: label → status error. */
function showSteal(rows) {
  const list = $('steal');
  list.replaceChildren(...rows.map(({ id, label, status, error }) => {
    const li = document.createElement('li');
    li.dataset.case = id;
    li.dataset.outcome = status >= 200 && status < 300 ? 'accepted' : 'refused';
    li.textContent = `${label} → ${status}${error ? ` ${error}` : ''}`;
    return li;
  }));
  list.hidden = false;
}

$('btn-tab').addEventListener('click', () => {
  window.open(location.href, '_blank');
  setResult('opened another tab: it restores the session from the cookie');
});

// ---- the legacy migration ----------------------------------------------------------------------------------

// A second manager, as an app that still holds a never-expiring token would create it. It has its own tabs
// channel (`crossTab: false`) so that the page's main session does not adopt or replace its token.
let legacyTm = null;

function legacyClient(token) {
  legacyTm?.dispose();
  legacyTm = new TokenManager({
    refreshUrl: '/auth/refresh',
    logoutUrl: '/auth/logout',
    refreshHeaders: { 'X-Requested-With': 'fetch' },
    crossTab: false,
    legacyUpgradeUrl: '/auth/legacy/upgrade',
    legacyToken: token,
  });
  legacyTm.events.addEventListener('tokenchange', (e) => {
    if (e.detail?.source === 'legacy') log('legacy', 'legacy client: token exchanged once for a new session; the legacy token is dropped');
    renderLegacy();
  });
  legacyTm.events.addEventListener('legacyupgradefailed', (e) => {
    const { status, reason, retryable } = e.detail ?? {};
    log('legacyupgradefailed', `legacy client: exchange failed (${reason}, ${status ?? 'network'})${retryable ? ', token kept' : ': sign in again'}`);
    renderLegacy();
  });
  renderLegacy();
}

$('btn-legacy-mint').addEventListener('click', () => run('legacy-mint', async () => {
  const res = await fetch('/demo/legacy-token', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: 'demo' }),
  });
  if (!res.ok) return `legacy-token answered ${res.status}`;
  const { token } = await res.json();
  legacyClient(token);
  log('legacy', 'minted a never-expiring token for demo; a legacy client holds it in memory');
  return 'minted a legacy token (HS256, no exp) for demo: the legacy client holds it';
}));

$('btn-legacy-call').addEventListener('click', () => run('legacy-call', async () => {
  if (!legacyTm) return 'mint a legacy token first';
  const before = legacyTm.legacyUpgrade;
  const res = await legacyTm.fetch('/api/me');
  const body = await res.json().catch(() => null);
  const deprecated = res.headers.get('deprecation') ? ', Deprecation header' : '';
  const sent = before === 'held' ? (body?.legacy ? ' with the legacy token' : '') : before === 'upgraded' ? ' with a new token' : ' without a token';
  await until(() => legacyTm.legacyUpgrade !== 'upgrading');
  renderLegacy();
  return `legacy client: GET /api/me → ${res.status}${sent}${deprecated} · legacy client ${legacyTm.legacyUpgrade}`;
}));

for (const b of document.querySelectorAll('.phases button[data-phase]')) {
  b.addEventListener('click', () => run('legacy-phase', async () => {
    const phase = Number(b.dataset.phase);
    const res = await fetch('/demo/legacy-phase', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ phase }),
    });
    if (!res.ok) return `legacy-phase answered ${res.status}`;
    const state = await res.json();
    log('legacy', `server switched to phase ${state.phase}`);
    return `the server is in phase ${state.phase}`;
  }));
}

$('btn-legacy-kill').addEventListener('click', () => run('legacy-kill', async () => {
  const res = await fetch('/demo/legacy-kill-switch', { method: 'POST' });
  if (!res.ok) return `legacy-kill-switch answered ${res.status}`;
  const state = await res.json();
  log('legacy', state.reverted ? `kill switch: back to phase ${state.phase}` : 'kill switch: no earlier phase');
  return state.reverted ? `kill switch: the server is back in phase ${state.phase}` : `no earlier phase: still ${state.phase}`;
}));

/** Bounded wait (no timing assumption) for a condition the manager reaches by itself. */
async function until(cond) {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
}

function renderLegacy(stats) {
  $('legacy-client-state').textContent = legacyTm ? legacyTm.legacyUpgrade : 'none';
  const l = stats?.legacy;
  if (!l) return;
  const r = l.report;
  const sum = (a) => a.reduce((x, y) => x + y, 0);
  $('legacy-phase-pill').textContent = `phase ${l.phase}${l.rolloutPercent < 100 ? ` (${l.rolloutPercent} %)` : ''}`;
  $('legacy-phase-pill').dataset.phase = String(l.phase);
  for (const b of document.querySelectorAll('.phases button[data-phase]')) b.setAttribute('aria-pressed', String(Number(b.dataset.phase) === l.phase));
  $('legacy-uses').textContent = String(sum(r.usesByPhase));
  $('legacy-refusals').textContent = String(sum(r.refusalsByPhase));
  $('legacy-upgrades').textContent = String(r.upgrades);
  $('legacy-security').textContent = String(r.securityEvents);
  $('legacy-share').textContent = `${(r.legacyShare * 100).toFixed(1)} %`;
  $('legacy-users').textContent = String(r.usersStillOnLegacy);
  $('legacy-alerts').textContent = String(Object.values(r.alerts).reduce((x, y) => x + y, 0));
}

async function run(name, fn) {
  const buttons = document.querySelectorAll('button');
  buttons.forEach((b) => { b.disabled = true; });
  document.body.dataset.busy = name;
  try {
    setResult(await fn());
  } catch (err) {
    setResult(`${err?.name ?? 'Error'}: ${err?.message ?? err}`, true);
    log('error', `${name}: ${err?.name ?? 'Error'}${err?.code ? ` ${err.code}` : ''}: ${err?.message ?? err}`);
  } finally {
    delete document.body.dataset.busy;
    render();
    refreshStats();
  }
}

function setResult(text, isError = false) {
  ui.result.textContent = text;
  ui.result.classList.toggle('is-error', isError);
  ui.result.dataset.seq = String(Number(ui.result.dataset.seq ?? 0) + 1);
}

async function whoAmI() {
  try {
    const res = await tm.fetch('/api/me');
    if (res.ok) showWho(await res.json());
  } catch { /* shown by the next action */ }
}

function showWho({ sub, sid }) {
  ui.sub.textContent = sub ?? '–';
  ui.sid.textContent = sid ?? '–';
  ui.sid.title = sid ?? '';
}

// ---- rendering ---------------------------------------------------------------------------------------------

/**
 * The time of the manager's next proactive refresh, by its documented policy: `exp − margin`, the margin capped
 * at half the token's lifetime (measured from receipt).
 */
function nextRefreshAt() {
  const exp = tm.expiresAt;
  if (exp == null || view.receivedAt == null) return null;
  const lifetimeMs = Math.max(0, exp - view.receivedAt);
  return exp - Math.min(REFRESH_MARGIN_SECONDS * 1000, lifetimeMs / 2);
}

function render() {
  const authed = tm.isAuthenticated;
  const busy = document.body.dataset.busy;
  ui.loginForm.hidden = !view.started || authed;
  ui.tokenPanel.hidden = !authed;
  for (const b of document.querySelectorAll('button')) {
    b.disabled = Boolean(busy) || (b.hasAttribute('data-needs-session') && !authed);
  }
  $('btn-legacy-call').disabled = Boolean(busy) || !legacyTm;
  let state = 'out';
  let label = 'Signed out';
  if (!view.started) { state = 'loading'; label = 'Checking session…'; }
  else if (authed && view.failing) { state = 'failing'; label = 'Signed in · refresh failing'; }
  else if (authed) { state = 'in'; label = 'Signed in'; }
  ui.state.dataset.state = state;
  ui.state.textContent = label;
  document.body.dataset.session = state;
  tick();
}

function tick() {
  const now = Date.now();
  const exp = tm.expiresAt;
  if (!tm.isAuthenticated || exp == null) {
    ui.exp.textContent = '–';
    ui.next.textContent = '–';
    return;
  }
  ui.exp.textContent = exp > now ? seconds(exp - now) : 'expired';
  if (view.failing) ui.state.textContent = exp > now ? 'Signed in · refresh failing' : 'Token expired · retrying';
  ui.exp.classList.toggle('warn', exp - now < 3000);
  ui.next.classList.toggle('warn', view.failing);
  if (view.failing && view.retryAt) {
    // After a retryable failure the manager waits out its backoff, then refreshes when one is due.
    const next = Math.max(view.retryAt, nextRefreshAt() ?? 0);
    ui.nextLabel.textContent = 'Refresh backing off, retry in';
    ui.next.textContent = next > now ? seconds(next - now) : 'now';
  } else {
    const next = nextRefreshAt();
    ui.nextLabel.textContent = 'Next refresh in';
    ui.next.textContent = next == null ? '–' : next > now ? seconds(next - now) : 'due';
  }
  const start = view.receivedAt ?? now;
  const life = Math.max(1, exp - start);
  ui.fill.style.width = `${clamp01((exp - now) / life) * 100}%`;
  const next = nextRefreshAt();
  ui.mark.style.left = next == null ? '0%' : `${clamp01((next - start) / life) * 100}%`;
  ui.mark.hidden = next == null;
}

function renderStats(s) {
  if (!s) return;
  const set = (id, v) => { if (typeof v === 'number') $(id).textContent = String(v); };
  set('stat-api', s.apiCalls);
  set('stat-401', s.api401);
  set('stat-refresh', s.refreshCalls);
  set('stat-refresh-ok', s.refreshOk);
  set('stat-reuse', s.reuseDetected);
  renderLegacy(s);
}

async function fetchStats() {
  try {
    const res = await fetch('/demo/stats', { cache: 'no-store' });
    return res.ok ? await res.json() : null;
  } catch {
    return null;
  }
}

async function refreshStats() {
  renderStats(await fetchStats());
}

// ---- the event log -----------------------------------------------------------------------------------------

function log(kind, text) {
  const li = document.createElement('li');
  li.dataset.kind = kind;
  const time = document.createElement('time');
  time.textContent = clock(Date.now(), true);
  const tag = document.createElement('span');
  tag.className = 'tag';
  tag.dataset.kind = kind;
  tag.textContent = kind;
  const msg = document.createElement('span');
  msg.className = 'msg';
  msg.textContent = text;
  li.append(time, tag, msg);
  ui.log.prepend(li);
  while (ui.log.children.length > LOG_LIMIT) ui.log.lastElementChild.remove();
}

function clock(ms, withMillis = false) {
  const d = new Date(ms);
  const hms = d.toLocaleTimeString('en-GB', { hour12: false });
  return withMillis ? `${hms}.${String(d.getMilliseconds()).padStart(3, '0')}` : hms;
}

function seconds(ms) {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

function clamp01(x) {
  return Math.min(1, Math.max(0, x));
}

// ---- start -------------------------------------------------------------------------------------------------

// For the console and for tests that want to look: the manager itself, as an app would hold it.
window.tm = tm;
Object.defineProperty(window, 'legacyTm', { get: () => legacyTm });

setInterval(tick, 100);
setInterval(refreshStats, STATS_POLL_MS);
refreshStats();
render();

// The refresh cookie may already hold a session (a reload, another tab): one refresh restores it.
(async () => {
  let restored = false;
  try {
    restored = await tm.refresh();
  } catch (err) {
    log('error', `session check: ${err?.name ?? 'Error'}: ${err?.message ?? err}`);
  }
  view.started = true;
  log('info', restored ? 'restored the session from the refresh cookie' : 'no session yet: sign in');
  render();
  document.body.dataset.ready = 'true';
})();
