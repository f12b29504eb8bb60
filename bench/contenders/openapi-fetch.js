// openapi-fetch with the auth middleware of its docs ("Middleware & Auth"): onRequest fetches a token when there
// is none and sets the bearer. The docs leave the 401 to the app ("add logic here to refresh token when it
// expires"); the onResponse below is the smallest such logic: on a 401, refresh and resend once (no
// single-flight, as in the docs' onRequest).
import createClient from 'openapi-fetch';
import { refresh, login } from './common.js';

export function create({ token } = {}) {
  let accessToken = token;
  const authMiddleware = {
    async onRequest({ request }) {
      // fetch token, if it doesn't exist
      if (!accessToken) accessToken = await refresh();
      request.headers.set('Authorization', `Bearer ${accessToken}`);
      return request;
    },
    async onResponse({ request, response }) {
      if (response.status !== 401) return undefined;
      accessToken = await refresh();
      const headers = new Headers(request.headers);
      headers.set('Authorization', `Bearer ${accessToken}`);
      return fetch(new Request(request, { headers }));
    },
  };
  const client = createClient();
  client.use(authMiddleware);
  const status = (p) => p.then(({ response }) => response.status);
  return {
    ready: Promise.resolve(),
    refreshes: true,
    async login() { accessToken = await login(); },
    get: (url) => status(client.GET(url)),
    post: (url, body) => status(client.POST(url, {
      body, bodySerializer: (b) => b, headers: { 'Content-Type': 'application/octet-stream' },
    })),
    dispose() {},
  };
}
