//! Browser tests of the shell (`wasm-pack test --headless --chrome` / `--firefox`) against a scripted
//! `fetch`: a fake `globalThis.fetch` records every request and answers from a script. The scenarios are
//! written in JavaScript so that they exercise the real JS surface (getters, detached `fetch`, events,
//! errors); each resolves to "ok" or rejects with the failed expectation. No timing assertions.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use wasm_token_manager::TokenManager;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
const realFetch = globalThis.fetch;
const b64 = (s) => btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
let seq = 0;
export function mint(lifeS) {
  const now = Math.floor(Date.now() / 1000);
  seq += 1;
  return b64(JSON.stringify({ alg: 'HS256', typ: 'at+jwt' })) + '.' +
    b64(JSON.stringify({ sub: 'u', iat: now, exp: now + lifeS, jti: 'j' + seq })) + '.c2ln';
}
// An opaque access token as RFC 6749 servers issue them: 32 random bytes as 43 base64url characters.
export function mintOpaque() {
  return b64(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
}
// A legacy never-expiring token (HS256, no exp), as the old system minted it.
const LEGACY = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' })) + '.' + b64(JSON.stringify({ userId: '4711', iat: 1500000000 })) + '.c2ln';
const json = (obj, status = 200, type = 'application/json') => new Response(JSON.stringify(obj), { status, headers: { 'content-type': type } });

function install() {
  const s = { log: [], valid: null, plan: [], logoutPlan: [], refreshCount: 0, gate: null, life: 3600, loginBody: null, loginType: undefined, opaque: false, tokenType: 'Bearer',
    legacyPhase: 0, legacyPlan: [], upgradeCount: 0, exchanged: false };
  globalThis.__fake = s;
  globalThis.fetch = async (input, init) => {
    const req = new Request(input, init);
    const url = new URL(req.url);
    // Routes ignore the /spa-root prefix of the <base href> scenario (C59); the log keeps the real path.
    const route = url.pathname.replace(/^\/spa-root(?=\/)/, '');
    const hasBody = !['GET', 'HEAD'].includes(req.method);
    const body = hasBody ? await req.text() : '';
    const e = { url: req.url, origin: url.origin, path: url.pathname, method: req.method,
      auth: req.headers.get('authorization'), credentials: req.credentials, redirect: req.redirect,
      xrw: req.headers.get('x-requested-with'), csrf: req.headers.get('x-csrf'), contentType: req.headers.get('content-type'), body,
      signal: req.signal, mode: req.mode, cache: req.cache, integrity: req.integrity, referrer: req.referrer,
      referrerPolicy: req.referrerPolicy, keepalive: req.keepalive, dpop: req.headers.get('dpop') };
    s.log.push(e);
    if (route === '/auth/refresh') {
      s.refreshCount += 1;
      if (s.gate) await s.gate.promise;
      const step = s.plan.length ? s.plan.shift() : 'ok';
      if (step === 'ok' && s.opaque) { s.valid = mintOpaque(); return json({ access_token: s.valid, token_type: 'Bearer', expires_in: s.life }); }
      // The reference server's answer (server/src/routes/auth.rs token_response).
      if (step === 'ok') { s.valid = mint(s.life); return json({ accessToken: s.valid, expiresIn: s.life, tokenType: s.tokenType }); }
      if (step === 'network') throw new TypeError('Failed to fetch');
      if (step === 'html') return new Response('<html>', { status: 200, headers: { 'content-type': 'text/html' } });
      if (step === 'redirect') {
        // What fetch gives for a 3xx under redirect: 'manual' (a Response of type opaqueredirect, status 0).
        const r = new Response(null, { status: 200 });
        Object.defineProperties(r, { type: { value: 'opaqueredirect' }, status: { value: 0 }, ok: { value: false } });
        return r;
      }
      return json({ error: 'x' }, Number(step));
    }
    if (route === '/auth/login') {
      if (s.loginBody) return json(s.loginBody, 200, s.loginType);
      s.valid = mint(s.life); return json({ accessToken: s.valid, expiresIn: s.life, tokenType: s.tokenType });
    }
    if (route === '/auth/logout') {
      const step = s.logoutPlan.length ? s.logoutPlan.shift() : 'ok';
      if (step === 'network') throw new TypeError('Failed to fetch');
      if (step === 'hang') return new Promise((_, reject) => req.signal.addEventListener('abort', () => reject(req.signal.reason)));
      if (step !== 'ok' && step !== '200') return json({ error: 'x' }, Number(step)); // the server session stays alive
      s.valid = null;
      return step === '200' ? json({}) : new Response(null, { status: 204 });
    }
    if (route === '/auth/legacy/upgrade') {
      // The reference server's one-time exchange (server/src/routes/legacy.rs upgrade).
      s.upgradeCount += 1;
      const step = s.legacyPlan.length ? s.legacyPlan.shift() : 'ok';
      if (step === 'network') throw new TypeError('Failed to fetch');
      if (step === 'retired' || s.legacyPhase >= 3) return json({ error: 'legacy_token_retired' }, 401);
      if (e.auth !== 'Bearer ' + LEGACY) return json({ error: 'invalid_token' }, 401);
      if (s.exchanged) return json({ error: 'invalid_grant' }, 401);
      s.exchanged = true;
      s.valid = mint(s.life);
      return json({ accessToken: s.valid, expiresIn: s.life, tokenType: 'Bearer' });
    }
    if (e.auth === 'Bearer ' + LEGACY && route.startsWith('/api')) {
      // The reference server's API gate by phase: 0–1 accepted (1 with Deprecation), 2 a 401 naming the upgrade, 3+ a 401.
      if (s.legacyPhase <= 1) {
        const headers = { 'content-type': 'application/json' };
        if (s.legacyPhase === 1) Object.assign(headers, { deprecation: '@1700000000', link: '</auth/legacy/upgrade>; rel="successor-version"' });
        return new Response(JSON.stringify({ ok: true, legacy: true }), { status: 200, headers });
      }
      return json({ error: 'invalid_token' }, 401);
    }
    if (route === '/net-error') throw new TypeError('Failed to fetch');
    if (route === '/forbidden') return json({ error: 'insufficient_scope' }, 403);
    if (route.startsWith('/open')) return json({ ok: true });
    if (e.auth && s.valid && e.auth === s.tokenType + ' ' + s.valid && (s.tokenType === 'Bearer' || e.dpop)) return json({ ok: true, body });
    return json({ error: 'invalid_token' }, 401);
  };
  return s;
}

function check(cond, msg) { if (!cond) throw new Error(msg); }
const api = (s) => s.log.filter((e) => e.path.startsWith('/api'));
const tick = () => new Promise((r) => setTimeout(r, 0));
async function settleMany(n) { for (let i = 0; i < n; i++) await tick(); }
// Waits (without any time assertion) until cond() holds; fails after a generous number of turns.
async function until(cond, what) { for (let i = 0; i < 2000; i++) { if (cond()) return; await tick(); } throw new Error('gave up waiting: ' + what); }
function gate(s) { let release; const promise = new Promise((r) => (release = r)); s.gate = { promise }; return () => { s.gate = null; release(); }; }
async function expectError(p, code, what) {
  try { await p; } catch (e) {
    check(e instanceof Error, what + ': not an Error');
    check(e.name === 'TokenManagerError', what + ': name ' + e.name);
    check(e.code === code, what + ': code ' + e.code + ' expected ' + code);
    return e;
  }
  throw new Error(what + ': did not reject');
}
function expectThrow(f, code, word, what) {
  try { f(); } catch (e) {
    check(e instanceof Error && e.name === 'TokenManagerError', what + ': not a TokenManagerError: ' + e);
    check(e.code === code, what + ': code ' + e.code);
    check(!word || e.message.includes(word), what + ': message "' + e.message + '" does not name ' + word);
    return;
  }
  throw new Error(what + ': did not throw');
}
async function loggedIn(make, opts) {
  const s = install();
  const tm = make(Object.assign({ refreshUrl: '/auth/refresh', logoutUrl: '/auth/logout', crossTab: false }, opts || {}));
  const res = await tm.login('/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"u":"a"}' });
  check(res.ok, 'login failed');
  return { s, tm };
}

const scenarios = {
  async bearerOnlyOnAllowedOrigins(make) {
    const { s, tm } = await loggedIn(make);
    await tm.fetch('/api/a');
    check(api(s)[0].auth === 'Bearer ' + s.valid, 'same-origin request without bearer');
    await tm.fetch('https://other.example/open');
    const other = s.log[s.log.length - 1];
    check(other.origin === 'https://other.example' && other.auth === null, 'bearer leaked to another origin');
    tm.dispose();
    const t = install();
    const tm2 = make({ refreshUrl: '/auth/refresh', apiOrigins: ['https://api.example.com', 'http://localhost:8080'], crossTab: false });
    tm2.setAccessToken(mint(3600));
    const cases = [
      ['https://api.example.com/open', true], ['https://API.EXAMPLE.COM:443/open', true],
      ['http://localhost:8080/open', true], ['https://api.example.com.evil.com/open', false],
      ['http://api.example.com/open', false],
      ['https://api.example.com:8443/open', false], ['http://localhost:8081/open', false], [location.origin + '/open', false],
    ];
    for (const [u, expect] of cases) {
      await tm2.fetch(u);
      const e = t.log[t.log.length - 1];
      check((e.auth !== null) === expect, u + ': bearer ' + (expect ? 'missing' : 'leaked'));
    }
    check(t.refreshCount === 0, 'a refresh happened');
    tm2.dispose();
  },

  async ownAuthorizationPassedThrough(make) {
    const { s, tm } = await loggedIn(make);
    const r = await tm.fetch('/api/a', { headers: { Authorization: 'Bearer mine' } });
    check(r.status === 401, 'expected the 401 to reach the caller');
    check(api(s).length === 1 && api(s)[0].auth === 'Bearer mine', 'Authorization changed');
    check(s.refreshCount === 0, 'own Authorization triggered a refresh');
    tm.dispose();
  },

  async retryReplaysBodies(make) {
    const { s, tm } = await loggedIn(make);
    const blob = new Blob([new Uint8Array([0, 1, 2, 250, 255]), 'tail'], { type: 'application/octet-stream' });
    const fd = new FormData(); fd.append('a', '1'); fd.append('file', new Blob(['file-bytes']), 'f.bin');
    const bodies = {
      json: () => JSON.stringify({ hello: 'wörld', n: [1, 2, 3] }),
      text: () => 'plain text body',
      formData: () => fd,
      blob: () => blob,
      params: () => new URLSearchParams({ q: 'a b', r: 'ü' }),
    };
    for (const [name, make_body] of Object.entries(bodies)) {
      s.valid = 'revoked-' + name; // the held token is rejected once
      const before = s.log.length, refreshes = s.refreshCount;
      const r = await tm.fetch('/api/' + name, { method: 'POST', body: make_body() });
      check(r.status === 200, name + ': status ' + r.status);
      const sent = s.log.slice(before).filter((e) => e.path === '/api/' + name);
      check(sent.length === 2, name + ': sent ' + sent.length + ' times');
      check(sent[0].body.length > 0 && sent[0].body === sent[1].body, name + ': body differs on retry');
      check(sent[0].contentType === sent[1].contentType, name + ': content-type differs on retry');
      check(sent[1].auth === 'Bearer ' + s.valid && sent[0].auth !== sent[1].auth, name + ': retry without the new token');
      check(s.refreshCount === refreshes + 1, name + ': refreshes ' + (s.refreshCount - refreshes));
    }
    // A Request object, as openapi-fetch passes it.
    s.valid = 'revoked-request';
    const r = await tm.fetch(new Request('/api/req', { method: 'PUT', body: '{"x":1}', headers: { 'content-type': 'application/json' } }));
    check(r.status === 200, 'Request input not retried');
    const sent = s.log.filter((e) => e.path === '/api/req');
    check(sent.length === 2 && sent[1].body === '{"x":1}' && sent[1].method === 'PUT', 'Request body or method lost');
    tm.dispose();
  },

  async streamBodyNotRetried(make) {
    const { s, tm } = await loggedIn(make);
    s.valid = 'revoked';
    const stream = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('streamed')); c.close(); } });
    let r;
    try {
      r = await tm.fetch('/api/stream', { method: 'POST', body: stream, duplex: 'half' });
    } catch (e) {
      // Browsers without request streams reject here, like fetch; nothing else to check.
      tm.dispose();
      return;
    }
    check(r.status === 401, 'expected the original 401, got ' + r.status);
    check(s.log.filter((e) => e.path === '/api/stream').length === 1, 'a stream body was re-sent');
    check(await tm.refresh(), 'refresh failed');
    check(s.refreshCount === 1, 'the refresh did not happen or happened twice: ' + s.refreshCount);
    tm.dispose();
  },

  async concurrentCallersShareOneRefresh(make) {
    const { s, tm } = await loggedIn(make);
    s.valid = 'revoked';
    const release = gate(s);
    const calls = [];
    for (let i = 0; i < 50; i++) calls.push(tm.fetch('/api/c' + i));
    await until(() => s.refreshCount === 1 && api(s).length === 50, 'the first 401s and the refresh');
    await settleMany(20);
    check(s.refreshCount === 1, 'refreshes in flight: ' + s.refreshCount);
    // Requests issued while the refresh is in flight wait for it.
    const before = api(s).length;
    const late = tm.fetch('/api/late');
    await settleMany(50);
    check(api(s).length === before, 'a request went out with the stale token during the refresh');
    release();
    const all = await Promise.all([...calls, late]);
    check(all.every((r) => r.status === 200), 'some callers failed: ' + all.map((r) => r.status).join());
    check(s.refreshCount === 1, 'refreshes: ' + s.refreshCount);
    for (let i = 0; i < 50; i++) check(api(s).filter((e) => e.path === '/api/c' + i).length <= 2, 'sent more than twice');
    check(api(s).filter((e) => e.path === '/api/late').length === 1, 'the late request was sent twice');
    tm.dispose();
  },

  async refresh401EndsSession(make) {
    const { s, tm } = await loggedIn(make);
    let expired = 0, failed = null;
    tm.events.addEventListener('sessionexpired', (e) => { expired += 1; check(e instanceof CustomEvent, 'not a CustomEvent'); });
    tm.events.addEventListener('refreshfailed', (e) => { failed = e.detail; });
    s.valid = 'revoked';
    s.plan = ['401'];
    const rs = await Promise.all([tm.fetch('/api/a'), tm.fetch('/api/b')]);
    check(rs.every((r) => r.status === 401), 'waiters did not get their original 401');
    check(expired === 1, 'sessionexpired fired ' + expired + ' times');
    check(failed && failed.status === 401 && failed.retryable === false && failed.retryAt === null, 'refreshfailed detail ' + JSON.stringify(failed));
    check(tm.isAuthenticated === false && tm.expiresAt === null, 'still authenticated');
    const before = api(s).length;
    const r = await tm.fetch('/api/after');
    check(r.status === 401 && api(s)[before].auth === null, 'sent a token after the session ended');
    check(s.refreshCount === 1, 'refreshed again after the session ended');
    check(expired === 1, 'sessionexpired fired again');
    tm.dispose();
  },

  async retryableFailureKeepsSession(make) {
    const { s, tm } = await loggedIn(make);
    let failed = null;
    tm.events.addEventListener('refreshfailed', (e) => { failed = e.detail; });
    for (const step of ['503', 'network', '429', 'html']) {
      failed = null;
      s.plan = [step];
      check((await tm.refresh()) === false, step + ': refresh() resolved true');
      check(failed && failed.retryable === true && typeof failed.retryAt === 'number', step + ': detail ' + JSON.stringify(failed));
      check(failed.status === (step === 'network' ? null : step === 'html' ? 200 : Number(step)), step + ': status ' + failed.status);
      check(tm.isAuthenticated, step + ': session dropped');
    }
    check((await tm.refresh()) === true, 'refresh() after failures');
    tm.dispose();
  },

  async refreshCallShapeAndEvents(make) {
    const s = install();
    const tm = make({ refreshUrl: '/auth/refresh', refreshHeaders: { 'X-Requested-With': 'fetch' }, crossTab: false });
    const changes = [];
    tm.events.addEventListener('tokenchange', (e) => changes.push(e.detail));
    check(tm.isAuthenticated === false && tm.expiresAt === null, 'authenticated at start');
    check((await tm.refresh()) === true, 'refresh() resolved false');
    const e = s.log.find((x) => x.path === '/auth/refresh');
    check(e.method === 'POST' && e.credentials === 'include' && e.redirect === 'manual', 'refresh call shape ' + JSON.stringify(e));
    check(e.xrw === 'fetch', 'refreshHeaders not sent');
    check(e.auth === null, 'the refresh call carried a bearer');
    check(changes.length === 1 && changes[0].source === 'refresh' && typeof changes[0].expiresAt === 'number', 'tokenchange ' + JSON.stringify(changes));
    check(Math.abs(tm.expiresAt - (Date.now() + 3600000)) < 120000, 'expiresAt ' + tm.expiresAt);
    check(tm.isAuthenticated, 'not authenticated');
    // refresh() while one is in flight joins it.
    const release = gate(s);
    const a = tm.refresh(), b = tm.refresh();
    await until(() => s.refreshCount === 2, 'the refresh call');
    await settleMany(10);
    release();
    check((await a) && (await b) && s.refreshCount === 2, 'refresh() did not join: ' + s.refreshCount);
    tm.dispose();
  },

  async refreshHeadersDefaultAndReplaced(make) {
    const s = install();
    const calls = (path) => s.log.filter((e) => e.path === path);
    const cases = [
      [undefined, 'fetch', null], // the default: the custom header the reference server requires (S15, S16)
      [{}, null, null], // an explicit value replaces the default: {} sends none
      [{ 'X-CSRF': '1' }, null, '1'],
    ];
    for (const [refreshHeaders, xrw, csrf] of cases) {
      const o = { refreshUrl: '/auth/refresh', logoutUrl: '/auth/logout', crossTab: false };
      if (refreshHeaders !== undefined) o.refreshHeaders = refreshHeaders;
      const tm = make(o);
      const before = s.log.length;
      check((await tm.refresh()) === true, 'refresh() resolved false');
      await tm.logout();
      const sent = s.log.slice(before).filter((e) => e.path === '/auth/refresh' || e.path === '/auth/logout');
      check(sent.length === 2, JSON.stringify(refreshHeaders) + ': calls ' + JSON.stringify(sent));
      for (const e of sent) {
        check(e.xrw === xrw && e.csrf === csrf, JSON.stringify(refreshHeaders) + ': ' + e.path + ' sent X-Requested-With ' + e.xrw + ', X-CSRF ' + e.csrf);
      }
      tm.dispose();
    }
    check(calls('/auth/refresh').length === 3 && calls('/auth/logout').length === 3, 'call counts');
  },

  async neverEndingBodyIsCapped(make) {
    const s = install();
    const fake = globalThis.fetch;
    const streams = { refresh: null, login: null };
    // A 200 whose body never ends: a chunk on every pull, up to 1 MiB; then it stalls, still open.
    const endless = (name) => {
      const st = { pulled: 0, cancelled: false };
      streams[name] = st;
      const body = new ReadableStream({
        pull(c) { if (st.pulled * 4096 < 1024 * 1024) { st.pulled += 1; c.enqueue(new Uint8Array(4096).fill(0x20)); } },
        cancel() { st.cancelled = true; },
      });
      return new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
    };
    globalThis.fetch = async (input, init) => {
      const path = new URL(new Request(input, init).url).pathname;
      if (path === '/auth/refresh') { s.refreshCount += 1; return endless('refresh'); }
      if (path === '/auth/login') return endless('login');
      return fake(input, init);
    };
    // The refresh timeout cannot be what ends the call here.
    const tm = make({ refreshUrl: '/auth/refresh', crossTab: false, refreshTimeoutSeconds: 3600 });
    let failed = null;
    tm.events.addEventListener('refreshfailed', (e) => { failed = e.detail; });
    let done = false;
    const r = tm.refresh().then((ok) => { done = true; return ok; });
    await until(() => done || streams.refresh && streams.refresh.pulled * 4096 >= 1024 * 1024, 'the refresh to end or the whole stream to be read');
    check(done, 'the refresh is still reading after ' + streams.refresh.pulled * 4096 + ' bytes');
    check((await r) === false, 'refresh() resolved true');
    check(streams.refresh.cancelled, 'the refresh body stream was not cancelled');
    check(streams.refresh.pulled * 4096 <= 64 * 1024 + 2 * 4096, 'read ' + streams.refresh.pulled * 4096 + ' bytes');
    check(failed && failed.status === 200 && failed.retryable === true, 'not a retryable malformed answer: ' + JSON.stringify(failed));
    check(!tm.isAuthenticated && s.refreshCount === 1, 'state after the capped refresh');
    // The login answer is capped the same way.
    const e = await expectError(tm.login('/auth/login', { method: 'POST' }), 'BAD_RESPONSE', 'endless login body');
    check(e.message.includes('64 KiB'), 'message ' + e.message);
    await until(() => streams.login.cancelled, 'the login body stream to be cancelled');
    // login() reads a copy (the stream is teed, which pulls a few chunks ahead): still far below the 1 MiB on offer.
    check(streams.login.pulled * 4096 <= 2 * 64 * 1024, 'login read ' + streams.login.pulled * 4096 + ' bytes');
    check(!tm.isAuthenticated, 'a capped login stored a token');
    tm.dispose();
  },

  async sessionRestore(make) {
    let s = install();
    let tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
    await tm.fetch('/api/a');
    check(s.log[0].path === '/auth/refresh' && s.log[1].path === '/api/a', 'no refresh before the first request');
    check(s.log[1].auth === 'Bearer ' + s.valid, 'restored token not attached');
    tm.dispose();
    s = install();
    s.plan = ['401'];
    let expired = 0;
    tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
    tm.events.addEventListener('sessionexpired', () => { expired += 1; });
    await tm.fetch('/api/a');
    await tm.fetch('/api/b');
    await tm.fetch('/api/c');
    check(s.refreshCount === 1, 'refreshed per request without a session: ' + s.refreshCount);
    check(api(s).every((e) => e.auth === null), 'a bearer without a session');
    check(expired === 0, 'sessionexpired without a session');
    tm.dispose();
  },

  async logoutClearsAndFires(make) {
    const { s, tm } = await loggedIn(make);
    const reasons = [];
    tm.events.addEventListener('logout', (e) => reasons.push(e.detail.reason));
    await tm.logout();
    check(reasons.length === 1 && reasons[0] === 'user', 'logout events ' + JSON.stringify(reasons));
    check(!tm.isAuthenticated && tm.expiresAt === null, 'still authenticated');
    const post = s.log.find((e) => e.path === '/auth/logout');
    check(post && post.method === 'POST' && post.credentials === 'include', 'logout call ' + JSON.stringify(post));
    await tm.fetch('/api/a');
    check(api(s)[0].auth === null && s.refreshCount === 0, 'a token or a refresh after logout');
    await tm.logout();
    check(reasons.length === 1, 'logout is not idempotent');
    tm.dispose();
  },

  async logoutFailureRejectsButWinsLocally(make) {
    for (const step of ['403', '500', 'network', 'hang']) {
      const s = install();
      const crossTab = 'wtm-test-logout-' + step + '-' + Math.random();
      const raw = new BroadcastChannel(crossTab);
      const heard = [];
      raw.addEventListener('message', (e) => { try { heard.push(JSON.parse(e.data).type); } catch (_) { /* not ours */ } });
      // 'hang': the logout call never answers and is aborted after refreshTimeoutSeconds.
      const tm = make({ refreshUrl: '/auth/refresh', logoutUrl: '/auth/logout', crossTab, refreshTimeoutSeconds: step === 'hang' ? 0.05 : 10 });
      await tm.login('/auth/login', { method: 'POST' });
      check(tm.isAuthenticated, step + ': login');
      const reasons = [];
      tm.events.addEventListener('logout', (e) => reasons.push(e.detail.reason));
      const release = gate(s);
      const pending = tm.refresh();
      await until(() => s.refreshCount === 1, step + ': the refresh call');
      s.logoutPlan = [step];
      const e = await expectError(tm.logout(), 'LOGOUT_FAILED', step);
      const want = step === 'network' || step === 'hang' ? null : Number(step);
      check(e.status === want, step + ': status ' + e.status + ' expected ' + want);
      // Logout won locally all the same.
      check(reasons.join() === 'user', step + ': logout events ' + JSON.stringify(reasons));
      check(!tm.isAuthenticated && tm.expiresAt === null, step + ': still authenticated');
      release();
      check((await pending) === false, step + ': the refresh in flight brought the session back');
      check(!tm.isAuthenticated, step + ': authenticated after the refresh result');
      await until(() => heard.includes('logout'), step + ': the other tabs were not told');
      // The server kept the session and its cookie, but nothing restores it from there automatically.
      check(s.valid !== null, step + ': the scripted server dropped the session');
      const before = s.refreshCount;
      await tm.fetch('/api/a');
      check(api(s).length === 1 && api(s)[0].auth === null && s.refreshCount === before, step + ': a token or a refresh after the logout');
      // Idempotent: logging out again posts again and resolves once the server accepts.
      s.logoutPlan = ['200'];
      await tm.logout();
      check(s.log.filter((x) => x.path === '/auth/logout').length === 2, step + ': the second logout was not posted');
      check(s.valid === null, step + ': the second logout did not reach the server');
      check(reasons.length === 1, step + ': logout fired again');
      raw.close();
      tm.dispose();
    }
    // Without logoutUrl the server is never told: the local logout happens, and logout() rejects with
    // LOGOUT_FAILED saying so (C61 kind: a reload would silently sign the user in again).
    const s = install();
    const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
    tm.setAccessToken(mint(3600));
    const e = await expectError(tm.logout(), 'LOGOUT_FAILED', 'logout without logoutUrl');
    check(e.status === null && /logoutUrl/.test(e.message), 'the error names the missing logoutUrl: ' + e.message);
    check(!tm.isAuthenticated && s.log.length === 0, 'logout without logoutUrl still logs out locally and posts nothing');
    tm.dispose();
  },

  async logoutDuringRefreshWins(make) {
    const { s, tm } = await loggedIn(make);
    const release = gate(s);
    const r = tm.refresh();
    await until(() => s.refreshCount === 1, 'the refresh call');
    await tm.logout();
    release();
    check((await r) === false, 'the refresh brought the session back');
    await settleMany(10);
    check(!tm.isAuthenticated, 'authenticated after logout');
    tm.dispose();
  },

  async detachedFetch(make) {
    const { s, tm } = await loggedIn(make);
    const f = tm.fetch;
    check(typeof f === 'function' && tm.fetch === f, 'fetch getter not cached');
    const r1 = await f('/api/a');
    const r2 = await f.call(undefined, new URL('/api/b', location.href));
    const r3 = await (0, tm.fetch)(new Request('/api/c', { method: 'POST', body: 'x' }));
    const holder = { fetch: tm.fetch };
    const r4 = await holder.fetch('/api/d');
    check([r1, r2, r3, r4].every((r) => r.status === 200), 'detached calls failed');
    check(api(s).every((e) => e.auth === 'Bearer ' + s.valid), 'detached calls without bearer');
    s.valid = 'revoked';
    check((await f('/api/e')).status === 200, 'detached 401 path');
    tm.dispose();
  },

  async listenerReentry(make) {
    const { s, tm } = await loggedIn(make);
    const f = tm.fetch;
    let depth = 0;
    const inner = [];
    tm.events.addEventListener('tokenchange', () => {
      if (depth++ < 200) { inner.push(f('/api/in'), tm.refresh()); void tm.isAuthenticated; void tm.expiresAt; }
    });
    tm.events.addEventListener('refreshfailed', () => { inner.push(tm.fetch('/api/rf')); });
    const calls = [];
    for (let i = 0; i < 1000; i++) {
      switch (i % 5) {
        case 0: calls.push(f('/api/x' + i)); break;
        case 1: calls.push(tm.refresh()); break;
        case 2: s.valid = i % 10 === 2 ? 'revoked' : s.valid; calls.push(tm.fetch('/api/y' + i, { method: 'POST', body: 'b' + i })); break;
        case 3: try { tm.setAccessToken(mint(3600)); } catch (e) { calls.push(Promise.reject(e)); } break;
        case 4: if (i % 50 === 4) calls.push(tm.logout()); else calls.push(Promise.resolve(tm.isAuthenticated)); break;
      }
    }
    const results = await Promise.allSettled(calls);
    await Promise.allSettled(inner);
    const bad = results.concat(await Promise.allSettled(inner)).filter((r) => r.status === 'rejected');
    check(bad.length === 0, bad.length + ' calls rejected, first: ' + (bad[0] && bad[0].reason));
    // Still usable afterwards.
    tm.setAccessToken(s.valid = mint(3600));
    check((await tm.fetch('/api/final')).status === 200, 'manager unusable after the storm');
    tm.dispose();
  },

  async disposeRejects(make) {
    const { s, tm } = await loggedIn(make);
    const f = tm.fetch;
    tm.dispose();
    tm.dispose();
    check(!tm.isAuthenticated, 'token kept after dispose');
    await expectError(tm.fetch('/api/a'), 'DISPOSED', 'fetch');
    await expectError(f('/api/a'), 'DISPOSED', 'detached fetch');
    await expectError(tm.refresh(), 'DISPOSED', 'refresh');
    await expectError(tm.logout(), 'DISPOSED', 'logout');
    await expectError(tm.login('/auth/login'), 'DISPOSED', 'login');
    expectThrow(() => tm.setAccessToken(mint(10)), 'DISPOSED', null, 'setAccessToken');
    check(api(s).length === 0, 'requests after dispose');
  },

  // Issue 11 item 2: dispose(), free() and [Symbol.dispose]() each drop every JS resource the manager holds.
  disposalDispose(make) { return releasesEverything(make, 'dispose'); },
  disposalFree(make) { return releasesEverything(make, 'free'); },
  disposalSymbolDispose(make) { return releasesEverything(make, 'Symbol.dispose'); },

  async badOptionsThrowNamingTheOption(make) {
    install();
    const cases = [
      [undefined, 'refreshUrl'], [{}, 'refreshUrl'], [{ refreshUrl: 5 }, 'refreshUrl'], [{ refreshUrl: '' }, 'refreshUrl'],
      [{ refreshUrl: 'ftp://x/y' }, 'refreshUrl'], [{ refreshUrl: '/r', logoutUrl: 7 }, 'logoutUrl'],
      [{ refreshUrl: '/r', apiOrigins: 'https://a.com' }, 'apiOrigins'], [{ refreshUrl: '/r', apiOrigins: ['https://a.com/path'] }, 'apiOrigins'],
      [{ refreshUrl: '/r', apiOrigins: ['not a url'] }, 'apiOrigins'], [{ refreshUrl: '/r', apiOrigins: [42] }, 'apiOrigins'],
      [{ refreshUrl: '/r', refreshMarginSeconds: -1 }, 'refreshMarginSeconds'], [{ refreshUrl: '/r', refreshMarginSeconds: '60' }, 'refreshMarginSeconds'],
      [{ refreshUrl: '/r', refreshMarginSeconds: NaN }, 'refreshMarginSeconds'], [{ refreshUrl: '/r', tokenField: 3 }, 'tokenField'],
      [{ refreshUrl: '/r', tokenField: '' }, 'tokenField'], [{ refreshUrl: '/r', refreshHeaders: { a: 1 } }, 'refreshHeaders'],
      [{ refreshUrl: '/r', refreshHeaders: { 'bad name': 'x' } }, 'refreshHeaders'], [{ refreshUrl: '/r', refreshHeaders: 'x' }, 'refreshHeaders'],
      [{ refreshUrl: '/r', refreshTimeoutSeconds: 0 }, 'refreshTimeoutSeconds'], [{ refreshUrl: '/r', crossTab: 3 }, 'crossTab'],
      [{ refreshUrl: '/r', crossTab: true }, 'crossTab'], [{ refreshUrl: '/r', debug: 'yes' }, 'debug'], [{ refreshURL: '/r' }, 'refreshURL'],
      [{ refreshUrl: '/r', apiOrigins: ['http://*:8080'] }, 'wildcards'], [{ refreshUrl: '/r', apiOrigins: ['https://*.example.com'] }, 'wildcards'],
    ];
    for (const [opts, word] of cases) expectThrow(() => make(opts), 'INVALID_OPTION', word, JSON.stringify(opts) || 'undefined');
    const ok = make({ refreshUrl: '/r', logoutUrl: '/l', apiOrigins: ['https://a.com', 'http://[::1]:8080'], refreshMarginSeconds: 0,
      tokenField: 'jwt', refreshHeaders: { 'X-CSRF': '1' }, refreshTimeoutSeconds: 2.5, crossTab: 'my-app', lockTimeoutSeconds: 3, debug: false });
    ok.dispose();
  },

  async setAccessTokenAndErrors(make) {
    const s = install();
    const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
    const changes = [];
    tm.events.addEventListener('tokenchange', (e) => changes.push(e.detail));
    const t = mint(600);
    tm.setAccessToken(t);
    check(tm.isAuthenticated && Math.abs(tm.expiresAt - (Date.now() + 600000)) < 120000, 'setAccessToken not stored');
    check(changes.length === 1 && changes[0].source === 'set', 'tokenchange ' + JSON.stringify(changes));
    expectThrow(() => tm.setAccessToken('abc\r\nX-Evil: 1'), 'INVALID_TOKEN', null, 'header injection');
    expectThrow(() => tm.setAccessToken('a b'), 'INVALID_TOKEN', 'b64token', 'a space');
    expectThrow(() => tm.setAccessToken('x'.repeat(9000)), 'INVALID_TOKEN', null, 'huge');
    expectThrow(() => tm.setAccessToken(42), 'INVALID_TOKEN', null, 'number');
    check(tm.isAuthenticated, 'a bad token replaced the good one');
    s.valid = t;
    check((await tm.fetch('/api/a')).status === 200, 'set token not used');
    tm.setAccessToken(null);
    check(!tm.isAuthenticated && changes.length === 2 && changes[1].expiresAt === null, 'setAccessToken(null)');
    await tm.fetch('/api/b');
    check(api(s)[1].auth === null && s.refreshCount === 0, 'after setAccessToken(null): a bearer or a refresh');
    // The token is never written anywhere.
    check(localStorage.length === 0 && sessionStorage.length === 0 && !document.cookie.includes(t.slice(0, 20)), 'token persisted');
    tm.dispose();
  },

  async loginStoresTokenAndResolvesResponse(make) {
    const s = install();
    const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
    const sources = [];
    tm.events.addEventListener('tokenchange', (e) => sources.push(e.detail.source));
    const res = await tm.login('/auth/login', { method: 'POST', body: '{"user":"a"}', headers: { 'content-type': 'application/json' } });
    check(res instanceof Response && res.ok, 'login did not resolve with the Response');
    const body = await res.json();
    check(body.tokenType === 'Bearer' && body.accessToken === s.valid, 'login body not readable by the caller');
    check(s.log[0].credentials === 'include' && s.log[0].body === '{"user":"a"}', 'login call shape');
    check(tm.isAuthenticated && sources.join() === 'login', 'login token not stored');
    s.loginBody = { nothing: true };
    await expectError(tm.login('/auth/login', { method: 'POST' }), 'BAD_RESPONSE', 'login without a token');
    s.loginBody = { accessToken: 'not a token' };
    const e = await expectError(tm.login('/auth/login', { method: 'POST' }), 'INVALID_TOKEN', 'login with a bad token');
    check(e.message.includes('b64token'), 'message ' + e.message);
    check(tm.isAuthenticated, 'a failed login dropped the session');
    tm.dispose();
  },

  async opaqueLoginAnswerStoredAndSent(make) {
    const s = install();
    const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
    const changes = [];
    tm.events.addEventListener('tokenchange', (e) => changes.push(e.detail));
    const t = mintOpaque();
    check(t.length === 43 && !t.includes('.'), 'fixture ' + t);
    s.loginBody = { access_token: t, token_type: 'Bearer', expires_in: 600 };
    s.valid = t;
    const res = await tm.login('/auth/login', { method: 'POST' });
    check(res.ok && tm.isAuthenticated, 'the opaque login answer was not stored');
    // expiresAt from expires_in, counted from receipt (a window, not a timing assertion).
    check(typeof tm.expiresAt === 'number' && Math.abs(tm.expiresAt - (Date.now() + 600000)) < 60000, 'expiresAt ' + tm.expiresAt);
    check(changes.length === 1 && changes[0].source === 'login' && changes[0].expiresAt === tm.expiresAt, 'tokenchange ' + JSON.stringify(changes));
    check((await tm.fetch('/api/a')).status === 200, 'the opaque token was not accepted by the API');
    check(api(s)[0].auth === 'Bearer ' + t, 'sent ' + api(s)[0].auth);
    check(s.refreshCount === 0, 'a refresh happened');
    tm.dispose();
  },

  async jwtSessionMeetsOpaqueRefreshAnswers(make) {
    const { s, tm } = await loggedIn(make);
    let expired = 0, failed = 0;
    tm.events.addEventListener('sessionexpired', () => { expired += 1; });
    tm.events.addEventListener('refreshfailed', () => { failed += 1; });
    const changes = [];
    tm.events.addEventListener('tokenchange', (e) => changes.push(e.detail));
    s.opaque = true;
    for (let i = 0; i < 4; i++) {
      check((await tm.refresh()) === true, 'refresh ' + i + ' resolved false');
      check(tm.isAuthenticated && !s.valid.includes('.'), 'refresh ' + i + ': not holding the opaque token');
      check((await tm.fetch('/api/r' + i)).status === 200, 'refresh ' + i + ': the opaque token was not sent');
      check(api(s)[api(s).length - 1].auth === 'Bearer ' + s.valid, 'refresh ' + i + ': sent ' + api(s)[api(s).length - 1].auth);
    }
    check(expired === 0 && failed === 0, 'sessionexpired ' + expired + ', refreshfailed ' + failed);
    check(s.refreshCount === 4, 'refresh calls ' + s.refreshCount);
    check(changes.length === 4 && changes.every((d) => d.source === 'refresh' && typeof d.expiresAt === 'number'), 'tokenchange ' + JSON.stringify(changes));
    tm.dispose();
  },

  async setAccessTokenAcceptsOpaque(make) {
    const s = install();
    const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
    const changes = [];
    tm.events.addEventListener('tokenchange', (e) => changes.push(e.detail));
    const t = mintOpaque();
    tm.setAccessToken(t);
    check(tm.isAuthenticated && tm.expiresAt === null, 'setAccessToken(opaque): ' + tm.isAuthenticated + ' ' + tm.expiresAt);
    check(changes.length === 1 && changes[0].source === 'set' && changes[0].expiresAt === null, 'tokenchange ' + JSON.stringify(changes));
    s.valid = t;
    check((await tm.fetch('/api/a')).status === 200 && api(s)[0].auth === 'Bearer ' + t, 'the opaque token was not sent');
    // No lifetime known: the 401 path renews it.
    s.valid = 'revoked';
    check((await tm.fetch('/api/b')).status === 200 && s.refreshCount === 1, 'the 401 path did not renew the opaque token');
    tm.dispose();
  },

  async expiresInSchedulesRenewal(make) {
    const s = install();
    const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
    const changes = [];
    tm.events.addEventListener('tokenchange', (e) => changes.push(e.detail));
    // The reference server's shape; the token is opaque, so expiresIn is its only lifetime.
    s.loginBody = { accessToken: (s.valid = mintOpaque()), expiresIn: 1, tokenType: 'Bearer' };
    await tm.login('/auth/login', { method: 'POST' });
    check(typeof tm.expiresAt === 'number' && Math.abs(tm.expiresAt - (Date.now() + 1000)) < 60000, 'expiresAt ' + tm.expiresAt);
    check(changes.length === 1 && changes[0].expiresAt === tm.expiresAt, 'tokenchange ' + JSON.stringify(changes));
    // Renewal is scheduled ahead of it: the refresh happens with no request and no refresh() call.
    await until(() => s.refreshCount === 1 && changes.length === 2, 'the scheduled renewal');
    check(changes[1].source === 'refresh' && tm.isAuthenticated, 'renewal tokenchange ' + JSON.stringify(changes[1]));
    // The server's refresh answer (a JWT living s.life seconds, expiresIn the same) is read as well.
    check(Math.abs(tm.expiresAt - (Date.now() + s.life * 1000)) < 60000, 'expiresAt after the renewal ' + tm.expiresAt);
    check(s.log.filter((e) => e.path.startsWith('/api')).length === 0, 'a request went out');
    tm.dispose();
  },

  async oauthAnswerShapes(make) {
    const s = install();
    const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
    const rt = 'tGzv3JOkF0XG5Qx2TlKWIA';
    // Every variant at once: a +json media type with parameters, token_type in another case, expires_in as a
    // string, scope, a refresh_token and unknown members.
    s.loginType = 'Application/Vnd.Example+JSON ; charset=UTF-8';
    s.loginBody = { access_token: (s.valid = mintOpaque()), token_type: 'bearer', expires_in: '600', scope: 'read write',
      refresh_token: rt, id_token: 'x.y.z', extra: { nested: [1, null] } };
    await tm.login('/auth/login', { method: 'POST' });
    check(tm.isAuthenticated && Math.abs(tm.expiresAt - (Date.now() + 600000)) < 60000, 'the answer was not read: ' + tm.expiresAt);
    check((await tm.fetch('/api/a')).status === 200 && api(s)[0].auth === 'Bearer ' + s.valid, 'the token was not sent');
    // The body's refresh_token is never used: refreshes rely on the cookie.
    check((await tm.refresh()) === true, 'refresh');
    const r = s.log.find((e) => e.path === '/auth/refresh');
    check(r.auth === null && !r.body.includes(rt), 'the refresh call carried the body\'s refresh_token');
    check(localStorage.length === 0 && sessionStorage.length === 0, 'something was persisted');
    // Another token type is refused, naming it, and the held token stays.
    const held = s.valid;
    for (const [field, type] of [['token_type', 'DPoP'], ['tokenType', 'mac']]) {
      s.loginType = undefined;
      s.loginBody = { access_token: mintOpaque(), [field]: type, expires_in: 600 };
      const e = await expectError(tm.login('/auth/login', { method: 'POST' }), 'BAD_RESPONSE', type);
      check(e.message.includes('token_type is not Bearer'), type + ': message ' + e.message);
    }
    check((await tm.fetch('/api/b')).status === 200 && api(s)[1].auth === 'Bearer ' + held, 'a refused answer replaced the token');
    // Refusals name what is wrong.
    for (const [body, type, code, words] of [
      [{ access_token: 'x' }, 'text/html', 'BAD_RESPONSE', 'Content-Type'],
      [{ token: 'x' }, undefined, 'BAD_RESPONSE', 'no token field'],
      [{ access_token: 42 }, undefined, 'BAD_RESPONSE', 'not a non-empty string'],
      [{ access_token: 'a b' }, undefined, 'INVALID_TOKEN', 'b64token'],
    ]) {
      s.loginType = type;
      s.loginBody = body;
      const e = await expectError(tm.login('/auth/login', { method: 'POST' }), code, JSON.stringify(body));
      check(e.message.includes(words), JSON.stringify(body) + ': message ' + e.message);
    }
    tm.dispose();
  },

  async abortWhileWaitingForRefresh(make) {
    const { s, tm } = await loggedIn(make);
    s.valid = 'revoked';
    const release = gate(s);
    const other = tm.fetch('/api/other');
    await until(() => s.refreshCount === 1, 'the refresh');
    const ctrl = new AbortController();
    const mine = tm.fetch('/api/mine', { signal: ctrl.signal });
    await settleMany(5);
    ctrl.abort();
    let err = null;
    try { await mine; } catch (e) { err = e; }
    check(err && err.name === 'AbortError', 'the aborted caller did not reject with AbortError while the refresh was pending: ' + err);
    check(s.gate !== null, 'the refresh finished first');
    release();
    check((await other).status === 200, 'the refresh did not go on for the others');
    check(s.log.filter((e) => e.path === '/api/mine').length === 0, 'the aborted request was sent');
    tm.dispose();
  },

  async keepaliveNeverWaits(make) {
    const { s, tm } = await loggedIn(make);
    s.valid = 'revoked';
    const release = gate(s);
    tm.refresh();
    await until(() => s.refreshCount === 1, 'the refresh');
    // While a refresh is pending, a keepalive request goes out at once with the current token, no retry.
    const r = await tm.fetch('/api/beacon', { method: 'POST', body: 'bye', keepalive: true });
    check(r.status === 401 && s.gate !== null, 'the keepalive request waited for the refresh');
    const sent = s.log.filter((e) => e.path === '/api/beacon');
    check(sent.length === 1 && sent[0].auth && sent[0].auth.startsWith('Bearer '), 'keepalive: ' + JSON.stringify(sent));
    release();
    tm.dispose();
  },

  async forbiddenAndOtherOrigin401PassThrough(make) {
    const { s, tm } = await loggedIn(make);
    const r = await tm.fetch('/forbidden');
    check(r.status === 403 && s.refreshCount === 0, 'a 403 triggered a refresh');
    const o = await tm.fetch('https://other.example/api/x');
    check(o.status === 401 && s.refreshCount === 0, 'a 401 from another origin triggered a refresh');
    check(s.log.filter((e) => e.path === '/forbidden').length === 1, 'the 403 was retried');
    tm.dispose();
  },

  async fetchRejectsOnlyWhereFetchWould(make) {
    const { s, tm } = await loggedIn(make);
    let err = null;
    try { await tm.fetch('/net-error'); } catch (e) { err = e; }
    check(err instanceof TypeError, 'network error did not reject with the TypeError: ' + err);
    err = null;
    try { await tm.fetch('http://[bad'); } catch (e) { err = e; }
    check(err instanceof TypeError, 'bad URL did not reject with a TypeError: ' + err);
    const r = await tm.fetch('/api/missing-token', { headers: { 'X-Other': '1' } });
    check(r.status === 200, 'status ' + r.status);
    tm.dispose();
  },
};

// Records the timers, listeners and channels taken from creation to release, then checks that `way` gave every
// one back: no timer left armed, no listener left, the channel closed, the detached fetch rejecting DISPOSED,
// and neither the page lifecycle nor another tab reaching the manager afterwards.
async function releasesEverything(make, way) {
  const s = install();
  const crossTab = 'wtm-release-' + Math.random();
  const timers = new Set(), listeners = [], closed = [];
  const real = { setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout, add: EventTarget.prototype.addEventListener,
    remove: EventTarget.prototype.removeEventListener, close: BroadcastChannel.prototype.close };
  let f;
  try {
    globalThis.setTimeout = function (cb, ms, ...rest) { const id = real.setTimeout.call(this, cb, ms, ...rest); timers.add(id); return id; };
    globalThis.clearTimeout = function (id) { timers.delete(id); return real.clearTimeout.call(this, id); };
    EventTarget.prototype.addEventListener = function (type, cb, o) { listeners.push({ target: this, type, cb, removed: false }); return real.add.call(this, type, cb, o); };
    EventTarget.prototype.removeEventListener = function (type, cb, o) {
      for (const l of listeners) if (l.target === this && l.type === type && l.cb === cb) l.removed = true;
      return real.remove.call(this, type, cb, o);
    };
    BroadcastChannel.prototype.close = function () { closed.push(this); return real.close.call(this); };
    const tm = make({ refreshUrl: '/auth/refresh', crossTab });
    tm.setAccessToken(s.valid = mint(3600)); // arms the renewal timer
    f = tm.fetch;
    check(timers.size === 1, 'timers armed before ' + way + ': ' + timers.size);
    check(listeners.length >= 5, 'listeners before ' + way + ': ' + listeners.length);
    check(closed.length === 0, 'a channel closed early');
    if (way === 'dispose') tm.dispose();
    else if (way === 'free') tm.free();
    else { check(typeof tm[Symbol.dispose] === 'function', 'no [Symbol.dispose]'); tm[Symbol.dispose](); }
  } finally {
    globalThis.setTimeout = real.setTimeout; globalThis.clearTimeout = real.clearTimeout;
    EventTarget.prototype.addEventListener = real.add; EventTarget.prototype.removeEventListener = real.remove;
    BroadcastChannel.prototype.close = real.close;
  }
  check(timers.size === 0, way + ' left a timer armed');
  const left = listeners.filter((l) => !l.removed).map((l) => l.type);
  check(left.length === 0, way + ' left listeners: ' + left.join(', '));
  check(closed.length === 1, way + ' left the channel open');
  await expectError(f('/api/after'), 'DISPOSED', 'the detached fetch after ' + way);
  const errors = [];
  const onError = (e) => errors.push(e.message);
  window.addEventListener('error', onError);
  try {
    // Would re-validate a live session with a refresh (C45), and log a live tab out.
    window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }));
    const raw = new BroadcastChannel(crossTab);
    raw.postMessage(JSON.stringify({ v: 1, type: 'logout', epoch: Date.now() + 1e6 }));
    raw.close();
    await settleMany(10);
  } finally {
    window.removeEventListener('error', onError);
  }
  check(s.log.length === 0, 'a request after ' + way + ': ' + s.log.map((e) => e.path).join(', '));
  check(errors.length === 0, 'errors after ' + way + ': ' + errors.join('; '));
}

const once = (tm, name) => new Promise((r) => tm.events.addEventListener(name, (e) => r(e.detail), { once: true }));
let channelSeq = 0;
function pair(make, extra) {
  const crossTab = 'wtm-test-' + (++channelSeq) + '-' + Math.random();
  const o = Object.assign({ refreshUrl: '/auth/refresh', logoutUrl: '/auth/logout', crossTab }, extra || {});
  return { a: make(o), b: make(o), crossTab };
}

Object.assign(scenarios, {
  async crossTabLoginReachesOtherTabs(make) {
    const s = install();
    const { a, b } = pair(make);
    const got = once(b, 'tokenchange');
    await a.login('/auth/login', { method: 'POST' });
    const d = await got;
    check(d.source === 'login' && typeof d.expiresAt === 'number', 'handed-over tokenchange ' + JSON.stringify(d));
    check(b.isAuthenticated, 'the other tab did not adopt the login');
    check((await b.fetch('/api/b')).status === 200 && s.refreshCount === 0, 'the other tab could not use the token');
    a.dispose(); b.dispose();
  },

  async crossTabOneRefreshForAllTabs(make) {
    const s = install();
    const { a, b } = pair(make);
    const c = make({ refreshUrl: '/auth/refresh', crossTab: false });
    const handed = once(b, 'tokenchange');
    await a.login('/auth/login', { method: 'POST' });
    await handed;
    check(b.isAuthenticated, 'no hand-over');
    const release = gate(s);
    const ra = a.refresh();
    await until(() => s.refreshCount === 1, 'the first tab\'s refresh call');
    const rb = b.refresh();
    const bGot = once(b, 'tokenchange');
    await settleMany(20);
    check(s.refreshCount === 1, 'both tabs called /refresh: ' + s.refreshCount);
    release();
    check((await ra) === true, 'leader refresh() false');
    const d = await bGot;
    check(d.source === 'refresh', 'follower tokenchange ' + JSON.stringify(d));
    check((await rb) === true, 'follower refresh() false');
    check(s.refreshCount === 1, 'refresh calls: ' + s.refreshCount);
    check((await b.fetch('/api/x')).status === 200, 'the follower cannot use the shared token');
    // A manager with crossTab: false heard nothing.
    check(!c.isAuthenticated, 'crossTab: false still listened');
    a.dispose(); b.dispose(); c.dispose();
  },

  async crossTabFailureBacksOffEveryTab(make) {
    const s = install();
    const { a, b } = pair(make);
    const handed = once(b, 'tokenchange');
    await a.login('/auth/login', { method: 'POST' });
    await handed;
    s.plan = ['503'];
    const release = gate(s);
    const ra = a.refresh();
    await until(() => s.refreshCount === 1, 'the leader\'s refresh call');
    const failed = once(b, 'refreshfailed');
    const rb = b.refresh();
    await settleMany(10);
    release();
    check((await ra) === false && (await rb) === false, 'a failed refresh reported success');
    const d = await failed;
    check(d.retryable === true && typeof d.retryAt === 'number', 'follower refreshfailed ' + JSON.stringify(d));
    await settleMany(20);
    check(s.refreshCount === 1, 'the follower hit the failing server too: ' + s.refreshCount);
    check(a.isAuthenticated && b.isAuthenticated, 'a retryable failure ended the session');
  },

  async crossTabLogoutEverywhere(make) {
    const s = install();
    const { a, b } = pair(make);
    const handed = once(b, 'tokenchange');
    await a.login('/auth/login', { method: 'POST' });
    await handed;
    check(b.isAuthenticated, 'no hand-over');
    const got = once(b, 'logout');
    await a.logout();
    check((await got).reason === 'remote', 'reason');
    check(!b.isAuthenticated && b.expiresAt === null, 'the other tab is still logged in');
    check(s.log.filter((e) => e.path === '/auth/logout').length === 1, 'logout posted more than once');
    a.dispose(); b.dispose();
  },

  async crossTabLogoutWinsOverRefreshInFlight(make) {
    const s = install();
    const { a, b } = pair(make);
    const handed = once(b, 'tokenchange');
    await a.login('/auth/login', { method: 'POST' });
    await handed;
    const release = gate(s);
    const rb = b.refresh();
    await until(() => s.refreshCount === 1, 'the refresh call in the other tab');
    const heard = once(b, 'logout');
    await a.logout();
    await heard;
    release();
    check((await rb) === false, 'the refresh in the other tab brought the session back');
    await settleMany(20);
    check(!a.isAuthenticated && !b.isAuthenticated, 'logged back in: a=' + a.isAuthenticated + ' b=' + b.isAuthenticated);
    a.dispose(); b.dispose();
  },

  async crossTabMalformedMessagesIgnored(make) {
    install();
    const { a, crossTab } = pair(make);
    const raw = new BroadcastChannel(crossTab);
    let changes = 0;
    a.events.addEventListener('tokenchange', () => changes++);
    a.events.addEventListener('logout', () => changes++);
    const garbage = ['x', '{}', '{"v":2,"type":"logout","epoch":1}', '{"v":1,"type":"token","epoch":1,"source":"refresh","token":"a b"}',
      '{"v":1,"type":"token","epoch":1,"source":"refresh","token":"abc\\r\\nX: 1"}', 42, null, { v: 1, type: 'logout', epoch: 1 },
      '{"v":1,"type":"logout","epoch":1,"epoch":2}', 'x'.repeat(100000)];
    for (const g of garbage) raw.postMessage(g);
    await settleMany(20);
    check(changes === 0 && !a.isAuthenticated, 'a malformed message was trusted');
    // The wire format, as another tab writes it.
    const t = mint(3600);
    const got = once(a, 'tokenchange');
    raw.postMessage(JSON.stringify({ v: 1, type: 'token', epoch: 1, source: 'refresh', token: t }));
    check((await got).source === 'refresh' && a.isAuthenticated, 'a valid message was not applied');
    const out = new Promise((r) => raw.addEventListener('message', (e) => r(e.data), { once: true }));
    await a.logout();
    const sent = JSON.parse(await out);
    check(sent.v === 1 && sent.type === 'logout' && typeof sent.epoch === 'number', 'logout message ' + JSON.stringify(sent));
    raw.close();
    a.dispose();
  },

  async aFinishedRefreshCallIsNotAbortedAfterwards(make) {
    // Aborting a call whose answer arrived cancels its unread body: browsers then report the request as failed
    // ("canceled" in DevTools, `requestfailed` in Playwright), although the app got its answer.
    const s = install();
    const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
    s.plan.push('ok', '401');
    check((await tm.refresh()) === true, 'the first refresh');
    check((await tm.refresh()) === false, 'a refused refresh resolves false');
    await settleMany(10);
    const calls = s.log.filter((e) => e.path === '/auth/refresh');
    check(calls.length === 2, 'refresh calls ' + calls.length);
    check(calls.every((e) => !e.signal.aborted), 'a finished refresh call was aborted afterwards: ' + calls.map((e) => e.signal.aborted));
  },

  async crossTabWithoutLocksStillWorks(make) {
    const s = install();
    const had = Object.getOwnPropertyDescriptor(Navigator.prototype, 'locks');
    Object.defineProperty(Navigator.prototype, 'locks', { configurable: true, get: () => undefined });
    let pairs;
    try { pairs = pair(make, { debug: true }); } finally { if (had) Object.defineProperty(Navigator.prototype, 'locks', had); }
    const { a, b } = pairs;
    let logouts = 0;
    for (const t of [a, b]) { t.events.addEventListener('logout', () => logouts++); t.events.addEventListener('sessionexpired', () => logouts++); }
    const handed = once(b, 'tokenchange');
    await a.login('/auth/login', { method: 'POST' });
    await handed;
    const [x, y] = await Promise.all([a.refresh(), b.refresh()]);
    check(x && y, 'refresh failed without locks');
    await settleMany(10);
    check(a.isAuthenticated && b.isAuthenticated && logouts === 0, 'logged out without locks');
    check(s.refreshCount >= 1 && s.refreshCount <= 2, 'refresh calls ' + s.refreshCount);
    // A tab that hears another tab announce its call waits for that tab's token instead of calling too.
    const before = s.refreshCount;
    const release = gate(s);
    const ra = a.refresh();
    await until(() => s.refreshCount === before + 1, 'the first tab\'s call');
    await settleMany(10);
    const rb = b.refresh();
    await settleMany(10);
    release();
    check((await ra) === true && (await rb) === true, 'refresh() results');
    check(s.refreshCount === before + 1, 'the second tab called /refresh as well: ' + (s.refreshCount - before));
    a.dispose(); b.dispose();
  },

  async lifecycleEventsRecheck(make) {
    const s = install();
    const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
    tm.setAccessToken(s.valid = mint(3600));
    for (const name of ['online', 'focus']) window.dispatchEvent(new Event(name));
    window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: false }));
    document.dispatchEvent(new Event('visibilitychange'));
    await settleMany(5);
    check(s.refreshCount === 0, 'a fresh token was refreshed on wake');
    // A page restored from the bfcache re-validates its session before using it (C45).
    window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }));
    check((await tm.fetch('/api/a')).status === 200, 'request after bfcache restore');
    check(s.refreshCount === 1 && s.log[0].path === '/auth/refresh' && s.log[1].path === '/api/a', 'no re-validation before the first request');
    tm.dispose();
    window.dispatchEvent(new Event('online'));
    await settleMany(5);
    check(s.refreshCount === 1, 'a disposed manager still listens');
  },

  async c59BaseHrefResolvesLikeFetch(make) {
    // An SPA served with <base href="/">, on a deep route: relative URLs mean what fetch makes of them.
    const s = install();
    const base = document.createElement('base');
    base.href = new URL('/spa-root/', location.href).href;
    document.head.prepend(base);
    try {
      const tm = make({ refreshUrl: 'auth/refresh', logoutUrl: 'auth/logout', crossTab: false });
      tm.setAccessToken(mint(3600));
      check(await tm.refresh(), 'refresh through a relative refreshUrl');
      await tm.logout();
      const paths = s.log.map((e) => e.path);
      check(paths.includes('/spa-root/auth/refresh') && paths.includes('/spa-root/auth/logout'), 'resolved against the document base URL: ' + paths.join(', '));
    } finally {
      base.remove();
    }
  },

  async c60ReloginAbortsThePreviousSessionsRefreshCall(make) {
    const { s, tm } = await loggedIn(make);
    const release = gate(s);
    const r = tm.refresh();
    await until(() => s.refreshCount === 1, 'the refresh call of the first session');
    const call = s.log.find((e) => e.path === '/auth/refresh');
    check(!call.signal.aborted, 'aborted too early');
    const res = await tm.login('/auth/login', { method: 'POST' });
    check(res.ok, 'second login');
    const second = s.valid;
    check(call.signal.aborted, 'the first session\'s refresh call was not aborted once the new login succeeded: its Set-Cookie would be stored over the new session\'s');
    release();
    await r;
    await settleMany(10);
    await tm.fetch('/api/a');
    check(api(s)[0].auth === 'Bearer ' + second, 'the first session\'s refresh answer replaced the new session\'s token');
  },

  async c60FailedLoginKeepsTheOldSession(make) {
    const { s, tm } = await loggedIn(make);
    const release = gate(s);
    const r = tm.refresh();
    await until(() => s.refreshCount === 1, 'the refresh call');
    const call = s.log.find((e) => e.path === '/auth/refresh');
    s.loginBody = { error: 'no token here' };
    await expectError(tm.login('/auth/login', { method: 'POST' }), 'BAD_RESPONSE', 'login without a token');
    check(!call.signal.aborted, 'a failed login aborted the old session\'s refresh');
    release();
    check((await r) === true, 'the old session refreshed');
  },

  async c61RefreshStatusClasses(make) {
    // A refreshUrl answering 404 (misconfigured) ends the session at once: one call, sessionexpired, not
    // authenticated; likewise 405, 410 and a redirect. A 503 keeps retrying.
    for (const step of ['404', '405', '410', 'redirect']) {
      const s = install();
      const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
      tm.setAccessToken(mint(3600));
      const failed = []; let expired = 0;
      tm.events.addEventListener('refreshfailed', (e) => failed.push(e.detail));
      tm.events.addEventListener('sessionexpired', () => expired++);
      s.plan = [step];
      check((await tm.refresh()) === false, step + ': refresh() resolves false');
      await settleMany(20);
      check(s.refreshCount === 1, step + ': retried ' + s.refreshCount);
      check(failed.length === 1 && failed[0].retryable === false && failed[0].hadToken === true, step + ': ' + JSON.stringify(failed));
      check(failed[0].status === (step === 'redirect' ? null : Number(step)), step + ': status ' + failed[0].status);
      check(expired === 1 && !tm.isAuthenticated, step + ': session not ended');
      tm.dispose();
    }
    const s = install();
    const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
    tm.setAccessToken(mint(3600));
    const failed = [];
    tm.events.addEventListener('refreshfailed', (e) => failed.push(e.detail));
    s.plan = ['503'];
    await tm.refresh();
    check(failed.length === 1 && failed[0].retryable === true && tm.isAuthenticated, '503 is retryable and keeps a valid token');
    // An expired token that cannot be renewed is held (for the 401 path) but does not count as authenticated.
    tm.setAccessToken(mint(-10));
    check(!tm.isAuthenticated, 'an expired token counts as authenticated');
  },

  async c61ColdStartTellsNoSessionFromExpiredSession(make) {
    const s = install();
    const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
    const failed = []; let expired = 0;
    tm.events.addEventListener('refreshfailed', (e) => failed.push(e.detail));
    tm.events.addEventListener('sessionexpired', () => expired++);
    s.plan = ['401'];
    check((await tm.refresh()) === false, 'no session to restore');
    check(failed.length === 1 && failed[0].hadToken === false && expired === 0, 'a visitor who never signed in: ' + JSON.stringify(failed));
  },

  async c61DebugSaysWhyTheBearerWasWithheld(make) {
    const s = install();
    const lines = [];
    const original = console.debug;
    console.debug = (...args) => lines.push(args.join(' '));
    try {
      const tm = make({ refreshUrl: '/auth/refresh', crossTab: false, debug: true });
      tm.setAccessToken(mint(3600));
      await tm.fetch('https://other.example/open/1');
      await tm.fetch('https://other.example/open/2');
      await tm.fetch('https://third.example/open');
    } finally {
      console.debug = original;
    }
    const withheld = lines.filter((l) => /withheld/.test(l));
    check(withheld.length === 2 && withheld[0].includes('https://other.example') && withheld[1].includes('https://third.example'),
      'once per origin: ' + JSON.stringify(withheld));
    check(!lines.some((l) => l.includes(s.log[0].auth || 'no-token-sent')), 'a token in the debug output');
  },

  // DPoP (RFC 9449): with a keyring (the package entry's, faked here: it records and marks what it sends), a
  // DPoP-bound token goes out only through it, as `DPoP <token>` with a proof; login, refresh and logout go
  // through it without a token (a proof of the key); after logout the key is reset; a retry after 401 sends the
  // new token through it with the body intact; requests to other origins and bearer tokens do not use it.
  async dpopTokensGoOnlyThroughTheKeyring(make) {
    const s = install();
    s.tokenType = 'DPoP';
    const ring = { calls: [], resets: 0, n: 0 };
    ring.fetch = (platform, input, init, token, retry) => {
      const req = new Request(input, init);
      ring.calls.push({ path: new URL(req.url).pathname, token, retry });
      req.headers.set('dpop', 'proof-' + (++ring.n));
      if (token !== null) req.headers.set('authorization', 'DPoP ' + token);
      return platform.call(globalThis, req);
    };
    ring.reset = () => { ring.resets++; return Promise.resolve(); };
    const tm = make({ refreshUrl: '/auth/refresh', logoutUrl: '/auth/logout', crossTab: false }, ring);
    const login = await tm.login('/auth/login', { method: 'POST', body: '{"u":"a"}' });
    check(login.ok && tm.isAuthenticated, 'DPoP login stored');
    check(ring.calls.length === 1 && ring.calls[0].path === '/auth/login' && ring.calls[0].token === null && ring.calls[0].retry,
      'login proves the key: ' + JSON.stringify(ring.calls));
    const first = s.valid;
    const r = await tm.fetch('/api/a', { method: 'POST', body: 'payload' });
    check(r.status === 200, 'API with DPoP: ' + r.status);
    check(ring.calls[1].path === '/api/a' && ring.calls[1].token === first && ring.calls[1].retry, 'API through the keyring with the token');
    check(api(s).every((e) => e.auth === 'DPoP ' + first && e.dpop), 'never a bearer: ' + JSON.stringify(api(s).map((e) => e.auth)));
    await tm.fetch('https://other.example/open');
    const other = s.log[s.log.length - 1];
    check(other.auth === null && other.dpop === null && ring.calls.length === 2, 'another origin gets neither token nor proof');
    // The server stops taking the token: one refresh through the keyring, one retry with the new token and the body.
    s.valid = 'revoked';
    const again = await tm.fetch('/api/b', { method: 'POST', body: 'second' });
    check(again.status === 200 && (await again.json()).body === 'second', 'retried with the body intact');
    const paths = ring.calls.slice(2).map((c) => c.path + ':' + (c.token === null ? 'key' : c.token === s.valid ? 'new' : 'old'));
    check(JSON.stringify(paths) === JSON.stringify(['/api/b:old', '/auth/refresh:key', '/api/b:new']), 'refresh and retry through the keyring: ' + paths);
    check(s.log.filter((e) => e.path === '/auth/refresh').every((e) => e.dpop && e.auth === null), 'refresh: a proof, no token');
    // A keepalive request is not retried: its proof is made, and it is sent once.
    await tm.fetch('/api/k', { keepalive: true });
    check(ring.calls[ring.calls.length - 1].path === '/api/k' && ring.calls[ring.calls.length - 1].retry === false, 'keepalive: no resend');
    await tm.logout();
    check(ring.calls[ring.calls.length - 1].path === '/auth/logout' && ring.calls[ring.calls.length - 1].token === null, 'logout proves the key');
    check(ring.resets === 1, 'the key is reset after logout: ' + ring.resets);
    tm.dispose();

    // The server answers Bearer to a manager with a keyring: API requests carry the bearer, refreshes a proof.
    const b = install();
    const ring2 = { calls: [], fetch: ring.fetch, reset: ring.reset };
    ring.calls = ring2.calls;
    const tm2 = make({ refreshUrl: '/auth/refresh', crossTab: false }, ring);
    await tm2.login('/auth/login', { method: 'POST', body: '{}' });
    await tm2.fetch('/api/c');
    check(api(b)[0].auth === 'Bearer ' + b.valid && api(b)[0].dpop === null, 'a bearer token is sent as before');
    check(ring.calls.map((c) => c.path).join() === '/auth/login', 'only the login went through the keyring');
    tm2.dispose();

    // Without a keyring a DPoP answer cannot be used: refused, naming the option.
    const n = install();
    n.tokenType = 'DPoP';
    const tm3 = make({ refreshUrl: '/auth/refresh', crossTab: false });
    const e = await expectError(tm3.login('/auth/login', { method: 'POST', body: '{}' }), 'BAD_RESPONSE', 'DPoP without keyring');
    check(e.message.includes('dpop option'), e.message);
    check(!tm3.isAuthenticated, 'nothing stored');
    tm3.dispose();
  },

  async noCorsRequestNeverCausesARefresh(make) {
    // A no-cors request cannot carry Authorization: a 401 answer to it must not look like an expiry.
    const { s, tm } = await loggedIn(make);
    const res = await tm.fetch('/api/a', { mode: 'no-cors' });
    check(res.status === 401, 'the scripted server answers the bearer-less request with 401');
    await settleMany(10);
    check(s.refreshCount === 0, 'a no-cors 401 caused a refresh');
    check(api(s).length === 1 && api(s)[0].auth === null, 'resent or sent with a bearer');
    check((await tm.fetch('/api/a')).status === 200, 'later requests work');
  },

  async legacyTokenIsSentThenADeprecationSignalExchangesItOnce(make) {
    const s = install();
    s.legacyPhase = 1;
    const tm = make({ refreshUrl: '/auth/refresh', legacyUpgradeUrl: '/auth/legacy/upgrade', legacyToken: LEGACY, crossTab: false });
    check(tm.legacyUpgrade === 'held', 'held: ' + tm.legacyUpgrade);
    const sources = [];
    tm.events.addEventListener('tokenchange', (ev) => sources.push(ev.detail.source));
    const first = await tm.fetch('/api/a');
    check(first.status === 200 && api(s)[0].auth === 'Bearer ' + LEGACY, 'phase 1 accepts the legacy token');
    await until(() => tm.legacyUpgrade === 'upgraded', 'the exchange');
    const up = s.log.filter((e) => e.path === '/auth/legacy/upgrade');
    check(up.length === 1 && up[0].method === 'POST' && up[0].auth === 'Bearer ' + LEGACY, 'one exchange with the legacy bearer');
    check(up[0].credentials === 'include' && up[0].xrw && up[0].redirect === 'manual', 'the exchange is sent like a refresh');
    check(sources.join() === 'legacy', 'tokenchange source: ' + sources.join());
    for (let i = 0; i < 3; i++) check((await tm.fetch('/api/a')).status === 200, 'new token works');
    check(api(s).slice(1).every((e) => e.auth === 'Bearer ' + s.valid), 'the legacy token is no longer sent');
    check(s.upgradeCount === 1 && s.refreshCount === 0, 'upgrades ' + s.upgradeCount + ', refreshes ' + s.refreshCount);
  },

  async aPhase2RefusalExchangesOnceAndEveryRequestSucceeds(make) {
    const s = install();
    s.legacyPhase = 2;
    const tm = make({ refreshUrl: '/auth/refresh', legacyUpgradeUrl: '/auth/legacy/upgrade', legacyToken: LEGACY, crossTab: false });
    const answers = await Promise.all([tm.fetch('/api/a'), tm.fetch('/api/b'), tm.fetch('/api/c', { method: 'POST', body: 'x' })]);
    check(answers.every((r) => r.status === 200), 'statuses ' + answers.map((r) => r.status));
    check(s.upgradeCount === 1, 'one exchange for three 401s: ' + s.upgradeCount);
    check(tm.legacyUpgrade === 'upgraded' && tm.isAuthenticated, 'state ' + tm.legacyUpgrade);
    check(s.refreshCount === 0, 'no cookie refresh');
  },

  async aRetiredLegacyTokenFailsOnceAndNeverLoops(make) {
    const s = install();
    s.legacyPhase = 3;
    const tm = make({ refreshUrl: '/auth/refresh', legacyUpgradeUrl: '/auth/legacy/upgrade', legacyToken: LEGACY, crossTab: false });
    const failed = [];
    tm.events.addEventListener('legacyupgradefailed', (ev) => failed.push(ev.detail));
    check((await tm.fetch('/api/a')).status === 401, 'the 401 goes to the caller');
    check(failed.length === 1 && failed[0].reason === 'retired' && failed[0].status === 401 && failed[0].retryable === false,
      'event ' + JSON.stringify(failed));
    check(tm.legacyUpgrade === 'failed', 'state ' + tm.legacyUpgrade);
    for (let i = 0; i < 3; i++) check((await tm.fetch('/api/a')).status === 401, 'still 401');
    await settleMany(20);
    check(s.upgradeCount === 1 && s.refreshCount === 0, 'no loop: upgrades ' + s.upgradeCount + ', refreshes ' + s.refreshCount);
    check(api(s).slice(1).every((e) => e.auth === null), 'the dropped legacy token is not sent again');
    check(failed.length === 1, 'one event');
  },

  async upgradeLegacyTokenIsSingleFlightAndReportsFailures(make) {
    const s = install();
    expectThrow(() => make({ refreshUrl: '/r', legacyToken: LEGACY, crossTab: false }), 'INVALID_OPTION', 'legacyUpgradeUrl', 'legacyToken alone');
    expectThrow(() => make({ refreshUrl: '/r', legacyUpgradeUrl: '/u', legacyToken: 'a b', crossTab: false }), 'INVALID_OPTION', 'legacyToken', 'bad legacyToken');
    const plain = make({ refreshUrl: '/auth/refresh', crossTab: false });
    await expectError(plain.upgradeLegacyToken(LEGACY), 'INVALID_OPTION', 'without legacyUpgradeUrl');
    const tm = make({ refreshUrl: '/auth/refresh', legacyUpgradeUrl: '/auth/legacy/upgrade', crossTab: false });
    check(tm.legacyUpgrade === 'none', 'none');
    await expectError(tm.upgradeLegacyToken(), 'INVALID_TOKEN', 'nothing to upgrade');
    await expectError(tm.upgradeLegacyToken('a\nb'), 'INVALID_TOKEN', 'malformed');
    const [a, b] = await Promise.all([tm.upgradeLegacyToken(LEGACY), tm.upgradeLegacyToken(LEGACY)]);
    check(a === true && b === true && s.upgradeCount === 1, 'one exchange for two calls: ' + s.upgradeCount);
    check((await tm.fetch('/api/a')).status === 200, 'the new session works');
    // The same token again: the server refuses the replay.
    const e = await expectError(tm.upgradeLegacyToken(LEGACY), 'LEGACY_UPGRADE_FAILED', 'replay');
    check(e.status === 401 && e.reason === 'replayed', 'replay: ' + e.status + ' ' + e.reason);
    // A network failure keeps the token; the next explicit call succeeds.
    const t = install();
    const tm2 = make({ refreshUrl: '/auth/refresh', legacyUpgradeUrl: '/auth/legacy/upgrade', crossTab: false });
    t.legacyPlan = ['network'];
    const n = await expectError(tm2.upgradeLegacyToken(LEGACY), 'LEGACY_UPGRADE_FAILED', 'network');
    check(n.status === null && n.reason === 'unavailable' && tm2.legacyUpgrade === 'held', 'network: ' + n.reason + ' ' + tm2.legacyUpgrade);
    check((await tm2.upgradeLegacyToken()) === true && tm2.legacyUpgrade === 'upgraded', 'retried by hand');
  },

  async requestPropertiesPassThroughLikeFetch(make) {
    // Whatever the app sets on a request means what it means to fetch, on the first send and on the retry.
    const { s, tm } = await loggedIn(make);
    const init = { method: 'PUT', body: 'x', credentials: 'omit', cache: 'no-cache', redirect: 'follow', integrity: 'sha256-abc',
      referrer: '', referrerPolicy: 'no-referrer', mode: 'same-origin' };
    const expected = new Request('/api/a', init);
    const keys = ['method', 'credentials', 'cache', 'redirect', 'integrity', 'referrer', 'referrerPolicy', 'mode', 'keepalive'];
    s.valid = 'rotated'; // the next request gets a 401: the retry must carry the same properties
    await tm.fetch('/api/a', init);
    const sent = api(s);
    check(sent.length === 2, 'the 401 was retried once: ' + sent.length);
    for (const e of sent) {
      for (const k of keys) check(e[k] === expected[k], k + ': sent ' + e[k] + ', fetch would send ' + expected[k]);
      check(e.body === 'x', 'body');
    }
  },

  async bodyChunksFromAnotherRealmAreRead(make) {
    // Response bodies whose chunks are another realm's Uint8Array (jsdom's window next to Node's fetch, an
    // iframe's stream) are bytes all the same.
    const s = install();
    const frame = document.createElement('iframe');
    document.body.append(frame);
    try {
      const Foreign = frame.contentWindow.Uint8Array;
      check(!(new Foreign(1) instanceof Uint8Array), 'the iframe shares the Uint8Array of this realm');
      const token = mint(3600);
      const bytes = new TextEncoder().encode(JSON.stringify({ accessToken: token, expiresIn: 3600 }));
      globalThis.fetch = async () => new Response(new ReadableStream({
        start(c) { c.enqueue(new Foreign(bytes.slice(0, 10))); c.enqueue(new Foreign(bytes.slice(10))); c.close(); },
      }), { headers: { 'content-type': 'application/json' } });
      const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
      const res = await tm.login('/auth/login', { method: 'POST' });
      check(res.ok && tm.isAuthenticated && tm.expiresAt !== null, 'the answer was not read');
      void s;
    } finally {
      frame.remove();
    }
  },
});

export function run(name, rawMake) {
  const f = scenarios[name];
  if (!f) return Promise.reject(new Error('no scenario ' + name));
  // Every manager a scenario creates is disposed afterwards, so that no listener outlives its test.
  const made = [];
  const make = (o, keyring) => { const tm = rawMake(o, keyring); made.push(tm); return tm; };
  return f(make).then(() => 'ok', (e) => { throw (e instanceof Error ? e.message + '\n' + e.stack : String(e)); })
    .finally(() => {
      // A manager a scenario freed (wasm-bindgen zeroes its pointer) has nothing left to dispose.
      for (const tm of made) if (tm.__wbg_ptr !== 0) tm.dispose();
      if (globalThis.__fake && globalThis.__fake.gate) globalThis.__fake.gate = null;
      globalThis.fetch = realFetch;
    });
}
"#)]
extern "C" {
    fn run(name: &str, make: &js_sys::Function) -> js_sys::Promise;
}

async fn scenario(name: &str) {
    // `make(options, keyring)`: a scenario may hand a DPoP keyring (as the package entry does with `dpop`).
    let make = Closure::<dyn Fn(JsValue, JsValue) -> Result<JsValue, JsValue>>::new(
        |opts: JsValue, keyring: JsValue| {
            TokenManager::new(opts.unchecked_into(), None, None, keyring.dyn_into().ok())
                .map(JsValue::from)
        },
    );
    let result = JsFuture::from(run(name, make.as_ref().unchecked_ref())).await;
    if let Err(e) = result {
        panic!(
            "{name}: {}",
            e.as_string().unwrap_or_else(|| format!("{e:?}"))
        );
    }
}

#[wasm_bindgen_test]
async fn a_finished_refresh_call_is_not_aborted_afterwards() {
    scenario("aFinishedRefreshCallIsNotAbortedAfterwards").await;
}

#[wasm_bindgen_test]
async fn legacy_token_sent_then_deprecation_exchanges_once() {
    scenario("legacyTokenIsSentThenADeprecationSignalExchangesItOnce").await;
}

#[wasm_bindgen_test]
async fn legacy_phase_2_refusal_exchanges_once_and_requests_succeed() {
    scenario("aPhase2RefusalExchangesOnceAndEveryRequestSucceeds").await;
}

#[wasm_bindgen_test]
async fn legacy_retired_token_fails_once_and_never_loops() {
    scenario("aRetiredLegacyTokenFailsOnceAndNeverLoops").await;
}

#[wasm_bindgen_test]
async fn upgrade_legacy_token_is_single_flight_and_reports_failures() {
    scenario("upgradeLegacyTokenIsSingleFlightAndReportsFailures").await;
}

#[wasm_bindgen_test]
async fn c49_c50_bearer_only_on_allowed_origins() {
    scenario("bearerOnlyOnAllowedOrigins").await;
}

#[wasm_bindgen_test]
async fn c52_own_authorization_passed_through() {
    scenario("ownAuthorizationPassedThrough").await;
}

#[wasm_bindgen_test]
async fn c53_retry_replays_json_text_formdata_blob_params() {
    scenario("retryReplaysBodies").await;
}

#[wasm_bindgen_test]
async fn c54_stream_body_not_retried() {
    scenario("streamBodyNotRetried").await;
}

#[wasm_bindgen_test]
async fn c40_concurrent_callers_share_one_refresh() {
    scenario("concurrentCallersShareOneRefresh").await;
}

#[wasm_bindgen_test]
async fn c28_refresh_401_ends_session_once() {
    scenario("refresh401EndsSession").await;
}

#[wasm_bindgen_test]
async fn c24_c26_retryable_failure_keeps_session() {
    scenario("retryableFailureKeepsSession").await;
}

#[wasm_bindgen_test]
async fn refresh_call_shape_and_tokenchange() {
    scenario("refreshCallShapeAndEvents").await;
}

#[wasm_bindgen_test]
async fn s15_s16_refresh_headers_default_and_replaced() {
    scenario("refreshHeadersDefaultAndReplaced").await;
}

#[wasm_bindgen_test]
async fn c23_never_ending_body_capped_and_cancelled() {
    scenario("neverEndingBodyIsCapped").await;
}

#[wasm_bindgen_test]
async fn session_restore_once() {
    scenario("sessionRestore").await;
}

#[wasm_bindgen_test]
async fn logout_clears_and_fires() {
    scenario("logoutClearsAndFires").await;
}

#[wasm_bindgen_test]
async fn c42_s16_logout_failure_rejects_logout_failed_but_wins_locally() {
    scenario("logoutFailureRejectsButWinsLocally").await;
}

#[wasm_bindgen_test]
async fn c42_logout_during_refresh_wins() {
    scenario("logoutDuringRefreshWins").await;
}

#[wasm_bindgen_test]
async fn detached_fetch_works() {
    scenario("detachedFetch").await;
}

#[wasm_bindgen_test]
async fn c41_listener_reentry_1000_interleaved_calls() {
    scenario("listenerReentry").await;
}

#[wasm_bindgen_test]
async fn dispose_rejects_with_disposed() {
    scenario("disposeRejects").await;
}

#[wasm_bindgen_test]
async fn dispose_releases_every_timer_listener_and_the_channel() {
    scenario("disposalDispose").await;
}

#[wasm_bindgen_test]
async fn free_releases_every_timer_listener_and_the_channel() {
    scenario("disposalFree").await;
}

#[wasm_bindgen_test]
async fn symbol_dispose_releases_every_timer_listener_and_the_channel() {
    scenario("disposalSymbolDispose").await;
}

#[wasm_bindgen_test]
async fn bad_options_throw_naming_the_option() {
    scenario("badOptionsThrowNamingTheOption").await;
}

#[wasm_bindgen_test]
async fn c15_c16_set_access_token_validates() {
    scenario("setAccessTokenAndErrors").await;
}

#[wasm_bindgen_test]
async fn login_stores_token_and_resolves_response() {
    scenario("loginStoresTokenAndResolvesResponse").await;
}

#[wasm_bindgen_test]
async fn c58_opaque_login_answer_stored_and_sent() {
    scenario("opaqueLoginAnswerStoredAndSent").await;
}

#[wasm_bindgen_test]
async fn c58_jwt_session_meeting_opaque_refresh_answers_stays_alive() {
    scenario("jwtSessionMeetsOpaqueRefreshAnswers").await;
}

#[wasm_bindgen_test]
async fn c58_set_access_token_accepts_opaque() {
    scenario("setAccessTokenAcceptsOpaque").await;
}

#[wasm_bindgen_test]
async fn c62_expires_in_from_the_reference_server_shape_schedules_renewal() {
    scenario("expiresInSchedulesRenewal").await;
}

#[wasm_bindgen_test]
async fn c58_oauth_answer_shapes_read_and_other_token_types_refused() {
    scenario("oauthAnswerShapes").await;
}

#[wasm_bindgen_test]
async fn fetch_rejects_only_where_fetch_would() {
    scenario("fetchRejectsOnlyWhereFetchWould").await;
}

#[wasm_bindgen_test]
async fn crosstab_login_reaches_other_tabs() {
    scenario("crossTabLoginReachesOtherTabs").await;
}

#[wasm_bindgen_test]
async fn f3_crosstab_one_refresh_for_all_tabs() {
    scenario("crossTabOneRefreshForAllTabs").await;
}

#[wasm_bindgen_test]
async fn crosstab_logout_everywhere() {
    scenario("crossTabLogoutEverywhere").await;
}

#[wasm_bindgen_test]
async fn f12_crosstab_logout_wins_over_refresh_in_flight() {
    scenario("crossTabLogoutWinsOverRefreshInFlight").await;
}

#[wasm_bindgen_test]
async fn crosstab_malformed_messages_ignored() {
    scenario("crossTabMalformedMessagesIgnored").await;
}

#[wasm_bindgen_test]
async fn f4_crosstab_without_locks_still_works() {
    scenario("crossTabWithoutLocksStillWorks").await;
}

#[wasm_bindgen_test]
async fn c45_c46_lifecycle_events_recheck() {
    scenario("lifecycleEventsRecheck").await;
}

#[wasm_bindgen_test]
async fn c44_abort_while_waiting_for_refresh() {
    scenario("abortWhileWaitingForRefresh").await;
}

#[wasm_bindgen_test]
async fn c57_keepalive_never_waits() {
    scenario("keepaliveNeverWaits").await;
}

#[wasm_bindgen_test]
async fn f6_crosstab_failure_backs_off_every_tab() {
    scenario("crossTabFailureBacksOffEveryTab").await;
}

#[wasm_bindgen_test]
async fn c36_c37_forbidden_and_other_origin_401_pass_through() {
    scenario("forbiddenAndOtherOrigin401PassThrough").await;
}

#[wasm_bindgen_test]
async fn c59_base_href_resolves_like_fetch() {
    scenario("c59BaseHrefResolvesLikeFetch").await;
}

#[wasm_bindgen_test]
async fn c60_relogin_aborts_the_previous_sessions_refresh_call() {
    scenario("c60ReloginAbortsThePreviousSessionsRefreshCall").await;
}

#[wasm_bindgen_test]
async fn c60_failed_login_keeps_the_old_session() {
    scenario("c60FailedLoginKeepsTheOldSession").await;
}

#[wasm_bindgen_test]
async fn c61_refresh_status_classes() {
    scenario("c61RefreshStatusClasses").await;
}

#[wasm_bindgen_test]
async fn c61_cold_start_tells_no_session_from_expired_session() {
    scenario("c61ColdStartTellsNoSessionFromExpiredSession").await;
}

#[wasm_bindgen_test]
async fn c61_debug_says_why_the_bearer_was_withheld() {
    scenario("c61DebugSaysWhyTheBearerWasWithheld").await;
}

#[wasm_bindgen_test]
async fn dpop_tokens_go_only_through_the_keyring() {
    scenario("dpopTokensGoOnlyThroughTheKeyring").await;
}

#[wasm_bindgen_test]
async fn no_cors_request_never_causes_a_refresh() {
    scenario("noCorsRequestNeverCausesARefresh").await;
}

#[wasm_bindgen_test]
async fn c59_request_properties_pass_through_like_fetch() {
    scenario("requestPropertiesPassThroughLikeFetch").await;
}

#[wasm_bindgen_test]
async fn body_chunks_from_another_realm_are_read() {
    scenario("bodyChunksFromAnotherRealmAreRead").await;
}

/// `new BroadcastChannel(name)`, and whether posting on it throws (it does once the channel is closed).
fn open_channel(name: &str) -> JsValue {
    let ctor: js_sys::Function =
        js_sys::Reflect::get(&js_sys::global(), &"BroadcastChannel".into())
            .unwrap()
            .unchecked_into();
    js_sys::Reflect::construct(&ctor, &js_sys::Array::of1(&name.into())).unwrap()
}

fn is_closed(channel: &JsValue) -> bool {
    let post: js_sys::Function = js_sys::Reflect::get(channel, &"postMessage".into())
        .unwrap()
        .unchecked_into();
    post.call1(channel, &"{}".into()).is_err()
}

fn early_manager(cross_tab: &str, handed: &JsValue) -> TokenManager {
    let opts = js_sys::Object::new();
    js_sys::Reflect::set(&opts, &"refreshUrl".into(), &"/auth/refresh".into()).unwrap();
    js_sys::Reflect::set(&opts, &"crossTab".into(), &cross_tab.into()).unwrap();
    TokenManager::new(
        opts.unchecked_into(),
        None,
        Some(handed.clone().unchecked_into()),
        None,
    )
    .unwrap()
}

/// The package entry opens the channel at construction and hands it over with the messages it kept: the manager
/// keeps the channel that its options name (and applies the kept messages through the live path), closes it when
/// disposed, and closes one of another name (its kept messages then belong to no channel of this manager).
#[wasm_bindgen_test]
fn a_handed_over_channel_is_kept_only_when_the_options_name_it() {
    let token_message = JsValue::from_str(
        r#"{"v":1,"type":"token","epoch":1,"source":"login","token":"an-opaque-token"}"#,
    );
    let right = open_channel("handed-right");
    let tm = early_manager("handed-right", &right);
    assert!(
        !is_closed(&right),
        "the channel the options name is kept open"
    );
    tm.receive_early(js_sys::Date::now(), token_message.clone());
    assert!(tm.is_authenticated(), "a kept token message is applied");
    tm.receive_early(
        js_sys::Date::now(),
        JsValue::from_str(r#"{"v":2,"type":"logout","epoch":9}"#),
    );
    assert!(
        tm.is_authenticated(),
        "a malformed one is dropped, as a live one is"
    );
    tm.dispose();
    assert!(
        is_closed(&right),
        "dispose() closes the channel it took over"
    );

    let wrong = open_channel("handed-wrong");
    let tm = early_manager("handed-elsewhere", &wrong);
    assert!(is_closed(&wrong), "a channel of another name is closed");
    tm.receive_early(js_sys::Date::now(), token_message);
    assert!(!tm.is_authenticated(), "its kept messages are not applied");
    tm.dispose();
}
