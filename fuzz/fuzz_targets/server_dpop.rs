//! The DPoP proof rules the server and the verifier share (verifier/src/dpop.rs, re-exported as auth_server::dpop; RFC 9449 §4.3): any string as a `DPoP` header, and any
//! header and payload bytes correctly signed with a P-256 key whose public JWK the header may carry, go through
//! `dpop::verify`. Nothing unsigned is accepted; what is accepted has `typ: dpop+jwt`, ES256, a public P-256 `jwk`
//! (the signing key's, with no private member), a string `jti` of 1–256 bytes, `htm`/`htu` of the request and an
//! integer `iat` inside the window (serde_json as the reference reader).
#![no_main]
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use auth_server::clock::ManualClock;
use auth_server::config::Config;
use auth_server::dpop::{self, Request};
use auth_server::App;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const NOW: u64 = 1_700_000_000;
const WINDOW: u64 = 60;
const URI: &str = "http://127.0.0.1:8080/auth/refresh";

/// The server's signing key stands in for a client key: a real P-256 key with a public JWK.
fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| auth_server::app(Config::default(), Arc::new(ManualClock::new(NOW))).expect("the app builds"))
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    /// A raw `DPoP` header value (any string), or a signed proof built from the parts below.
    raw: Option<&'a str>,
    /// Use a well-formed header carrying the key's JWK (most runs), or the fuzzer's header bytes.
    own_header: bool,
    header: &'a [u8],
    payload: &'a [u8],
    /// On a resource request, the access token whose `ath` must match.
    access_token: Option<&'a str>,
}

fuzz_target!(|input: Input<'_>| {
    let state = &app().state;
    let keys = state.keys.read().expect("keys");
    let key = keys.signing_key(NOW).expect("a signing key");
    let jwks = keys.jwks(NOW);
    let jwk = &jwks["keys"][0];
    let req = Request { method: "POST", uri: URI, now: NOW, window: WINDOW, access_token: input.access_token };
    let (proof, header) = match input.raw {
        Some(raw) => (raw.to_string(), None),
        None => {
            let header = if input.own_header {
                serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).to_string().into_bytes()
            } else {
                input.header.to_vec()
            };
            let signing_input =
                format!("{}.{}", URL_SAFE_NO_PAD.encode(&header), URL_SAFE_NO_PAD.encode(input.payload));
            let sig =
                jsonwebtoken::crypto::sign(signing_input.as_bytes(), key.encoding_key(), jsonwebtoken::Algorithm::ES256)
                    .expect("signing");
            (format!("{signing_input}.{sig}"), Some(header))
        }
    };
    let Ok(p) = dpop::verify(&proof, &req) else { return };

    // Accepted: only a proof signed here, held to the written rules with serde_json as the reference reader.
    let header = header.unwrap_or_else(|| panic!("an unsigned string was accepted: {proof}"));
    let shown = || String::from_utf8_lossy(input.payload).into_owned();
    let h: Value = serde_json::from_slice(&header).expect("an accepted header is JSON");
    assert_eq!(h["typ"], "dpop+jwt");
    assert_eq!(h["alg"], "ES256");
    assert!(h.get("crit").is_none() && h.get("b64").is_none(), "crit/b64 accepted");
    assert_eq!((&h["jwk"]["kty"], &h["jwk"]["crv"]), (&jwk["kty"], &jwk["crv"]));
    assert_eq!((&h["jwk"]["x"], &h["jwk"]["y"]), (&jwk["x"], &jwk["y"]), "a proof verified under another key");
    assert!(h["jwk"].get("d").is_none(), "a private member accepted");
    let c: Value = serde_json::from_slice(input.payload)
        .unwrap_or_else(|e| panic!("accepted a payload serde_json refuses ({e}): {}", shown()));
    let jti = c["jti"].as_str().unwrap_or_else(|| panic!("jti of {}", shown()));
    assert!(!jti.is_empty() && jti.len() <= dpop::MAX_JTI_LEN && jti == p.jti, "jti of {}", shown());
    assert_eq!(c["htm"], "POST", "htm of {}", shown());
    let htu = c["htu"].as_str().unwrap_or_else(|| panic!("htu of {}", shown()));
    assert_eq!(dpop::normalise_htu(htu).as_deref(), dpop::normalise_htu(URI).as_deref(), "htu of {}", shown());
    assert_eq!(c["iat"].as_u64(), Some(p.iat), "iat of {}", shown());
    assert!(p.iat.abs_diff(NOW) <= WINDOW, "iat outside the window: {}", shown());
    if let Some(at) = input.access_token {
        assert_eq!(c["ath"].as_str(), Some(dpop::ath(at).as_str()), "ath of {}", shown());
    }
});
