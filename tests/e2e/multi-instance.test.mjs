// Two auth-server processes on two loopback ports sharing one Redis (issue 12 item 9): the client's requests
// alternate between the instances, as behind a round-robin load balancer. Real processes: redis-server
// (tests/e2e/support/redis.mjs) and target/debug/auth-server (built by `cargo test --workspace`).
//
// The client here is a small cookie-carrying fetch loop that plays the load balancer too (a request whose
// instance is gone is sent to the other, as a balancer's retry on connection failure does); the browser
// package's own behaviour is covered by the other e2e files against one instance.
//
// The separate API (target/debug/demo-api, behind the token-verifier library) verifies access tokens through the
// first instance's JWKS and asks its POST /auth/introspect whether a session is still live: the logout case
// polls it too (GET /api/me with the bearer must turn 401).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { ROOT, startAuthServer } from './support/server.mjs';
import { startRedis } from './support/redis.mjs';
import { killGroup, launch } from './support/processes.mjs';

const API_BIN = process.env.WTM_DEMO_API || path.join(ROOT, 'target/debug/demo-api');

const ORIGIN = 'http://app.test'; // the page's origin, the same for both instances behind the balancer
let redis;
let kekDir;
let kekFile;
const instances = [];
/** Base URLs of APIs that verify through the JWKS (the demo-api process above). */
const apis = [];
let secretFile;
let apiProcess;

/** Starts demo-api against `auth`'s JWKS and introspection; resolves with its base URL once it listens. */
async function startApi(auth) {
  apiProcess = launch(API_BIN, [
    '--addr', '127.0.0.1:0', '--jwks-url', `${auth.url}/.well-known/jwks.json`,
    '--introspection-url', `${auth.url}/auth/introspect`, '--introspection-secret-file', secretFile, '--log', 'warn',
  ]);
  for (let i = 0; i < 300; i += 1) { // bounded: 300 polls 50 ms apart
    const m = /listening on (http:\/\/\S+)/.exec(apiProcess.output());
    if (m) return m[1];
    if (apiProcess.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`demo-api did not start:\n${apiProcess.output()}`);
}

// --store-timeout-ms 5000: the debug build signs ES256 slowly, and 50 parallel refreshes on 2 cores can keep a Redis
// answer waiting past the 1 s default (the request then fails closed with 503, as it must); this file tests the
// shared state, and server/tests/multi_instance.rs the deadline.
async function startInstance() {
  const s = await startAuthServer({
    www: false, pkg: false, demo: false, accessTtl: 60,
    args: ['--store', redis.url, '--key-encryption-key-file', kekFile, '--allowed-origin', ORIGIN, '--store-timeout-ms', '5000',
      '--introspection-secret-file', secretFile],
  });
  return s;
}

before(async () => {
  redis = await startRedis();
  kekDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wtm-kek-'));
  kekFile = path.join(kekDir, 'kek');
  fs.writeFileSync(kekFile, crypto.randomBytes(32).toString('base64'), { mode: 0o600 });
  secretFile = path.join(kekDir, 'introspection-secret');
  fs.writeFileSync(secretFile, crypto.randomBytes(32).toString('base64url'), { mode: 0o600 });
  instances.push(await startInstance(), await startInstance());
  apis.push(await startApi(instances[0]));
});

after(async () => {
  if (apiProcess) { killGroup(apiProcess.child, 'SIGTERM'); await apiProcess.exited; }
  for (const s of instances) await s.stop();
  await redis?.stop();
  if (kekDir) fs.rmSync(kekDir, { recursive: true, force: true });
});

/** The refresh cookie (`name=value`) a response set, or null. */
function cookieOf(res) {
  const line = res.headers.getSetCookie().find((c) => /;\s*Path=\/auth/i.test(c) && !/Max-Age=0/i.test(c));
  return line ? line.split(';')[0] : null;
}

const authHeaders = (cookie) => ({ 'x-requested-with': 'fetch', origin: ORIGIN, ...(cookie ? { cookie } : {}) });

async function login(s) {
  const res = await fetch(`${s.url}/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json', origin: ORIGIN },
    body: JSON.stringify({ username: 'demo', password: 'demo' }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return { at: (await res.json()).accessToken, cookie: cookieOf(res) };
}

async function refresh(s, cookie) {
  const res = await fetch(`${s.url}/auth/refresh`, { method: 'POST', headers: authHeaders(cookie) });
  const body = res.status === 200 ? await res.json() : await res.text();
  return { status: res.status, at: body.accessToken, cookie: cookieOf(res) };
}

async function me(base, at) {
  const res = await fetch(`${base}/api/me`, { headers: { authorization: `Bearer ${at}` } });
  await res.arrayBuffer();
  return res.status;
}

/** Polls until `fn()` resolves true: at most `tries` times, `everyMs` apart. Resolves whether it did. */
async function eventually(fn, { tries = 40, everyMs = 25 } = {}) {
  for (let i = 0; i < tries; i += 1) {
    if (await fn()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return false;
}

test('one instance rotates, the other detects the reuse of the rotated token and revokes the session', async () => {
  const [a, b] = instances;
  const l = await login(a);
  const r1 = await refresh(b, l.cookie);
  assert.equal(r1.status, 200);
  assert.notEqual(r1.cookie, l.cookie);
  const r2 = await refresh(a, r1.cookie);
  assert.equal(r2.status, 200);
  assert.equal(await me(b.url, r2.at), 200, 'a token minted by A is accepted by B');
  // The grandparent (older than the immediate parent): reuse, whatever the grace window.
  const reuse = await refresh(b, l.cookie);
  assert.equal(reuse.status, 401);
  for (const s of [a, b]) {
    assert.equal(await me(s.url, r2.at), 401, `the session is revoked on ${s.url}`);
    assert.equal((await refresh(s, r2.cookie)).status, 401);
  }
});

test('logout on one instance: the session\'s access tokens are rejected by the other and by the API that verifies through the JWKS', async () => {
  const [a, b] = instances;
  const l = await login(b);
  for (const base of [a.url, ...apis]) assert.equal(await me(base, l.at), 200, `${base} accepts the token before the logout`);
  const res = await fetch(`${a.url}/auth/logout`, { method: 'POST', headers: authHeaders(l.cookie) });
  assert.equal(res.status, 200);
  for (const base of [b.url, ...apis]) {
    assert.ok(await eventually(async () => (await me(base, l.at)) === 401), `${base} still accepts the token`);
  }
});

test('50 parallel refreshes of one token spread over both instances mint exactly one child', async () => {
  const [a, b] = instances;
  const l = await login(a);
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => refresh(i % 2 ? b : a, l.cookie)));
  assert.deepEqual(answers.map((r) => r.status), Array(50).fill(200), 'every one is answered (the rest by the grace rule)');
  const children = new Set(answers.map((r) => r.cookie));
  assert.equal(children.size, 1, `children minted: ${[...children].join(', ')}`);
  const [child] = children;
  assert.equal((await refresh(b, child)).status, 200, 'the one child is live');
});

test('one instance killed mid-run: the client carries on through the other with no lost request', async () => {
  const [a, b] = instances;
  let { at, cookie } = await login(a);
  const ROUNDS = 60;
  const results = [];
  let failovers = 0;
  // One request to `preferred`, sent to the other instance when the preferred one is gone (connection error).
  async function send(fn, preferred) {
    const order = preferred === a ? [a, b] : [b, a];
    for (const s of order) {
      try { return await fn(s); } catch { failovers += 1; }
    }
    throw new Error('both instances are gone');
  }
  for (let i = 0; i < ROUNDS; i += 1) {
    const preferred = i % 2 ? b : a;
    if (i === ROUNDS / 2) await a.kill(); // mid-run, no drain
    if (i % 5 === 4) {
      const r = await send((s) => refresh(s, cookie), preferred);
      results.push(r.status);
      if (r.status === 200) ({ at, cookie } = r);
    } else {
      results.push(await send((s) => me(s.url, at), preferred));
    }
  }
  assert.deepEqual(results, Array(ROUNDS).fill(200), 'every request answered 200');
  assert.ok(failovers > 0, 'requests for the killed instance went to the other');
  // Restart the killed instance: it serves the same sessions.
  instances[0] = await startInstance();
  assert.equal(await me(instances[0].url, at), 200);
});

test('restarting every instance keeps the session', async () => {
  const l = await login(instances[0]);
  const r1 = await refresh(instances[1], l.cookie);
  assert.equal(r1.status, 200);
  for (const s of instances) await s.stop();
  instances.splice(0, instances.length, await startInstance(), await startInstance());
  const [a, b] = instances;
  assert.equal(await me(a.url, r1.at), 200, 'the access token is still valid (same signing keys)');
  const r2 = await refresh(b, r1.cookie);
  assert.equal(r2.status, 200, 'the refresh cookie still works');
  assert.equal(await me(a.url, r2.at), 200);
});
