//! The client's access-token readers (src/session/token.rs, json.rs): any string as a token, and any bytes
//! as a JWT payload. Only errors, never a panic (C48); the base64url decoder agrees with the base64 crate;
//! the claims reader agrees with serde_json on what is a claims object and on the timing numbers.
#![no_main]
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use wasm_token_manager::session::{b64url_decode, check_b64token, decode_unverified, AccessToken, MAX_TOKEN_LEN};
use wtm_fuzz::{close, reference_claims};

/// `{"alg":"ES256","typ":"at+jwt"}`
const HEADER: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9";

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let b64 = check_b64token(s);
        let _ = AccessToken::new(s);
        if let Ok((token, claims)) = AccessToken::parse(s) {
            assert!(b64.is_ok(), "a stored token must be a b64token: {s:?}");
            assert_eq!(token.expose(), s);
            for c in [claims.exp, claims.iat, claims.nbf].into_iter().flatten() {
                assert!(c.is_finite());
            }
        }
        if let Ok(claims) = decode_unverified(s) {
            assert!(s.len() <= MAX_TOKEN_LEN);
            assert_eq!(AccessToken::parse_jwt(s).map(|(_, c)| c).ok(), Some(claims));
        }
        assert_eq!(b64url_decode(s), URL_SAFE_NO_PAD.decode(s).ok(), "base64url of {s:?}");
    }

    // The bytes as a payload: the core's claims reader against serde_json.
    let token = format!("{HEADER}.{}.c2ln", URL_SAFE_NO_PAD.encode(data));
    if token.len() > MAX_TOKEN_LEN {
        return;
    }
    match (reference_claims(data), decode_unverified(&token)) {
        (None, Ok(c)) => panic!("serde_json refuses {:?} as a claims object, the core read {c:?}", String::from_utf8_lossy(data)),
        (Some(_), Err(e)) => panic!("serde_json reads {:?} as a claims object, the core refused it: {e:?}", String::from_utf8_lossy(data)),
        (Some(value), Ok(claims)) => {
            for (name, ours) in [("exp", claims.exp), ("iat", claims.iat), ("nbf", claims.nbf)] {
                let theirs = value.get(name).and_then(serde_json::Value::as_f64);
                assert!(close(ours, theirs), "{name} of {:?}: core {ours:?}, serde_json {theirs:?}", String::from_utf8_lossy(data));
            }
        }
        (None, Err(_)) => {}
    }
});
