// The DPoP keyring (pkg-template/dpop.js) on its own, in Node: Node's WebCrypto (the same API as a browser's) and
// fake-indexeddb (an in-memory IndexedDB) stand in for the page, and a recording `fetch` for the network, so that
// each rule of RFC 9449 the keyring follows is checked one by one. The browsers and the real server are in
// tests/e2e/dpop.test.mjs; the manager's routing through the keyring in the browser test
// dpop_tokens_go_only_through_the_keyring.
import 'fake-indexeddb/auto';
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { IDBFactory } from 'fake-indexeddb';
import { compactVerify, importJWK, calculateJwkThumbprint } from 'jose';
import { DpopKeyring } from '../../pkg-template/dpop.js';

const API = 'https://api.example/v1/items';
const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJkZW1vIn0.c2ln';

beforeEach(() => {
  // A fresh, empty IndexedDB for every test (one per "browser profile").
  globalThis.indexedDB = new IDBFactory();
});

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const part = (jwt, i) => JSON.parse(Buffer.from(jwt.split('.')[i], 'base64url').toString('utf8'));

/** A recording platform fetch answering from `answers` (functions of the Request), then 200. */
function network(...answers) {
  const sent = [];
  const fetch = async function (request) {
    assert.equal(this, globalThis, 'called as the platform fetch is: on globalThis');
    const body = ['GET', 'HEAD'].includes(request.method) ? null : await request.text();
    sent.push({ url: request.url, method: request.method, headers: Object.fromEntries(request.headers), body });
    const answer = answers.shift();
    return answer ? answer(request) : new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } });
  };
  return { fetch, sent };
}

const nonceChallenge400 = (nonce, extra = {}) => () => new Response(JSON.stringify({ error: 'use_dpop_nonce', ...extra }), {
  status: 400, headers: { 'content-type': 'application/json', 'dpop-nonce': nonce },
});
const nonceChallenge401 = (nonce) => () => new Response(null, {
  status: 401, headers: { 'www-authenticate': 'DPoP error="use_dpop_nonce", algs="ES256"', 'dpop-nonce': nonce },
});

/** Verifies `proof` with the public key it carries (RFC 9449 §4.3 steps 4–7) and returns its header and claims. */
async function verified(proof) {
  const header = part(proof, 0);
  assert.equal(header.typ, 'dpop+jwt');
  assert.equal(header.alg, 'ES256');
  assert.deepEqual(Object.keys(header.jwk).sort(), ['crv', 'kty', 'x', 'y'], 'a public JWK, no private member');
  assert.equal(header.jwk.crv, 'P-256');
  const { payload } = await compactVerify(proof, await importJWK(header.jwk, 'ES256'));
  return { header, claims: JSON.parse(Buffer.from(payload).toString('utf8')) };
}

test('a proof with a token: Authorization DPoP, htm, htu without query and fragment, iat, a fresh jti, ath of the token, signed by the key in its header', async () => {
  const ring = new DpopKeyring('app', false);
  const net = network();
  await ring.fetch(net.fetch, `${API}?page=2#top`, { method: 'PUT', body: 'x' }, TOKEN, true);
  await ring.fetch(net.fetch, API, undefined, TOKEN, true);
  assert.equal(net.sent.length, 2);
  const [a, b] = await Promise.all(net.sent.map((s) => verified(s.headers.dpop)));
  assert.equal(net.sent[0].headers.authorization, `DPoP ${TOKEN}`);
  assert.equal(a.claims.htm, 'PUT');
  assert.equal(a.claims.htu, API);
  assert.equal(b.claims.htm, 'GET');
  assert.equal(a.claims.ath, b64url(createHash('sha256').update(TOKEN).digest()));
  assert.ok(Number.isInteger(a.claims.iat) && Math.abs(a.claims.iat - Date.now() / 1000) < 600);
  assert.notEqual(a.claims.jti, b.claims.jti, 'every proof is fresh');
  assert.equal(a.claims.nonce, undefined, 'no nonce before the server sent one');
  assert.deepEqual(a.header.jwk, b.header.jwk, 'one key');
  assert.equal(net.sent[0].body, 'x');
});

test('a proof of the key alone (login, refresh, logout): no ath, and an Authorization the caller set stays', async () => {
  const ring = new DpopKeyring('app', false);
  const net = network();
  await ring.fetch(net.fetch, 'https://auth.example/auth/legacy/upgrade', { method: 'POST', headers: { authorization: 'Bearer legacy' } }, null, true);
  const { claims } = await verified(net.sent[0].headers.dpop);
  assert.equal(claims.ath, undefined);
  assert.equal(net.sent[0].headers.authorization, 'Bearer legacy');
});

test('use_dpop_nonce at a token endpoint (400) is answered by one resend with the nonce, a new proof and the same body', async () => {
  const ring = new DpopKeyring('app', false);
  const net = network(nonceChallenge400('n-1'));
  const res = await ring.fetch(net.fetch, 'https://auth.example/auth/login', { method: 'POST', body: '{"username":"demo"}' }, null, true);
  assert.equal(res.status, 200);
  assert.equal(net.sent.length, 2);
  const [first, second] = await Promise.all(net.sent.map((s) => verified(s.headers.dpop)));
  assert.equal(first.claims.nonce, undefined);
  assert.equal(second.claims.nonce, 'n-1');
  assert.notEqual(first.claims.jti, second.claims.jti);
  assert.equal(net.sent[1].body, '{"username":"demo"}', 'the body is sent again byte for byte');
});

test('use_dpop_nonce at a resource (401 WWW-Authenticate: DPoP) is resent once; a second challenge is returned, not resent again', async () => {
  const ring = new DpopKeyring('app', false);
  const net = network(nonceChallenge401('n-1'), nonceChallenge401('n-2'));
  const res = await ring.fetch(net.fetch, API, undefined, TOKEN, true);
  assert.equal(res.status, 401, 'the second challenge goes to the manager (its single 401 retry), never a loop');
  assert.equal(net.sent.length, 2);
  assert.equal((await verified(net.sent[1].headers.dpop)).claims.nonce, 'n-1');
  // The nonce of the last answer is used next time.
  await ring.fetch(net.fetch, API, undefined, TOKEN, true);
  assert.equal((await verified(net.sent[2].headers.dpop)).claims.nonce, 'n-2');
});

test('nothing else is a nonce challenge: a Bearer challenge, another error, no DPoP-Nonce, a body over 4 KiB, or retry off', async () => {
  const cases = [
    () => new Response(null, { status: 401, headers: { 'www-authenticate': 'Bearer error="use_dpop_nonce"', 'dpop-nonce': 'n' } }),
    () => new Response(null, { status: 401, headers: { 'www-authenticate': 'DPoP error="invalid_token"', 'dpop-nonce': 'n' } }),
    () => new Response(null, { status: 401, headers: { 'www-authenticate': 'DPoP error="use_dpop_nonce"' } }),
    nonceChallenge400('n', { padding: 'x'.repeat(5000) }),
    () => new Response(JSON.stringify({ error: 'invalid_dpop_proof' }), { status: 400, headers: { 'content-type': 'application/json', 'dpop-nonce': 'n' } }),
    () => new Response('error=use_dpop_nonce', { status: 400, headers: { 'content-type': 'text/plain', 'dpop-nonce': 'n' } }),
  ];
  for (const [i, answer] of cases.entries()) {
    const net = network(answer);
    const res = await new DpopKeyring('app', false).fetch(net.fetch, API, undefined, TOKEN, true);
    assert.equal(net.sent.length, 1, `case ${i} was resent`);
    assert.ok(res.status >= 400);
    if (i === 3) assert.equal((await res.json()).padding.length, 5000, 'the caller can still read the answer');
  }
  const net = network(nonceChallenge400('n'));
  const res = await new DpopKeyring('app', false).fetch(net.fetch, API, { method: 'POST', body: 'once' }, null, false);
  assert.equal(res.status, 400);
  assert.equal(net.sent.length, 1, 'retry off (a stream body): sent once');
});

test('a reset (logout) keeps the server nonces: the next login is not challenged again', async () => {
  const ring = new DpopKeyring('app', false);
  const net = network(() => new Response('{}', { status: 200, headers: { 'dpop-nonce': 'kept' } }));
  await ring.fetch(net.fetch, 'https://auth.example/auth/logout', { method: 'POST' }, null, true);
  await ring.reset();
  await ring.fetch(net.fetch, 'https://auth.example/auth/login', { method: 'POST', body: '{}' }, null, true);
  const [before, after] = await Promise.all(net.sent.map((s) => verified(s.headers.dpop)));
  assert.equal(after.claims.nonce, 'kept');
  assert.notDeepEqual(after.header.jwk, before.header.jwk, 'a new key');
});

test('nonces are kept per origin', async () => {
  const ring = new DpopKeyring('app', false);
  const net = network(() => new Response('{}', { status: 200, headers: { 'dpop-nonce': 'auth-nonce' } }));
  await ring.fetch(net.fetch, 'https://auth.example/auth/refresh', { method: 'POST' }, null, true);
  await ring.fetch(net.fetch, 'https://auth.example/auth/logout', { method: 'POST' }, null, true);
  await ring.fetch(net.fetch, API, undefined, TOKEN, true);
  assert.equal((await verified(net.sent[1].headers.dpop)).claims.nonce, 'auth-nonce');
  assert.equal((await verified(net.sent[2].headers.dpop)).claims.nonce, undefined, 'not sent to another origin');
});

test('the key: kept in IndexedDB, not extractable, one per name, the same for two tabs that race to create it, new after reset', async () => {
  const jwkOf = async (ring, token = null) => {
    const net = network();
    await ring.fetch(net.fetch, API, undefined, token, true);
    return (await verified(net.sent[0].headers.dpop)).header.jwk;
  };
  // Two tabs of one profile start at once: both create a key, one is stored, both use it.
  const [tabA, tabB] = [new DpopKeyring('app', false), new DpopKeyring('app', false)];
  tabA.warm();
  tabB.warm();
  const [a, b] = await Promise.all([jwkOf(tabA), jwkOf(tabB)]);
  assert.deepEqual(a, b);
  // A reload (a new keyring) finds it.
  assert.deepEqual(await jwkOf(new DpopKeyring('app', false)), a);
  // Another app of the origin has its own.
  assert.notDeepEqual(await jwkOf(new DpopKeyring('other-app', false)), a);
  // The private key cannot be exported.
  const stored = await new Promise((resolve, reject) => {
    const open = indexedDB.open('wasm-token-manager-dpop');
    open.onsuccess = () => {
      const get = open.result.transaction('keys').objectStore('keys').get('app');
      get.onsuccess = () => resolve(get.result);
      get.onerror = () => reject(get.error);
    };
    open.onerror = () => reject(open.error);
  });
  assert.equal(stored.privateKey.extractable, false);
  await assert.rejects(crypto.subtle.exportKey('jwk', stored.privateKey));
  assert.equal(await calculateJwkThumbprint(a), await calculateJwkThumbprint(await crypto.subtle.exportKey('jwk', stored.publicKey)));
  // Logout in tab A: a new key at the next login, which tab B picks up with the new session's token.
  await tabA.reset();
  const fresh = await jwkOf(tabA);
  assert.notDeepEqual(fresh, a);
  assert.deepEqual(await jwkOf(tabB, 'new-session-token'), fresh, 'another tab rereads the key for a new token');
});

test('where IndexedDB refuses to open, the key lives in the page: proofs still go out, with one key', async () => {
  globalThis.indexedDB = { open() { throw new DOMException('blocked', 'SecurityError'); } };
  const ring = new DpopKeyring('app', false);
  const net = network();
  await ring.fetch(net.fetch, API, undefined, TOKEN, true);
  await ring.fetch(net.fetch, 'https://auth.example/auth/refresh', { method: 'POST' }, null, true);
  const [a, b] = await Promise.all(net.sent.map((s) => verified(s.headers.dpop)));
  assert.deepEqual(a.header.jwk, b.header.jwk);
});
