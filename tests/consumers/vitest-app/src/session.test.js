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

// The ordinary unit test of an app: the server is a stubbed fetch. Login, a relative API call through a 401 and a
// refresh, and logout must work in jsdom as in a browser (relative URLs resolve against jsdom's document base,
// response bodies from Node's fetch realm are read).
test('login, a 401, the refresh and the retry, and logout run for real against a stubbed fetch', async () => {
  const calls = [];
  let valid = null;
  let n = 0;
  const answer = (status, body) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const req = new Request(input, init);
    const { pathname } = new URL(req.url);
    if (pathname.endsWith('.wasm')) return realFetch(input, init); // the package's own module
    calls.push(`${req.method} ${pathname}`);
    if (pathname === '/auth/login' || pathname === '/auth/refresh') {
      valid = `opaque-token-${++n}`;
      return answer(200, { accessToken: valid, expiresIn: 600, tokenType: 'Bearer' });
    }
    if (pathname === '/auth/logout') return new Response(null, { status: 204 });
    if (pathname === '/api/me') {
      return req.headers.get('authorization') === `Bearer ${valid}` ? answer(200, { sub: 'vitest' }) : answer(401, { error: 'invalid_token' });
    }
    return answer(404, {});
  };
  try {
    const tm = createSession();
    const login = await tm.login('/auth/login', { method: 'POST', body: '{}' });
    expect(login.status).toBe(200);
    expect(tm.isAuthenticated).toBe(true);
    valid = 'rotated-on-the-server'; // the next call gets a 401: one refresh, one retry
    const me = await tm.fetch('/api/me');
    expect(me.status).toBe(200);
    expect(await me.json()).toEqual({ sub: 'vitest' });
    await tm.logout();
    expect(tm.isAuthenticated).toBe(false);
    expect(calls).toEqual(['POST /auth/login', 'GET /api/me', 'POST /auth/refresh', 'GET /api/me', 'POST /auth/logout']);
    tm.dispose();
  } finally {
    globalThis.fetch = realFetch;
  }
});
