// Types of the wasm-token-manager npm package: the public contract of the entry module (index.js).
// tests/e2e/api.test.mjs holds the declared members of `TokenManager` and the error codes to the runtime's.

declare global {
  interface SymbolConstructor {
    /**
     * `Symbol.dispose` (explicit resource management, ES2026), declared as TypeScript's `esnext.disposable` lib
     * declares it (the declarations merge), so that `tm[Symbol.dispose]()` and `using tm = new TokenManager(…)`
     * type-check with the default `lib` of an app. Engines without it get a down-levelled `using` from the app's
     * compiler, which looks up `Symbol.for('Symbol.dispose')`: the manager answers to that key too.
     */
    readonly dispose: unique symbol;
  }
  /** An object `using` can dispose (as in TypeScript's `esnext.disposable` lib). */
  interface Disposable {
    [Symbol.dispose](): void;
  }
}

/** Options of the {@link TokenManager} constructor. A property set to `undefined` means its default. */
export interface TokenManagerOptions {
  /** Required. The refresh endpoint: `POST`, `credentials: 'include'`, `redirect: 'manual'` (a redirect ends the session). Relative URLs resolve as `fetch` resolves them: against `document.baseURI`. */
  refreshUrl: string;
  /** The logout endpoint: `POST`, `credentials: 'include'`. `null` or `undefined`: none. */
  logoutUrl?: string | null | undefined;
  /** Origins that receive the bearer token, e.g. `['https://api.example.com']`; no wildcards. Default: the page's own origin. */
  apiOrigins?: readonly string[] | undefined;
  /** Renew this long before expiry, in seconds (shortened for short-lived tokens, never before half-life). Default 60. */
  refreshMarginSeconds?: number | undefined;
  /**
   * The JSON field carrying the token in login and refresh answers. Default `'accessToken'`, and `'access_token'` is
   * understood too. The token may be a JWT or opaque (any RFC 6750 `b64token` up to 8 KiB); its lifetime is the
   * earlier of a JWT's `exp` and the answer's `expires_in` or `expiresIn` (seconds, a number or a numeric string).
   * A `token_type` or `tokenType` other than `Bearer` (any case) refuses the answer.
   */
  tokenField?: string | undefined;
  /** Headers sent on refresh and logout calls as CSRF defence. Default `{ 'X-Requested-With': 'fetch' }`, the custom header the reference server requires; a value given here replaces the default (`{}` sends none). A cross-origin `refreshUrl` or `logoutUrl` must allow these headers in its CORS preflight. */
  refreshHeaders?: Readonly<Record<string, string>> | undefined;
  /** Abort a refresh or logout call after this long, in seconds. Default 10. */
  refreshTimeoutSeconds?: number | undefined;
  /** The BroadcastChannel name shared by the tabs of this app (default, also for `null`: `'wasm-token-manager:'` and the absolute `refreshUrl`), or `false` to turn cross-tab coordination off. The channel is opened at construction: what other tabs post while the wasm loads (a login, a logout) is kept, at most 32 messages, and applied in order once it is ready. */
  crossTab?: string | false | null | undefined;
  /** How long a tab waits for another tab's refresh before refreshing by itself, in seconds. Default `refreshTimeoutSeconds + 1`. */
  lockTimeoutSeconds?: number | undefined;
  /** Log decisions with `console.debug` (never the token). Default false. */
  debug?: boolean | undefined;
  /**
   * Where a legacy never-expiring token is exchanged once for a normal session: `POST` with
   * `Authorization: Bearer <legacy token>`, `credentials: 'include'`, the `refreshHeaders`; answered like a login.
   * Default none (no legacy support). See `upgradeLegacyToken` and docs/migration.md.
   */
  legacyUpgradeUrl?: string | null | undefined;
  /**
   * A legacy never-expiring token the app still holds (needs `legacyUpgradeUrl`). Kept in memory only; sent as the
   * bearer to `apiOrigins` while no new token is held; exchanged once, automatically, when an answer to a request
   * that carried it has a `Deprecation` header or is a 401 (then that request is retried once with the new token);
   * dropped after the exchange, a login, `setAccessToken` or logout.
   */
  legacyToken?: string | null | undefined;
  /**
   * DPoP (RFC 9449): sender-constrained tokens, so that a copied access token or refresh cookie is useless without
   * this browser's key. Default `false`. With `true` the manager keeps an ECDSA P-256 key pair whose private key
   * cannot be exported (WebCrypto, `extractable: false`) in IndexedDB, one per app (per channel name) shared by its
   * tabs, and sends a fresh proof (`DPoP` header) on login, refresh and logout calls and on every request carrying a
   * DPoP-bound token (an answer with `token_type`/`tokenType` `DPoP`), which goes out as `Authorization: DPoP <token>`.
   * A `use_dpop_nonce` challenge (400 at a token endpoint, 401 `WWW-Authenticate: DPoP` at a resource) with a
   * `DPoP-Nonce` header is answered by sending the request once more with the nonce; it is never an expiry. After
   * `logout()` the key is deleted; the next login creates a new one. Where WebCrypto (a secure context: https or
   * localhost) or IndexedDB is missing, `true` throws `DPOP_UNSUPPORTED` and `'if-supported'` uses bearer tokens.
   * The key, the proofs and the nonces are a separate module (about 3 KB gzip) downloaded only with this option.
   */
  dpop?: boolean | 'if-supported' | undefined;
}

/** `detail` of the `tokenchange` event. */
export interface TokenChangeDetail {
  /** The new token's estimated expiry in ms since the epoch, or null (no token, or neither a usable `exp` nor `expires_in`/`expiresIn`). */
  expiresAt: number | null;
  source: 'login' | 'refresh' | 'set' | 'legacy';
}

/** `detail` of the `legacyupgradefailed` event: the exchange of a legacy token failed (fired once, never retried automatically). */
export interface LegacyUpgradeFailedDetail {
  /** The HTTP status, or null for a network error or timeout. */
  status: number | null;
  /**
   * `'retired'`: the server no longer accepts legacy tokens; `'replayed'`: already exchanged; `'invalid'`: not a legacy
   * token the server knows; `'refused'`: another refusal; `'unavailable'`: network error, timeout, 5xx, 429 or a
   * malformed answer. For every reason but `'unavailable'` the token is dropped: sign in again.
   */
  reason: 'retired' | 'replayed' | 'invalid' | 'refused' | 'unavailable';
  /** Whether the legacy token is still held (`'unavailable'`): calling `upgradeLegacyToken()` again may succeed. */
  retryable: boolean;
}

/** `detail` of the `refreshfailed` event. */
export interface RefreshFailedDetail {
  /** The HTTP status, or null for a network error or timeout. */
  status: number | null;
  /** Whether another attempt will be made: a network error or timeout, 408, 425, 429, a 5xx other than 501, or a first malformed 2xx answer. Every other status (400, 401, 403, 404, 405, 410, 501, …) and a redirect end the session. */
  retryable: boolean;
  /** The earliest time of the next attempt in ms since the epoch, or null. */
  retryAt: number | null;
  /** Whether a token was held: `false` for the attempt to restore a session of a visitor who never signed in (show "sign in", not "session expired"). */
  hadToken: boolean;
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
  legacyupgradefailed: CustomEvent<LegacyUpgradeFailedDetail>;
}

/** The `EventTarget` at `tm.events`. */
export interface TokenManagerEvents extends EventTarget {
  addEventListener<K extends keyof TokenManagerEventMap>(type: K, listener: (this: TokenManagerEvents, ev: TokenManagerEventMap[K]) => any, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof TokenManagerEventMap>(type: K, listener: (this: TokenManagerEvents, ev: TokenManagerEventMap[K]) => any, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

/**
 * The stable `code` of a {@link TokenManagerError}. Network failures are not among them: the manager's `fetch`
 * rejects with the platform's `TypeError`, as `fetch` does.
 *
 * - `INVALID_OPTION`: a constructor option is wrong; the message names it (thrown by the constructor).
 * - `INVALID_TOKEN`: a token longer than 8 KiB or with characters outside the RFC 6750 `b64token` set (given to
 *   `setAccessToken` or in a login answer). Opaque tokens are accepted.
 * - `BAD_RESPONSE`: a 2xx login answer could not be used: not `application/json` or `application/*+json`, over
 *   64 KiB, not a JSON object, no token field or not a string, or a `token_type` other than Bearer (or `DPoP`,
 *   which needs the `dpop` option). The message names the problem.
 * - `DISPOSED`: the manager was disposed (`dispose()`, `free()`, `[Symbol.dispose]()`).
 * - `LOGOUT_FAILED`: the server did not confirm `logout()` (the local logout happened anyway; `status` is the
 *   HTTP status or null), or there is no `logoutUrl` to tell it (the session and its cookie stay alive there).
 * - `LEGACY_UPGRADE_FAILED`: `upgradeLegacyToken()` failed; `status` and `reason` are those of the
 *   `legacyupgradefailed` event.
 * - `WASM_LOAD_FAILED`: the WebAssembly module could not be loaded; the message names the cause (for a
 *   Content-Security-Policy: `'wasm-unsafe-eval'` missing from `script-src`) and `cause` holds the platform's error.
 * - `UNSUPPORTED_ENVIRONMENT`: not a browser page or worker (Node, a server-side render): the manager is inert.
 * - `DPOP_UNSUPPORTED`: `dpop: true` where there is no WebCrypto (not a secure context) or no IndexedDB (thrown by
 *   the constructor; `dpop: 'if-supported'` falls back to bearer tokens instead).
 * - `DPOP_FAILED`: the DPoP module could not be loaded (requests that need a proof reject with it).
 */
export type TokenManagerErrorCode =
  | 'INVALID_OPTION'
  | 'INVALID_TOKEN'
  | 'BAD_RESPONSE'
  | 'DISPOSED'
  | 'LOGOUT_FAILED'
  | 'LEGACY_UPGRADE_FAILED'
  | 'WASM_LOAD_FAILED'
  | 'UNSUPPORTED_ENVIRONMENT'
  | 'DPOP_UNSUPPORTED'
  | 'DPOP_FAILED';

/** Errors thrown or rejected by the manager. A real class: `e instanceof TokenManagerError` works. */
export class TokenManagerError extends Error {
  constructor(code: TokenManagerErrorCode, message: string, options?: { cause?: unknown });
  readonly name: 'TokenManagerError';
  readonly code: TokenManagerErrorCode;
  /** With `LOGOUT_FAILED` and `LEGACY_UPGRADE_FAILED`: the HTTP status of the call, or null for a network error or timeout. */
  readonly status?: number | null;
  /** With `LEGACY_UPGRADE_FAILED`: why (see {@link LegacyUpgradeFailedDetail}). */
  readonly reason?: LegacyUpgradeFailedDetail['reason'];
}

/** The manager's `fetch`: the same contract as the global `fetch`. */
export type TokenManagerFetch = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

/**
 * A fetch wrapper for single-page apps: keeps the access token in memory, attaches it to requests for trusted
 * origins, refreshes it through an httpOnly cookie (single-flight, proactive and on 401), and retries a 401 once.
 *
 * The constructor is synchronous; the WebAssembly module is loaded at the first construction, and every
 * asynchronous member waits for it by itself (`ready` tells when it is there).
 */
export class TokenManager {
  /** Throws a `TokenManagerError` (`INVALID_OPTION`) naming a bad option. Never throws for a failed wasm load. */
  constructor(options: TokenManagerOptions);
  /** Resolves once the WebAssembly module is loaded and the manager runs; rejects with `WASM_LOAD_FAILED` or `UNSUPPORTED_ENVIRONMENT`. Awaiting it is optional. */
  readonly ready: Promise<void>;
  /** The manager's `fetch`, bound: it works detached (`const f = tm.fetch`), as the `fetch` of ky or openapi-fetch. */
  readonly fetch: TokenManagerFetch;
  /** The `EventTarget` firing `tokenchange`, `refreshfailed`, `sessionexpired` and `logout`. */
  readonly events: TokenManagerEvents;
  /** Whether a token is held that is not past its expiry (an expired one that could not be renewed does not count). */
  readonly isAuthenticated: boolean;
  /** The token's estimated expiry in ms since the epoch (local clock), or `null` (no token, or the wasm not ready yet). */
  readonly expiresAt: number | null;
  /** `fetch(input, init)` with `credentials: 'include'`; on a 2xx answer stores the token from the JSON body. Resolves with the `Response`; rejects with `BAD_RESPONSE` or `INVALID_TOKEN` when a 2xx body carries no usable token. */
  login(input: RequestInfo | URL, init?: RequestInit | null): Promise<Response>;
  /** Stores a token obtained some other way, or forgets it with `null`. Throws `INVALID_TOKEN` (before the wasm is ready, a refusal is reported with `reportError`). */
  setAccessToken(token: string | null): void;
  /** Forces a refresh now, or joins the one in flight. Resolves `true` when a new token was stored. */
  refresh(): Promise<boolean>;
  /**
   * Logs out: locally at once (token cleared, timers stopped, other tabs told, `logout` fired), then `POST
   * logoutUrl` with credentials. Resolves when the server answered 2xx, or at once without `logoutUrl`; otherwise
   * rejects with `LOGOUT_FAILED` (`status`: the HTTP status, or null). Idempotent.
   */
  logout(): Promise<void>;
  /**
   * Exchanges a legacy never-expiring token once at `legacyUpgradeUrl` for a normal session (single-flight: a call
   * while an exchange runs joins it); without an argument, the held `legacyToken`. Resolves `true` when the new
   * session's token is stored (the legacy token is dropped). Rejects with `LEGACY_UPGRADE_FAILED` (`status`,
   * `reason`), `INVALID_TOKEN` (a malformed token, or none to upgrade) or `INVALID_OPTION` (no `legacyUpgradeUrl`).
   */
  upgradeLegacyToken(token?: string): Promise<boolean>;
  /** Where the migration off a legacy token stands: `'none'`, `'held'`, `'upgrading'`, `'upgraded'` or `'failed'`. */
  readonly legacyUpgrade: 'none' | 'held' | 'upgrading' | 'upgraded' | 'failed';
  /** Stops the manager for good (timers, refreshes, listeners, channel) and releases its memory; later calls reject with `DISPOSED`. Idempotent. */
  dispose(): void;
  /** The same as `dispose()`. */
  free(): void;
  /** The same as `dispose()`, for `using tm = new TokenManager(...)`. */
  [Symbol.dispose](): void;
}
