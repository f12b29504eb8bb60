// @auth0/auth0-spa-js's fetch wrapper (Auth0Client#createFetcher) pointed at the same server through its
// getAccessToken option: the token comes from our cookie refresh, cached until its exp and refreshed once for
// all callers (what getTokenSilently does against Auth0). Its fetcher retries only DPoP-nonce errors: a 401
// is handed to the caller, so a token that expires at the server before the client's clock says so fails the
// requests that meet it.
import { Auth0Client } from '@auth0/auth0-spa-js';
import { login, refresh } from './common.js';

const expOf = (t) => JSON.parse(atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).exp;

export function create({ token } = {}) {
  const auth0 = new Auth0Client({ domain: location.host, clientId: 'bench', cacheLocation: 'memory' });
  let bearer = token;
  let exp = token ? expOf(token) : 0;
  let inflight = null;
  const store = (t) => { bearer = t; exp = expOf(t); return t; };
  const getAccessToken = async () => {
    if (bearer && Date.now() / 1000 < exp - 1) return bearer;
    inflight ??= refresh().then(store).finally(() => { inflight = null; });
    return inflight;
  };
  const fetcher = auth0.createFetcher({ getAccessToken });
  const read = async (r) => { await r.json(); return r.status; };
  return {
    ready: Promise.resolve(),
    refreshes: true,
    async login() { store(await login()); },
    get: (url) => fetcher.fetchWithAuth(url).then(read),
    post: (url, body) => fetcher.fetchWithAuth(url, { method: 'POST', body, headers: { 'Content-Type': 'application/octet-stream' } }).then(read),
    dispose() {},
  };
}
