//! DPoP (RFC 9449) in the shell: which calls carry a proof. The key, the proofs and the server nonces are the
//! package entry's keyring (pkg-template/dpop.js, on WebCrypto and IndexedDB), handed to the constructor with the
//! `dpop` option; the core decides which tokens are DPoP-bound ([`AccessToken::is_dpop`]).

use js_sys::Promise;
use wasm_bindgen::{JsCast, JsValue};

use super::driver::Inner;
use super::js;
use crate::session::AccessToken;

/// What a request proves, with a keyring.
pub(super) enum Proof<'a> {
    /// Nothing: a request without the token, or with a bearer token (its `Authorization` is set already).
    Nothing,
    /// Possession of the key (login, refresh, logout, the legacy exchange: RFC 9449 §4.2 without `ath`).
    Key,
    /// A DPoP-bound access token: `Authorization: DPoP <token>` and a proof with its `ath` (§7.1).
    Token(&'a AccessToken),
}

/// Sends `input`/`init` with the platform `fetch`; with a keyring and a proof to make, through the keyring, which
/// signs a fresh proof and, when the answer asks for a server nonce and `retry` (the body can be sent again),
/// sends once more with it (§8, §9). Errors: what `fetch` throws synchronously.
pub(super) fn send(
    inner: &Inner,
    input: &JsValue,
    init: &JsValue,
    proof: Proof<'_>,
    retry: bool,
) -> Result<Promise, JsValue> {
    let Some(keyring) = &inner.dpop else {
        return js::global_fetch_init(input, init);
    };
    let token = match proof {
        Proof::Nothing => return js::global_fetch_init(input, init),
        Proof::Key => JsValue::NULL,
        Proof::Token(t) => JsValue::from_str(t.expose()),
    };
    js::keyring_fetch(keyring, input, init, &token, retry)
}

/// What a proof of the key is wanted for, with a keyring: [`Proof::Key`], or nothing without DPoP.
pub(super) fn key_proof(inner: &Inner) -> Proof<'static> {
    if inner.dpop.is_some() {
        Proof::Key
    } else {
        Proof::Nothing
    }
}

/// After a logout: the keyring deletes the stored key, so that the next login binds its session to a new one.
pub(super) fn reset_key(inner: &Inner) {
    if let Some(keyring) = &inner.dpop {
        match js::call(keyring, "reset", &[]) {
            Ok(p) => js::discard(p.unchecked_into()),
            Err(e) => js::report(&e),
        }
    }
}
