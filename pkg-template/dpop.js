// DPoP (RFC 9449) for wasm-token-manager: the key, the proofs and the server nonces. Loaded by the entry module
// (index.js) only for a manager created with the `dpop` option, after its support check (`dpopSupported`);
// scripts/build.sh bundles it with its two libraries into pkg/wasm_token_manager_dpop.js, so apps without DPoP
// never download it.
//
// - The key: an ECDSA P-256 pair from WebCrypto whose private key is not extractable (`generateKeyPair` of
//   panva's `dpop`, extractable: false), kept across reloads in IndexedDB as the CryptoKey objects themselves
//   (structured clone; never exported, never in localStorage), one per manager name (the cross-tab channel name,
//   so per app and origin) and shared by the app's tabs. The first tab to need one creates it; a tab that races it
//   keeps the one stored first (one IndexedDB read-write transaction: idb-keyval's `update`). `reset()` (after a
//   logout) deletes it; the next login creates a new one.
// - The proofs: `generateProof` of panva's `dpop` (typ dpop+jwt, ES256, the public JWK in the header; `htm`, `htu`,
//   `iat`, a random `jti`, `ath` for an access token, `nonce`), a fresh one for every request sent.
// - The nonces (§8, §9): the last `DPoP-Nonce` each origin sent; a 400 `use_dpop_nonce` (token endpoints) or a 401
//   `WWW-Authenticate: DPoP error="use_dpop_nonce"` (resources) is sent again once, with the new nonce and a new
//   proof, before the wasm side sees any answer: it never counts as an expiry and never starts a refresh.
import { generateKeyPair, generateProof } from 'dpop';
import { createStore, del, get, update } from 'idb-keyval';

const DB = 'wasm-token-manager-dpop';

/** A stored value that is a usable key pair: ECDSA P-256, a private key that cannot be exported. */
const usable = (pair) => pair?.privateKey instanceof CryptoKey && pair.publicKey instanceof CryptoKey
  && pair.privateKey.algorithm?.name === 'ECDSA' && pair.privateKey.algorithm?.namedCurve === 'P-256'
  && pair.privateKey.extractable === false && pair.publicKey.extractable === true;

/** At most this many bytes of a 400 answer are read to find `use_dpop_nonce` (token endpoint errors are small). */
const MAX_ERROR_BODY = 4096;

/** RFC 9449 §9: a `DPoP` challenge whose `error` auth-param is `use_dpop_nonce` (token68 or quoted). */
const NONCE_CHALLENGE = /(?:^|,)\s*DPoP\b[^]*?\berror\s*=\s*"?use_dpop_nonce"?/i;

async function errorCode(response) {
  const type = response.headers.get('content-type') || '';
  if (!/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type) || !response.body) return null;
  const reader = response.clone().body.getReader();
  const chunks = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_ERROR_BODY) return null;
      chunks.push(value);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  try {
    const body = JSON.parse(new TextDecoder().decode(await new Blob(chunks).arrayBuffer()));
    return typeof body?.error === 'string' ? body.error : null;
  } catch {
    return null;
  }
}

/** Whether `response` asks for the request again with the nonce it carries (§8.1 token endpoints, §9 resources). */
async function asksForNonce(response) {
  if (!response.headers.has('dpop-nonce')) return false;
  if (response.status === 401) return NONCE_CHALLENGE.test(response.headers.get('www-authenticate') || '');
  if (response.status === 400) return (await errorCode(response)) === 'use_dpop_nonce';
  return false;
}

/** `htu` (RFC 9449 §4.2): the request URI without query and fragment. */
const htuOf = (url) => {
  const u = new URL(url);
  u.search = '';
  u.hash = '';
  return u.href;
};

/** The DPoP key and nonces of one manager; the wasm side calls `fetch` and `reset`. */
export class DpopKeyring {
  #name;
  #store;
  #debug;
  #key = null; // Promise<CryptoKeyPair>, the key proofs are signed with
  #keyToken; // the access token #key was (re)read for: another token (from another tab, a new login) rereads it
  #memory = null; // Promise<CryptoKeyPair> where IndexedDB refused to open (this page only)
  #nonces = new Map(); // origin -> last DPoP-Nonce

  /** `name`: the manager's name (its channel name); `debug`: say what happens with console.debug. */
  constructor(name, debug) {
    this.#name = name;
    this.#debug = debug;
    this.#store = createStore(DB, 'keys');
  }

  #say(what) {
    if (this.#debug) console.debug(`[wasm-token-manager] dpop: ${what}`);
  }

  /** The stored key, created and stored first when there is none. */
  async #load() {
    try {
      let pair = await get(this.#name, this.#store);
      if (!usable(pair)) {
        const fresh = await generateKeyPair('ES256');
        let created = false;
        // In one read-write transaction: a tab that stored one meanwhile wins, and every tab uses that one.
        await update(this.#name, (stored) => {
          if (usable(stored)) return stored;
          created = true;
          return fresh;
        }, this.#store);
        pair = await get(this.#name, this.#store);
        if (created) this.#say('created a new key');
      }
      if (!usable(pair)) throw new Error('IndexedDB did not keep the key');
      return pair;
    } catch (e) {
      // IndexedDB refused (a private window of some browsers, storage blocked): a key for this page only; a reload
      // then needs a new login, since the session is bound to a key that is gone.
      this.#say(`IndexedDB unavailable (${e && e.message}): the key lives in this page only`);
      this.#memory ??= generateKeyPair('ES256');
      return this.#memory;
    }
  }

  /** The key for a proof: reread from IndexedDB for a call without a token and when the token changed. */
  #keyFor(token) {
    if (this.#key === null || token === null || token !== this.#keyToken) {
      this.#key = this.#load();
      this.#key.catch(() => {}); // awaited by the caller; a rejection here is not unhandled
      this.#keyToken = token;
    }
    return this.#key;
  }

  /** Starts loading the key (construction), so that the first request does not wait for IndexedDB. */
  warm() {
    this.#keyFor(null);
  }

  async #prove(request, token) {
    const key = await this.#keyFor(token);
    const origin = new URL(request.url).origin;
    const proof = await generateProof(key, htuOf(request.url), request.method, this.#nonces.get(origin),
      token ?? undefined);
    request.headers.set('dpop', proof);
    if (token !== null) request.headers.set('authorization', `DPoP ${token}`);
  }

  #remember(request, response) {
    const nonce = response.headers.get('dpop-nonce');
    if (nonce) this.#nonces.set(new URL(request.url).origin, nonce);
  }

  /**
   * Sends `input`/`init` with `platformFetch` and a fresh proof: with `token` (a DPoP-bound access token) its `ath`
   * and `Authorization: DPoP <token>`; without (null), a proof of the key alone (login, refresh, logout). When the
   * answer asks for a server nonce and `retry` (the body can be sent again), sends once more with it. Resolves with
   * the last answer; rejects as fetch does, or with the error of a failed proof.
   */
  async fetch(platformFetch, input, init, token, retry) {
    const request = new Request(input, init);
    const spare = retry ? request.clone() : null;
    await this.#prove(request, token);
    const response = await platformFetch.call(globalThis, request);
    this.#remember(request, response);
    if (spare === null || !(await asksForNonce(response))) {
      spare?.body?.cancel().catch(() => {});
      return response;
    }
    this.#say(`${new URL(request.url).origin} asked for a new nonce: sent again`);
    response.body?.cancel().catch(() => {});
    await this.#prove(spare, token);
    const again = await platformFetch.call(globalThis, spare);
    this.#remember(spare, again);
    return again;
  }

  /**
   * Deletes the stored key (after a logout): the next login creates a new one. The server nonces stay: they belong
   * to the servers, not to the key, so a login right after a logout is not challenged again.
   */
  async reset() {
    this.#key = null;
    this.#memory = null;
    try {
      await del(this.#name, this.#store);
    } catch {
      // IndexedDB unavailable: the key was this page's only, and is dropped above.
    }
  }
}
