// wasm-token-manager, as its README shows: one manager, tm.fetch instead of fetch.
import { TokenManager } from 'wasm-token-manager';
import { LOGIN_INIT } from './common.js';

export function create({ token } = {}) {
  const tm = new TokenManager({ refreshUrl: '/auth/refresh', logoutUrl: '/auth/logout' });
  if (token) tm.setAccessToken(token);
  return {
    ready: tm.ready,
    refreshes: true,
    async login() {
      const res = await tm.login('/auth/login', LOGIN_INIT);
      if (!res.ok) throw new Error(`login answered ${res.status}`);
    },
    get: (url) => tm.fetch(url).then(async (r) => { await r.json(); return r.status; }),
    post: (url, body) => tm.fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'application/octet-stream' } })
      .then(async (r) => { await r.json(); return r.status; }),
    dispose: () => tm.dispose(),
  };
}
