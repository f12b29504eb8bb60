//! The server's access-token rules past the signature (server/src/tokens.rs): any header and payload bytes,
//! correctly signed with the server's current key, go through `verify_access_token`. What it accepts must be
//! exactly what the rules say: `typ: at+jwt`, ES256, our `kid`, a JSON object with string `iss`/`aud` equal to
//! ours, integer `exp`/`iat` and an optional integer `nbf` inside the time window (S05, S07, S27–S33).
#![no_main]
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use auth_server::clock::ManualClock;
use auth_server::config::Config;
use auth_server::tokens::verify_access_token;
use auth_server::App;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const NOW: u64 = 1_700_000_000;

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| auth_server::app(Config::default(), Arc::new(ManualClock::new(NOW))).expect("the app builds"))
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    /// Use our own well-formed header (most runs), or the fuzzer's header bytes.
    own_header: bool,
    header: &'a [u8],
    payload: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let state = &app().state;
    let keys = state.keys.read().expect("keys");
    let key = keys.signing_key(NOW).expect("a signing key");
    let header = if input.own_header {
        format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{}"}}"#, key.kid).into_bytes()
    } else {
        input.header.to_vec()
    };
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(&header), URL_SAFE_NO_PAD.encode(input.payload));
    let sig = jsonwebtoken::crypto::sign(signing_input.as_bytes(), key.encoding_key(), jsonwebtoken::Algorithm::ES256)
        .expect("signing");
    let token = format!("{signing_input}.{sig}");
    let cfg = &state.config;
    let Ok(claims) = verify_access_token(&token, &keys, &cfg.issuer, &cfg.audience, cfg.leeway, NOW) else { return };

    // Accepted: hold it to the written rules with serde_json as the reference reader.
    let shown = || String::from_utf8_lossy(input.payload).into_owned();
    let h: Value = serde_json::from_slice(&header).expect("an accepted header is JSON");
    assert_eq!(h["alg"], "ES256");
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(h["kid"], key.kid.as_str());
    assert!(h.get("crit").is_none() && h.get("b64").is_none(), "crit/b64 accepted");
    let p: Value = serde_json::from_slice(input.payload).unwrap_or_else(|e| panic!("accepted a payload serde_json refuses ({e}): {}", shown()));
    assert_eq!(p["iss"], cfg.issuer.as_str(), "iss of {}", shown());
    assert_eq!(p["aud"], cfg.audience.as_str(), "aud of {}", shown());
    for name in ["sub", "sid", "jti"] {
        assert!(p[name].is_string(), "{name} of {}", shown());
    }
    assert_eq!(p["exp"].as_u64(), Some(claims.exp), "exp of {}", shown());
    assert_eq!(p["iat"].as_u64(), Some(claims.iat), "iat of {}", shown());
    match p.get("nbf") {
        None => assert_eq!(claims.nbf, None),
        Some(v) => assert_eq!(v.as_u64(), claims.nbf, "nbf of {}", shown()),
    }
    assert!(NOW < claims.exp.saturating_add(cfg.leeway), "expired token accepted: {}", shown());
    assert!(claims.iat <= NOW + cfg.leeway, "iat in the future accepted: {}", shown());
    assert!(claims.nbf.is_none_or(|n| n <= NOW + cfg.leeway), "nbf in the future accepted: {}", shown());
});
