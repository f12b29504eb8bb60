//! The APIs' verifier (verifier/src/): any string as a bearer `Authorization` header and as an access token's
//! header, any bytes as a JWKS document, as `Cache-Control` and `Age` values and as claims. Only errors, never a
//! panic; what is accepted keeps the documented bounds (S08: a JWKS can never make a key ambiguous).
#![no_main]
use http::header::{HeaderMap, HeaderValue, AGE, AUTHORIZATION, CACHE_CONTROL};
use libfuzzer_sys::fuzz_target;
use token_verifier::jwks::{freshness, parse_jwks, MAX_KID_LEN};
use token_verifier::token::{bearer_token, check_header, MAX_TOKEN_LEN};
use token_verifier::Claims;

fuzz_target!(|data: &[u8]| {
    if let Ok(keys) = parse_jwks(data) {
        for (kid, key) in &keys {
            assert_eq!(kid, &key.kid);
            assert!(!kid.is_empty() && kid.len() <= MAX_KID_LEN);
        }
    }
    let _ = serde_json::from_slice::<Claims>(data);
    if let Ok(v) = HeaderValue::from_bytes(data) {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, v.clone());
        h.insert(AGE, v.clone());
        assert!(freshness(&h).is_none_or(|s| s <= 1 << 31));
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, v);
        if let Ok(t) = bearer_token(&h) {
            assert!(!t.is_empty() && !t.contains(' '));
        }
    }
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(h) = check_header(s, "at+jwt") {
        assert!(s.len() <= MAX_TOKEN_LEN);
        assert!(!h.kid.is_empty() && h.kid.len() <= MAX_KID_LEN);
        assert!(h.alg != "none" && !h.alg.starts_with("HS"), "{}", h.alg);
    }
});
