// ky with the 401 refresh hook exactly as ky's README shows it (hooks.afterResponse: on the first 401, POST the
// refresh endpoint, then ky.retry with the new bearer). The README's hook has no single-flight: each request
// that meets a 401 refreshes on its own, and ky.retry waits ky's retry backoff before resending.
import ky from 'ky';
import { LOGIN_INIT, REFRESH_HEADERS } from './common.js';

export function create({ token } = {}) {
  let bearer = token;
  const api = ky.create({
    hooks: {
      beforeRequest: [({ request }) => { request.headers.set('Authorization', `Bearer ${bearer}`); }],
      afterResponse: [
        async ({ request, response, retryCount }) => {
          if (response.status === 401 && retryCount === 0) {
            // Only refresh on first 401, not on subsequent retries
            const { accessToken } = await ky.post('/auth/refresh', { credentials: 'include', headers: REFRESH_HEADERS }).json();
            bearer = accessToken;
            const headers = new Headers(request.headers);
            headers.set('Authorization', `Bearer ${bearer}`);
            return ky.retry({ request: new Request(request, { headers }), code: 'TOKEN_REFRESHED' });
          }
        },
      ],
    },
  });
  const status = (p) => p.then(async (r) => { await r.json(); return r.status; }, (e) => { if (e.response) return e.response.status; throw e; });
  return {
    ready: Promise.resolve(),
    refreshes: true,
    async login() { bearer = (await ky.post('/auth/login', { ...LOGIN_INIT }).json()).accessToken; },
    get: (url) => status(api.get(url)),
    post: (url, body) => status(api.post(url, { body, headers: { 'Content-Type': 'application/octet-stream' } })),
    dispose() {},
  };
}
