// The floor: the platform fetch with a bearer header, no refresh logic at all.
import { login } from './common.js';

export function create({ token } = {}) {
  let bearer = token;
  const headers = () => ({ Authorization: `Bearer ${bearer}` });
  return {
    ready: Promise.resolve(),
    refreshes: false,
    async login() { bearer = await login(); },
    get: (url) => fetch(url, { headers: headers() }).then(async (r) => { await r.json(); return r.status; }),
    post: (url, body) => fetch(url, { method: 'POST', body, headers: { ...headers(), 'Content-Type': 'application/octet-stream' } })
      .then(async (r) => { await r.json(); return r.status; }),
    dispose() {},
  };
}
