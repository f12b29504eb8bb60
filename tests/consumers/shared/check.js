// What a consumer app does with the package: construct a TokenManager, give it a token, fetch through it.
// Copied into each consumer fixture by tests/e2e/consumers.test.mjs; the page stores the outcome in
// window.__consumerResult for the test to read.
import { TokenManager } from 'wasm-token-manager';

function b64url(value) {
  return btoa(JSON.stringify(value)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export async function check() {
  const now = Math.floor(Date.now() / 1000);
  const token = `${b64url({ alg: 'ES256', typ: 'at+jwt' })}.${b64url({ sub: 'consumer', iat: now, exp: now + 600 })}.c2ln`;
  const tm = new TokenManager({ refreshUrl: '/auth/refresh' });
  // The synchronous getters reflect the token once the wasm is loaded (it loads at the first construction).
  await tm.ready;
  const changes = [];
  tm.events.addEventListener('tokenchange', (e) => changes.push(e.detail));
  // expiresAt is on the local clock: receipt time plus the token's lifetime (exp - iat), so bracket receipt.
  const before = Date.now();
  tm.setAccessToken(token);
  const after = Date.now();
  const res = await tm.fetch('/whoami');
  const body = await res.json();
  const result = {
    status: res.status,
    sentBearer: body.authorization === `Bearer ${token}`,
    isAuthenticated: tm.isAuthenticated,
    expiresAtInLifetime: tm.expiresAt >= before + 600_000 && tm.expiresAt <= after + 600_000,
    expiresAt: tm.expiresAt,
    tokenchange: changes.map((d) => d.source),
  };
  tm.dispose();
  return result;
}

check().then(
  (result) => { window.__consumerResult = result; },
  (error) => { window.__consumerResult = { error: `${error.name}: ${error.message}` }; },
);
