// axios + axios-auth-refresh, as the latter's README shows: a request interceptor adds the bearer, the refresh
// interceptor refreshes on a 401 and retries (requests that fail while a refresh is in flight join it).
// `adapter: 'fetch'` is used only against the in-page stub fetch (axios's default browser adapter is XHR).
import axios from 'axios';
import createAuthRefreshInterceptor from 'axios-auth-refresh';
import { LOGIN_INIT, REFRESH_HEADERS } from './common.js';

export function create({ token, adapter } = {}) {
  let bearer = token;
  const client = axios.create(adapter ? { adapter } : {});
  client.interceptors.request.use((config) => { config.headers.Authorization = `Bearer ${bearer}`; return config; });
  const refreshAuthLogic = (failedRequest) => axios.post('/auth/refresh', null, { withCredentials: true, headers: REFRESH_HEADERS })
    .then((res) => {
      bearer = res.data.accessToken;
      failedRequest.response.config.headers.Authorization = `Bearer ${bearer}`;
      return Promise.resolve();
    });
  createAuthRefreshInterceptor(client, refreshAuthLogic);
  const status = (p) => p.then((r) => r.status, (e) => { if (e.response) return e.response.status; throw e; });
  return {
    ready: Promise.resolve(),
    refreshes: true,
    async login() {
      const res = await axios.post('/auth/login', JSON.parse(LOGIN_INIT.body), { withCredentials: true });
      bearer = res.data.accessToken;
    },
    get: (url) => status(client.get(url)),
    post: (url, body) => status(client.post(url, body, { headers: { 'Content-Type': 'application/octet-stream' } })),
    dispose() {},
  };
}
