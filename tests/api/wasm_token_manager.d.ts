/* tslint:disable */
/* eslint-disable */

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



/**
 * A fetch wrapper for single-page apps: keeps the access token in memory, attaches it to requests for
 * trusted origins, refreshes it through an httpOnly cookie (single-flight, proactive and on 401), and
 * retries a 401 once.
 */
export class TokenManager {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Stops timers and listeners and forgets the token; later calls reject with `DISPOSED`.
     */
    dispose(): void;
    /**
     * Logs in: `fetch(input, init)` with `credentials: 'include'`; on a 2xx answer stores the token from the
     * JSON body. Resolves with the `Response`; rejects with a `TokenManagerError` when a 2xx body carries no
     * usable token.
     */
    login(input: RequestInfo | URL, init?: RequestInit | null): Promise<Response>;
    /**
     * Logs out. Locally it always wins, at once and whatever the server answers: the token is cleared,
     * timers stop, the result of any refresh in flight is dropped, the other tabs are told, `logout` fires,
     * and no automatic refresh (no session restore from the cookie) happens until `login`, `setAccessToken`
     * or `refresh()`. Then it posts to `logoutUrl` with credentials and `refreshHeaders`, aborted after
     * `refreshTimeoutSeconds`.
     *
     * Resolves when the server answered 2xx, or at once without `logoutUrl`. Otherwise rejects with a
     * `TokenManagerError` whose `code` is `LOGOUT_FAILED` and whose `status` is the HTTP status, or `null`
     * for a network error or timeout: the server session and its refresh cookie may still be alive, so tell
     * the user. Idempotent: every call posts again (so calling it again retries); `logout` fires only when
     * something changed.
     */
    logout(): Promise<void>;
    /**
     * Creates a manager. Throws a `TokenManagerError` (`INVALID_OPTION`) naming a bad option.
     */
    constructor(options: TokenManagerOptions);
    /**
     * Forces a refresh now, or joins the one in flight. Resolves `true` when a new token was stored.
     */
    refresh(): Promise<boolean>;
    /**
     * Stores a token obtained some other way, or forgets it with `null`. Throws `INVALID_TOKEN` for a token
     * that is not a well-formed JWT.
     */
    setAccessToken(token: string | null): void;
    /**
     * The `EventTarget` firing `tokenchange`, `refreshfailed`, `sessionexpired` and `logout`.
     */
    readonly events: TokenManagerEvents;
    /**
     * The token's estimated expiry in ms since the epoch (local clock), or `null`.
     */
    readonly expiresAt: number | null;
    /**
     * The manager's `fetch`, bound: it works detached (`const f = tm.fetch`), as the `fetch` of ky or
     * openapi-fetch. Same contract as the global `fetch`.
     */
    readonly fetch: TokenManagerFetch;
    /**
     * Whether a token is held.
     */
    readonly isAuthenticated: boolean;
}
