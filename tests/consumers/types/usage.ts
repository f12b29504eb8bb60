// Type-checks an app's use of the package against the shipped declarations (tsc --noEmit, strict).
// The @ts-expect-error lines prove the types are precise: if a declaration degraded to `any`, or an option
// or event changed shape, the compiler reports the unused expectation and the test fails.
import {
  TokenManager,
  type TokenManagerOptions,
  type TokenManagerFetch,
  TokenManagerError,
  type TokenManagerErrorCode,
  type RefreshFailedDetail,
} from 'wasm-token-manager';

const options: TokenManagerOptions = {
  refreshUrl: '/auth/refresh',
  logoutUrl: '/auth/logout',
  apiOrigins: ['https://api.example.com'],
  refreshMarginSeconds: 60,
  tokenField: 'accessToken',
  refreshHeaders: { 'X-Requested-With': 'fetch' },
  refreshTimeoutSeconds: 10,
  crossTab: false,
};
const tm = new TokenManager(options);

async function app(): Promise<void> {
  const res: Response = await tm.login('/auth/login', { method: 'POST', body: '{}' });
  tm.setAccessToken(null);
  tm.setAccessToken('a.b.c');
  const r: Response = await tm.fetch('https://api.example.com/me', { method: 'GET' });
  const f: TokenManagerFetch = tm.fetch;
  const r2: Response = await f(new Request('https://api.example.com/me'));
  const ok: boolean = await tm.refresh();
  await tm.logout();
  const authed: boolean = tm.isAuthenticated;
  const exp: number | null = tm.expiresAt;
  tm.events.addEventListener('tokenchange', (e) => {
    const at: number | null = e.detail.expiresAt;
    const source: 'login' | 'refresh' | 'set' | 'legacy' = e.detail.source;
    void at; void source;
  });
  tm.events.addEventListener('refreshfailed', (e) => {
    const d: RefreshFailedDetail = e.detail;
    const status: number | null = d.status;
    const retryable: boolean = d.retryable;
    const retryAt: number | null = d.retryAt;
    const hadToken: boolean = d.hadToken;
    void status; void retryable; void retryAt; void hadToken;
  });
  tm.events.addEventListener('logout', (e) => { const reason: 'user' | 'remote' = e.detail.reason; void reason; });
  tm.events.addEventListener('sessionexpired', () => {});
  try { await tm.fetch('/x'); } catch (e) {
    if (e instanceof TokenManagerError) {
      const code: 'INVALID_OPTION' | 'INVALID_TOKEN' | 'BAD_RESPONSE' | 'DISPOSED' | 'LOGOUT_FAILED'
        | 'LEGACY_UPGRADE_FAILED' | 'WASM_LOAD_FAILED' | 'UNSUPPORTED_ENVIRONMENT' | 'DPOP_UNSUPPORTED'
        | 'DPOP_FAILED' = e.code;
      const same: TokenManagerErrorCode = code;
      const status: number | null | undefined = e.status;
      const name: 'TokenManagerError' = e.name;
      void status; void same; void name;
    }
  }
  await tm.ready;
  tm.dispose();
  tm.free();
  tm[Symbol.dispose]();
  {
    using scoped = new TokenManager({ refreshUrl: '/r' });
    void scoped;
  }
  void res; void r; void r2; void ok; void authed; void exp;
}
void app;

// @ts-expect-error refreshUrl is required
new TokenManager({});
// @ts-expect-error apiOrigins is a list of strings
new TokenManager({ refreshUrl: '/r', apiOrigins: 'https://api.example.com' });
// @ts-expect-error crossTab is a channel name or false, never true
new TokenManager({ refreshUrl: '/r', crossTab: true });
// exactOptionalPropertyTypes: an option set to undefined means its default, as at run time
new TokenManager({ refreshUrl: '/r', logoutUrl: undefined, apiOrigins: undefined, debug: undefined, crossTab: null });
// @ts-expect-error ready is read-only
tm.ready = Promise.resolve();
// @ts-expect-error isAuthenticated is read-only
tm.isAuthenticated = true;
tm.events.addEventListener('tokenchange', (e) => {
  // @ts-expect-error the tokenchange detail has no status
  void e.detail.status;
});
// @ts-expect-error the loader is not part of the package's API
import { initSync } from 'wasm-token-manager';
void initSync;
