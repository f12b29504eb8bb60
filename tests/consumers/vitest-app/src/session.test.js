// @vitest-environment jsdom
// An app's unit test, run by Vitest in its jsdom environment with no vitest config: the module under test imports
// the package, which must load; with a DOM the manager is fully functional (the wasm comes from the package's
// inline fallback when its URL cannot be fetched).
import { expect, test } from 'vitest';
import { createSession, TokenManagerError } from './session.js';

function b64url(value) {
  return btoa(JSON.stringify(value)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

test('a module using wasm-token-manager loads and its manager holds a token', async () => {
  const now = Math.floor(Date.now() / 1000);
  const jwt = `${b64url({ alg: 'ES256', typ: 'at+jwt' })}.${b64url({ sub: 'vitest', iat: now, exp: now + 600 })}.c2ln`;
  const tm = createSession();
  tm.setAccessToken(jwt);
  await tm.ready;
  expect(tm.isAuthenticated).toBe(true);
  expect(typeof TokenManagerError).toBe('function');
  tm.dispose();
});
