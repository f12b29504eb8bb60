// An app module that uses the package, as the code under test of a Vitest suite would.
import { TokenManager, TokenManagerError } from 'wasm-token-manager';

export { TokenManagerError };

export function createSession() {
  return new TokenManager({ refreshUrl: '/auth/refresh', logoutUrl: '/auth/logout' });
}
