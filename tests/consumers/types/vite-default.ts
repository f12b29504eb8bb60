// What an app in a fresh `npm create vite` (react-ts or vanilla-ts) project writes, checked with that template's
// compiler options (tsconfig.vite.json): no lib additions needed, not even for `using`.
import { TokenManager, TokenManagerError } from 'wasm-token-manager';
import type { RefreshFailedDetail } from 'wasm-token-manager';

export const tm = new TokenManager({ refreshUrl: '/auth/refresh', logoutUrl: '/auth/logout' });

export async function signIn(username: string, password: string): Promise<boolean> {
  try {
    await tm.ready;
    const res = await tm.login('/auth/login', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password }),
    });
    return res.ok;
  } catch (e) {
    if (e instanceof TokenManagerError && e.code === 'WASM_LOAD_FAILED') return false;
    throw e;
  }
}

tm.events.addEventListener('refreshfailed', (e) => {
  const detail: RefreshFailedDetail = e.detail;
  if (!detail.retryable && detail.hadToken) console.log('session expired');
});

export function stop(): void {
  tm.dispose();
}

export function scoped(): void {
  using short = new TokenManager({ refreshUrl: '/auth/refresh' });
  short.setAccessToken(null);
}
