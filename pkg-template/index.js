// Entry module of the wasm-token-manager npm package.
//
// Importing it does nothing: no top-level await, no request, no timer, no listener, no global touched. The
// WebAssembly module is loaded at the first `new TokenManager(...)`:
//
// 1. by URL, from the .wasm file next to this module (`new URL(..., import.meta.url)`, which webpack, Vite,
//    Rollup's and Parcel's asset handling, Next.js and plain pages resolve);
// 2. where that URL does not yield WebAssembly (a dev server that pre-bundled this module, a bundler that does
//    not copy assets, jsdom), from an inline copy in a separate, lazily imported module, so that production
//    bundles that serve the .wasm never download it.
//
// The constructor is synchronous and validates the options at once; every asynchronous method waits for the
// load by itself; a failed load (a Content-Security-Policy without 'wasm-unsafe-eval', a broken network)
// breaks only the manager: its calls fail with `WASM_LOAD_FAILED`, and `tm.fetch` never sends a request.
// Outside a browser (Node, the server-side render of a framework) nothing is loaded or started and the calls
// fail with `UNSUPPORTED_ENVIRONMENT`.
// The cross-tab BroadcastChannel is opened at construction too, and the messages other tabs post while the wasm
// loads are kept and handed to the wasm manager with the channel (see openEarly).
// wasm-bindgen's glue: scripts/build.sh bundles it into this module, so the package ships one JS module.
import init, { TokenManager as Core } from './wasm_token_manager.js';

/** The error class of the package: `name` 'TokenManagerError', a stable `code`, `status` where relevant. */
export class TokenManagerError extends Error {
  /**
   * @param {string} code one of the codes listed in index.d.ts
   * @param {string} message
   * @param {{ cause?: unknown }} [options]
   */
  constructor(code, message, options) {
    super(message, options);
    this.name = 'TokenManagerError';
    this.code = code;
  }
}

// The wasm side creates plain `Error`s named 'TokenManagerError'; they become instances of the class here.
function adopt(e) {
  if (e instanceof Error && e.name === 'TokenManagerError' && !(e instanceof TokenManagerError)) {
    Object.setPrototypeOf(e, TokenManagerError.prototype);
  }
  return e;
}

const rethrow = (e) => { throw adopt(e); };

// ---------------------------------------------------------------------------------------------------------
// Loading

/** Whether this global is a page or a worker: elsewhere (Node, SSR) the manager stays inert. */
const SUPPORTED = typeof document !== 'undefined' || typeof WorkerGlobalScope !== 'undefined';

const unsupportedError = () => new TokenManagerError(
  'UNSUPPORTED_ENVIRONMENT',
  'wasm-token-manager runs in browsers (pages and workers); here (no document, not a worker: Node or a server-side render) it does nothing. Create the manager in client code, e.g. in an effect.',
);

let loading; // Promise<void>, once the first manager was created
let loaded = false;

/** The `\0asm` magic number that starts every WebAssembly binary. */
const isWasm = (buffer) => {
  const b = new Uint8Array(buffer, 0, Math.min(4, buffer.byteLength));
  return b.length === 4 && b[0] === 0 && b[1] === 0x61 && b[2] === 0x73 && b[3] === 0x6d;
};

/** Whether a compile error is a Content-Security-Policy refusal (Chromium, Firefox and WebKit wordings). */
const blockedByPolicy = (e) => /Content.Security.Policy|CSP|unsafe-eval/i.test(String(e && e.message));

async function compileFromUrl() {
  // The literal form `new URL('./file', import.meta.url)` is what bundlers recognise as an asset reference.
  const url = new URL('./wasm_token_manager_bg.wasm', import.meta.url);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${res.status} fetching ${url}`);
  if (/^application\/wasm\s*(;|$)/i.test(res.headers.get('content-type') || '')) {
    return WebAssembly.compileStreaming(res);
  }
  const bytes = await res.arrayBuffer();
  if (!isWasm(bytes)) throw new Error(`${url} did not answer with WebAssembly (content-type ${res.headers.get('content-type')})`);
  return WebAssembly.compile(bytes);
}

async function compileInline() {
  const { wasm } = await import('./wasm_token_manager_bg.inline.js');
  const text = atob(wasm);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return WebAssembly.compile(bytes);
}

function loadFailed(cause) {
  const why = blockedByPolicy(cause)
    ? "the page's Content-Security-Policy refused to compile WebAssembly: add 'wasm-unsafe-eval' to its script-src"
    : `the WebAssembly module could not be loaded (${cause && cause.message})`;
  return new TokenManagerError('WASM_LOAD_FAILED', `wasm-token-manager: ${why}`, { cause });
}

async function loadOnce() {
  let module;
  try {
    module = await compileFromUrl();
  } catch (first) {
    // A policy refusal applies to the inline copy as well: say so instead of trying it.
    if (blockedByPolicy(first)) throw loadFailed(first);
    try {
      module = await compileInline();
    } catch (second) {
      throw loadFailed(blockedByPolicy(second) ? second : new AggregateError([first, second], `${first.message}; inline copy: ${second.message}`));
    }
  }
  try {
    await init({ module_or_path: module });
  } catch (e) {
    throw loadFailed(e);
  }
  loaded = true;
}

function load() {
  if (!loading) loading = loadOnce();
  return loading;
}

// ---------------------------------------------------------------------------------------------------------
// Options: checked here, synchronously, with the same rules and messages as the wasm side (which checks them
// again when it starts; tests/e2e/entry.test.mjs holds both to the same table of cases).

const KNOWN = ['refreshUrl', 'logoutUrl', 'apiOrigins', 'refreshMarginSeconds', 'tokenField', 'refreshHeaders',
  'refreshTimeoutSeconds', 'crossTab', 'debug', 'lockTimeoutSeconds', 'legacyUpgradeUrl', 'legacyToken', 'dpop'];

const bad = (option, must) => new TokenManagerError('INVALID_OPTION', `option '${option}' ${must}`);
const isObject = (v) => (typeof v === 'object' && v !== null) || typeof v === 'function';

/**
 * Relative URLs resolve as fetch resolves them: against the document's base URL (<base href>), in a worker its
 * location; where there is neither (a server-side render) they are checked for syntax only.
 */
const baseUrl = () => globalThis.document?.baseURI ?? globalThis.location?.href ?? 'http://localhost/';

function checkUrl(v, option) {
  if (typeof v !== 'string' || v === '') throw bad(option, 'must be a non-empty URL string');
  let url;
  try {
    url = new URL(v, baseUrl());
  } catch {
    throw bad(option, 'is not a valid URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw bad(option, 'must be an http(s) URL');
}

function checkSeconds(v, option, allowZero) {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0 || (allowZero && v === 0))) {
    throw bad(option, allowZero ? 'must be a finite number >= 0' : 'must be a finite number > 0');
  }
}

/** The parsed URL when `s` is an origin-shaped URL (nothing but scheme, host and port), else null. */
function originShaped(s) {
  let u;
  try {
    u = new URL(s);
  } catch {
    return null;
  }
  return (u.pathname === '/' || u.pathname === '') && !u.search && !u.hash && !u.username && !u.password ? u : null;
}

/** Validates `options` and returns a copy the app can no longer change. Throws `INVALID_OPTION`. */
function checkOptions(options) {
  if (!isObject(options)) {
    throw bad('refreshUrl', "is required: pass an options object such as { refreshUrl: '/auth/refresh' }");
  }
  for (const k of Object.keys(options)) if (!KNOWN.includes(k)) throw bad(k, 'is not a TokenManager option');
  const o = { ...options };
  checkUrl(o.refreshUrl, 'refreshUrl');
  if (o.logoutUrl != null) checkUrl(o.logoutUrl, 'logoutUrl');
  if (o.apiOrigins !== undefined) {
    if (!Array.isArray(o.apiOrigins)) {
      throw bad('apiOrigins', "must be an array of origin strings such as 'https://api.example.com'");
    }
    o.apiOrigins = Array.from(o.apiOrigins);
    for (const s of o.apiOrigins) {
      // Checked on the text: engines differ on whether `*` is a host code point at all.
      if (typeof s === 'string' && s.includes('*')) {
        throw bad('apiOrigins', "must list each origin: wildcards such as 'https://*.example.com' are not supported");
      }
      const u = typeof s === 'string' ? originShaped(s) : null;
      if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') {
        throw bad('apiOrigins', "must contain only http(s) origins such as 'https://api.example.com'");
      }
    }
  }
  checkSeconds(o.refreshMarginSeconds, 'refreshMarginSeconds', true);
  checkSeconds(o.refreshTimeoutSeconds, 'refreshTimeoutSeconds', false);
  checkSeconds(o.lockTimeoutSeconds, 'lockTimeoutSeconds', false);
  if (o.tokenField !== undefined && (typeof o.tokenField !== 'string' || o.tokenField === '')) {
    throw bad('tokenField', 'must be a non-empty string');
  }
  if (o.refreshHeaders !== undefined) {
    if (!isObject(o.refreshHeaders) || Array.isArray(o.refreshHeaders)) {
      throw bad('refreshHeaders', 'must be an object of header names to string values');
    }
    o.refreshHeaders = { ...o.refreshHeaders };
    const check = typeof Headers === 'function' ? new Headers() : null;
    for (const [name, value] of Object.entries(o.refreshHeaders)) {
      if (typeof value !== 'string') throw bad('refreshHeaders', 'must have string values');
      try {
        check?.append(name, value);
      } catch {
        throw bad('refreshHeaders', 'contains an invalid header name or value');
      }
      if (name.toLowerCase() === 'authorization') throw bad('refreshHeaders', 'contains an invalid header name or value');
    }
  }
  if (o.crossTab != null && o.crossTab !== false && (typeof o.crossTab !== 'string' || o.crossTab === '')) {
    throw bad('crossTab', 'must be a channel name string or false');
  }
  if (o.debug !== undefined && typeof o.debug !== 'boolean') throw bad('debug', 'must be a boolean');
  if (o.dpop !== undefined && typeof o.dpop !== 'boolean' && o.dpop !== 'if-supported') {
    throw bad('dpop', "must be true, false or 'if-supported'");
  }
  if (o.legacyUpgradeUrl != null) checkUrl(o.legacyUpgradeUrl, 'legacyUpgradeUrl');
  if (o.legacyToken != null) {
    if (typeof o.legacyToken !== 'string' || !isB64token(o.legacyToken)) {
      throw bad('legacyToken', 'must be a token string (RFC 6750 b64token, at most 8 KiB)');
    }
    if (o.legacyUpgradeUrl == null) throw bad('legacyToken', "needs 'legacyUpgradeUrl', where it is exchanged");
  }
  return o;
}

/**
 * The syntax every access token must have (RFC 6750 §2.1 `b64token`, at most 8 KiB of UTF-8): checked here before
 * the wasm is ready, with the wasm side's rule and messages (src/session/token.rs `check_b64token`), so that
 * `setAccessToken` refuses at once either way. Beyond that a token is opaque (RFC 6749 §1.4).
 */
const isB64token = (token) => new TextEncoder().encode(token).length <= 8 * 1024 && /^[A-Za-z0-9\-._~+/]+=*$/.test(token);

function checkToken(token) {
  if (new TextEncoder().encode(token).length > 8 * 1024) {
    throw new TokenManagerError('INVALID_TOKEN', 'access token is longer than 8 KiB');
  }
  if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(token)) {
    throw new TokenManagerError('INVALID_TOKEN', 'access token is empty or contains characters outside the RFC 6750 b64token set');
  }
}

// ---------------------------------------------------------------------------------------------------------
// Messages from other tabs while the wasm loads

/**
 * The BroadcastChannel name of checked options, by the wasm side's rule (src/web/options.rs): the `crossTab`
 * string, or `wasm-token-manager:` and the absolute `refreshUrl` (resolved as checkUrl resolves it); `null` for
 * `crossTab: false`. The wasm side takes over the channel only when its own name is this one, else opens its own
 * (tests/e2e/entry.test.mjs holds the two rules to each other: one channel per manager).
 */
const channelName = (o) => (o.crossTab === false ? null
  : typeof o.crossTab === 'string' ? o.crossTab : `wasm-token-manager:${new URL(o.refreshUrl, baseUrl()).href}`);

/** At most this many messages are kept while the wasm loads; the oldest is dropped first. */
const EARLY_MESSAGES = 32;
/**
 * At most this many characters in all (and so per message) are kept while the wasm loads, the oldest dropped
 * first. The protocol's largest message is 8,704 bytes (src/session/crosstab.rs `MAX_MESSAGE_LEN`).
 */
const EARLY_CHARS = 64 * 1024;

/**
 * Opens the manager's channel at construction, while the wasm loads, and keeps the messages other tabs post
 * meanwhile (`[Date.now(), data]`, in arrival order, bounded as above: a tab that missed a login or a logout
 * would hold the wrong session until its first call). The wasm manager takes the channel over and is handed
 * the messages in order (`receiveEarly`), in the same task, so none is lost or applied twice. `null` where
 * cross-tab is off or there is no BroadcastChannel.
 */
function openEarly(options) {
  const name = channelName(options);
  if (name === null || typeof BroadcastChannel !== 'function') return null;
  let channel;
  try {
    channel = new BroadcastChannel(name);
  } catch {
    return null; // the wasm side tries again and works alone
  }
  channel.unref?.(); // Node's (jsdom): it would keep the process alive
  const early = { channel, messages: [], chars: 0, dropped: 0 };
  early.listen = (ev) => {
    const data = ev.data;
    if (typeof data !== 'string' || data.length > EARLY_CHARS) return; // malformed: the wasm side drops it too
    early.messages.push([Date.now(), data]);
    early.chars += data.length;
    while (early.messages.length > EARLY_MESSAGES || early.chars > EARLY_CHARS) {
      early.chars -= early.messages.shift()[1].length;
      early.dropped++;
    }
  };
  channel.addEventListener('message', early.listen);
  return early;
}

// ---------------------------------------------------------------------------------------------------------
// DPoP (RFC 9449)

/** Whether this global can hold a DPoP key: WebCrypto (secure contexts only: https, localhost) and IndexedDB. */
const dpopSupported = () => typeof crypto === 'object' && typeof crypto?.subtle?.sign === 'function'
  && typeof CryptoKey === 'function' && typeof indexedDB === 'object' && indexedDB !== null;

/**
 * The DPoP keyring of checked options, or null without DPoP: `dpop: true` where there is no WebCrypto or IndexedDB
 * throws `DPOP_UNSUPPORTED` (never a silent bearer token to a server that expects proofs); `'if-supported'` falls
 * back to bearer tokens there. The keyring's module (wasm_token_manager_dpop.js: the key in IndexedDB, the proofs,
 * the server nonces) is imported here, so that apps without DPoP never download it, and starts reading the key at
 * once; the wasm side calls `fetch` and `reset`, which wait for it.
 */
function dpopKeyring(o) {
  if (!o.dpop) return null;
  if (!dpopSupported()) {
    if (o.dpop === 'if-supported') {
      if (o.debug) console.debug('[wasm-token-manager] dpop: no WebCrypto or IndexedDB here: bearer tokens');
      return null;
    }
    throw new TokenManagerError('DPOP_UNSUPPORTED', "option 'dpop': this page has no WebCrypto (it needs a secure context: https or localhost) or no IndexedDB; pass dpop: 'if-supported' to use bearer tokens where DPoP is unavailable");
  }
  const name = channelName({ ...o, crossTab: o.crossTab === false ? undefined : o.crossTab });
  const ring = import('./wasm_token_manager_dpop.js').then(
    (m) => { const r = new m.DpopKeyring(name, o.debug === true); r.warm(); return r; },
    (cause) => { throw new TokenManagerError('DPOP_FAILED', `wasm-token-manager: the DPoP module could not be loaded (${cause && cause.message})`, { cause }); },
  );
  ring.catch(() => {}); // reported by the calls that wait for it
  return {
    fetch: (...args) => ring.then((r) => r.fetch(...args)),
    reset: () => ring.then((r) => r.reset()),
  };
}

// ---------------------------------------------------------------------------------------------------------
// The manager

/** The property of a bound fetch that holds the platform fetch it sends with (read by the wasm side too). */
const PLATFORM_FETCH = '__wasmTokenManagerPlatformFetch';

const disposedError = () => new TokenManagerError('DISPOSED', 'this TokenManager was disposed');

/**
 * A fetch wrapper for single-page apps: keeps the access token in memory, attaches it to requests for trusted
 * origins, refreshes it through an httpOnly cookie (single-flight, proactive and on 401), and retries a 401
 * once. The declarations (index.d.ts) document every member.
 */
export class TokenManager {
  #core = null; // the wasm manager, once loaded
  #failure = null; // the TokenManagerError every call fails with (load failed, unsupported environment)
  #disposed = false;
  #queue = []; // calls made before the wasm was ready, in order: functions of the core
  #pendingToken; // what setAccessToken was given before the wasm was ready (undefined: nothing)
  #pendingAt = 0; // when (Date.now()), and after how many of the kept messages (counted as #early.dropped + index)
  #pendingAfter = 0;
  #early = null; // the channel opened at construction and the messages kept while the wasm loads (openEarly)
  #legacyHeld = false; // whether the options hand over a legacy token (for `legacyUpgrade` before the wasm is ready)
  #dpop = null; // the DPoP keyring (dpopKeyring), or null

  /** @param {import('./index.d.ts').TokenManagerOptions} options */
  constructor(options) {
    const copy = checkOptions(options);
    this.#legacyHeld = copy.legacyToken != null;
    if (SUPPORTED) this.#dpop = dpopKeyring(copy);
    delete copy.dpop; // the wasm side learns it from the keyring it is handed
    /** The `EventTarget` firing `tokenchange`, `refreshfailed`, `sessionexpired` and `logout`. */
    this.events = new EventTarget();
    const fetchFn = (input, init) => this.#call((core) => core.fetch(input, init));
    // An app may install it as the global fetch (`globalThis.fetch = tm.fetch`): the manager then sends with
    // the platform fetch of this moment, never back through a wrapper.
    const current = globalThis.fetch;
    fetchFn[PLATFORM_FETCH] = (current && current[PLATFORM_FETCH]) || current;
    /** The manager's `fetch`, bound: it works detached. Same contract as the global `fetch`. */
    this.fetch = fetchFn;
    if (!SUPPORTED) {
      this.#failure = unsupportedError();
      this.ready = Promise.reject(this.#failure);
    } else if (loaded) {
      this.#start(copy, true);
      this.ready = this.#failure ? Promise.reject(this.#failure) : Promise.resolve();
    } else {
      this.#early = openEarly(copy);
      this.ready = load().then(
        () => { this.#start(copy, false); this.#drain(); if (this.#failure) throw this.#failure; },
        (e) => { this.#failure = e; this.#closeEarly(); this.#drain(); throw e; },
      );
    }
    // `ready` is there to be awaited when wanted; a failure nobody awaited is not an unhandled rejection (the
    // calls report it).
    this.ready.catch(() => {});
  }

  /**
   * Creates the wasm manager. `sync`: called by the constructor (the wasm was loaded already), which then throws
   * the wasm side's INVALID_OPTION itself; otherwise a refusal (options this module accepted but the wasm side
   * refused: a bug) becomes the failure every call reports.
   */
  #start(options, sync) {
    if (this.#disposed) return;
    const early = this.#early;
    let core;
    try {
      core = new Core(options, this.events, early?.channel, this.#dpop);
    } catch (e) {
      this.#closeEarly();
      if (sync) throw adopt(e);
      this.#failure = adopt(e);
      return;
    }
    // The wasm manager owns the channel now and listens to it; the messages kept until now are handed to it
    // below, in this same task, so that each is applied once and before any later one.
    this.#early = null;
    early?.channel.removeEventListener('message', early.listen);
    this.#core = core;
    const messages = early ? early.messages : [];
    const tokenAt = this.#pendingAfter - (early ? early.dropped : 0);
    // In arrival order, setAccessToken's call among them at its place and time (epochs: a logout another tab
    // posted after that call still wins, one posted before it does not).
    for (let i = 0; i <= messages.length && this.#core === core; i++) {
      if (i === Math.max(0, tokenAt) && this.#pendingToken !== undefined) {
        const token = this.#pendingToken;
        this.#pendingToken = undefined;
        try {
          core.setAccessToken(token, this.#pendingAt);
        } catch (e) {
          // The call that gave it returned long ago: report it as the platform reports an uncaught error.
          (globalThis.reportError || console.error)(adopt(e));
        }
      }
      // A listener of an event fired here may have disposed the manager: then stop.
      if (i < messages.length && this.#core === core) core.receiveEarly(messages[i][0], messages[i][1]);
    }
  }

  /** Closes the channel opened at construction (load failed, disposed before load), dropping what it kept. */
  #closeEarly() {
    this.#early?.channel.close();
    this.#early = null;
  }

  #drain() {
    for (const run of this.#queue.splice(0)) run();
  }

  /** Runs `f(core)` now or once the wasm is ready; failures become rejections of the returned promise. */
  #call(f) {
    if (this.#disposed) return Promise.reject(disposedError());
    if (this.#core) {
      try {
        return f(this.#core).catch(rethrow);
      } catch (e) {
        return Promise.reject(adopt(e));
      }
    }
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#queue.push(() => {
        if (this.#disposed) reject(disposedError());
        else if (!this.#core) reject(this.#failure || disposedError());
        else resolve(this.#call(f));
      });
    });
  }

  /** `fetch(input, init)` with credentials; stores the token of a 2xx JSON answer. Resolves with the `Response`. */
  login(input, init) {
    return this.#call((core) => core.login(input, init));
  }

  /** Refreshes now, or joins the refresh in flight; resolves `true` when a new token was stored. */
  refresh() {
    return this.#call((core) => core.refresh());
  }

  /** Logs out locally at once, tells the other tabs, then revokes on the server (`logoutUrl`). */
  logout() {
    return this.#call((core) => core.logout());
  }

  /**
   * Exchanges a legacy token once at `legacyUpgradeUrl` (the held `legacyToken` without an argument), or joins the
   * exchange in flight. Resolves `true`; rejects `LEGACY_UPGRADE_FAILED` (`status`, `reason`). Queued until ready.
   */
  upgradeLegacyToken(token) {
    return this.#call((core) => core.upgradeLegacyToken(token));
  }

  /** 'none' | 'held' | 'upgrading' | 'upgraded' | 'failed' (before the wasm is ready: 'held' or 'none'). */
  get legacyUpgrade() {
    if (this.#core) return this.#core.legacyUpgrade;
    return this.#legacyHeld && !this.#disposed && !this.#failure ? 'held' : 'none';
  }

  /** Stores a token obtained some other way, or forgets it with `null`. Throws `INVALID_TOKEN`. */
  setAccessToken(token) {
    if (this.#disposed) throw disposedError();
    if (this.#failure) throw this.#failure;
    if (this.#core) {
      try {
        this.#core.setAccessToken(token);
      } catch (e) {
        throw adopt(e);
      }
      return;
    }
    if (token !== null && token !== undefined && typeof token !== 'string') {
      throw new TokenManagerError('INVALID_TOKEN', 'setAccessToken expects a string or null');
    }
    if (typeof token === 'string') checkToken(token);
    this.#pendingToken = token ?? null;
    this.#pendingAt = Date.now();
    this.#pendingAfter = this.#early ? this.#early.dropped + this.#early.messages.length : 0;
  }

  /** Whether a token is held (before the wasm is ready: whether `setAccessToken` was given one). */
  get isAuthenticated() {
    if (this.#core) return this.#core.isAuthenticated;
    return !this.#disposed && !this.#failure && typeof this.#pendingToken === 'string';
  }

  /** The token's estimated expiry in ms since the epoch (local clock), or `null` (also before the wasm is ready). */
  get expiresAt() {
    return this.#core ? this.#core.expiresAt : null;
  }

  /**
   * Stops the manager for good: no timer, refresh, listener or channel afterwards, the token forgotten, the wasm
   * memory released; later calls reject (or throw) `DISPOSED`. Idempotent. `free()` and `[Symbol.dispose]()`
   * (so `using`) do the same.
   */
  dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    const core = this.#core;
    this.#core = null;
    this.#pendingToken = undefined;
    this.#closeEarly();
    if (core) {
      core.dispose();
      core.free();
    }
    this.#drain();
  }

  /** The same as `dispose()`. */
  free() {
    this.dispose();
  }
}

// `using` (and `[Symbol.dispose]()`): under the native symbol where the engine has it, and under
// `Symbol.for('Symbol.dispose')`, the key that TypeScript's, esbuild's and Babel's down-levelled `using` look up
// where it has not.
for (const key of new Set([Symbol.dispose, Symbol.for('Symbol.dispose')])) {
  if (typeof key !== 'symbol') continue;
  Object.defineProperty(TokenManager.prototype, key, {
    value: function dispose() { this.dispose(); },
    writable: true,
    configurable: true,
  });
}
