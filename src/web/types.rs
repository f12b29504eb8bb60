//! TypeScript declarations for the option and event types (the generated `.d.ts` includes them).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of the {@link TokenManager} constructor. */
export interface TokenManagerOptions {
  /** Required. The refresh endpoint: `POST`, `credentials: 'include'`, `redirect: 'error'`. */
  refreshUrl: string;
  /** The logout endpoint: `POST`, `credentials: 'include'`. */
  logoutUrl?: string;
  /** Origins that receive the bearer token, e.g. `['https://api.example.com']`. Default: the page's own origin. */
  apiOrigins?: string[];
  /** Renew this long before expiry (shortened for short-lived tokens, never before half-life). Default 60. */
  refreshMarginSeconds?: number;
  /** The JSON field carrying the token in login and refresh answers. Default `'accessToken'`, and `'access_token'` is understood too. */
  tokenField?: string;
  /** Headers sent on refresh and logout calls as CSRF defence. Default `{ 'X-Requested-With': 'fetch' }`, the custom header the reference server requires; a value given here replaces the default (`{}` sends none). A cross-origin `refreshUrl` or `logoutUrl` must allow these headers in its CORS preflight. */
  refreshHeaders?: Record<string, string>;
  /** Abort a refresh or logout call after this long. Default 10. */
  refreshTimeoutSeconds?: number;
  /** The BroadcastChannel name shared by the tabs of this app (default: derived from `refreshUrl`), or `false` to turn cross-tab coordination off. */
  crossTab?: string | false;
  /** How long a tab waits for another tab's refresh before refreshing by itself. Default `refreshTimeoutSeconds + 1`. */
  lockTimeoutSeconds?: number;
  /** Log decisions with `console.debug` (never the token). Default false. */
  debug?: boolean;
}

/** `detail` of the `tokenchange` event. */
export interface TokenChangeDetail {
  /** The new token's estimated expiry in ms since the epoch, or null (no token, or no usable `exp`). */
  expiresAt: number | null;
  source: 'login' | 'refresh' | 'set';
}

/** `detail` of the `refreshfailed` event. */
export interface RefreshFailedDetail {
  /** The HTTP status, or null for a network error or timeout. */
  status: number | null;
  /** Whether another attempt will be made (network error, timeout, 5xx, 429, malformed answer). */
  retryable: boolean;
  /** The earliest time of the next attempt in ms since the epoch, or null. */
  retryAt: number | null;
}

/** `detail` of the `sessionexpired` event. */
export interface SessionExpiredDetail {}

/** `detail` of the `logout` event. */
export interface LogoutDetail {
  /** `'user'`: `logout()` in this tab; `'remote'`: a logout in another tab. */
  reason: 'user' | 'remote';
}

/** The events of a {@link TokenManager}, by name. */
export interface TokenManagerEventMap {
  tokenchange: CustomEvent<TokenChangeDetail>;
  refreshfailed: CustomEvent<RefreshFailedDetail>;
  sessionexpired: CustomEvent<SessionExpiredDetail>;
  logout: CustomEvent<LogoutDetail>;
}

/** The `EventTarget` at `tm.events`. */
export interface TokenManagerEvents extends EventTarget {
  addEventListener<K extends keyof TokenManagerEventMap>(type: K, listener: (this: TokenManagerEvents, ev: TokenManagerEventMap[K]) => any, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof TokenManagerEventMap>(type: K, listener: (this: TokenManagerEvents, ev: TokenManagerEventMap[K]) => any, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

/** The stable `code` of a {@link TokenManagerError}. Network failures are not among them: the manager's `fetch` rejects with the platform's `TypeError`, as `fetch` does. */
export type TokenManagerErrorCode = 'INVALID_OPTION' | 'INVALID_TOKEN' | 'BAD_RESPONSE' | 'DISPOSED' | 'LOGOUT_FAILED';

/** Errors thrown or rejected by the manager: `Error`s with `name === 'TokenManagerError'` and a stable `code`. */
export interface TokenManagerError extends Error {
  name: 'TokenManagerError';
  code: TokenManagerErrorCode;
  /** With `LOGOUT_FAILED` (the server did not confirm `logout()`; the local logout happened anyway): the HTTP status of the logout call, or null for a network error or timeout. */
  status?: number | null;
}

/** The manager's `fetch`: the same contract as the global `fetch`. */
export type TokenManagerFetch = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
"#;

#[wasm_bindgen]
extern "C" {
    /// `TokenManagerOptions` in TypeScript.
    #[wasm_bindgen(typescript_type = "TokenManagerOptions")]
    pub type TokenManagerOptions;
    /// `TokenManagerEvents` in TypeScript.
    #[wasm_bindgen(typescript_type = "TokenManagerEvents", extends = web_sys::EventTarget)]
    pub type TokenManagerEvents;
    /// `TokenManagerFetch` in TypeScript.
    #[wasm_bindgen(typescript_type = "TokenManagerFetch")]
    pub type TokenManagerFetch;
    /// `RequestInfo | URL` in TypeScript.
    #[wasm_bindgen(typescript_type = "RequestInfo | URL")]
    pub type RequestInput;
    /// `RequestInit` in TypeScript.
    #[wasm_bindgen(typescript_type = "RequestInit")]
    pub type RequestInitLike;
}
