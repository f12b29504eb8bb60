// Shared by every contender: how a page signs in and refreshes against the bench server (the reference server's
// contract: JSON credentials to /auth/login, the httpOnly cookie plus the CSRF header to /auth/refresh).
export const LOGIN_INIT = {
  method: 'POST',
  credentials: 'include',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ username: 'demo', password: 'demo' }),
};
export const REFRESH_HEADERS = { 'X-Requested-With': 'fetch' };

/** POST to a token endpoint with the platform fetch; resolves with the access token. */
export async function fetchToken(url, init) {
  const res = await fetch(url, init);
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  return (await res.json()).accessToken;
}
export const login = () => fetchToken('/auth/login', LOGIN_INIT);
export const refresh = () => fetchToken('/auth/refresh', { method: 'POST', credentials: 'include', headers: REFRESH_HEADERS });
