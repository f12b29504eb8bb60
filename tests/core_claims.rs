//! Native tests of the strict unverified JWT decoder (catalogue C01–C18) and of response bodies (C19–C23).
#![cfg(not(target_arch = "wasm32"))]

use wasm_token_manager::session::*;

mod common;
use common::b64;

fn seg(json: &[u8]) -> String {
    b64(json, true)
}

fn jwt(payload: &str) -> String {
    format!(
        "{}.{}.c2ln",
        seg(br#"{"alg":"HS256","typ":"at+jwt"}"#),
        seg(payload.as_bytes())
    )
}

fn jwt_bytes(payload: &[u8]) -> String {
    format!("{}.{}.c2ln", seg(br#"{"alg":"HS256"}"#), seg(payload))
}

#[test]
fn decodes_exp_and_iat() {
    let c = decode_unverified(&jwt(r#"{"exp":1700000300,"iat":1700000000,"sub":"u"}"#)).unwrap();
    assert_eq!(c.exp, Some(1_700_000_300.0));
    assert_eq!(c.iat, Some(1_700_000_000.0));
    assert!(c.typ_at_jwt);
}

#[test]
fn c01_wrong_segment_count_rejected() {
    let p = seg(br#"{"exp":1}"#);
    for t in [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        ".",
        ".....",
        &format!("{p}.{p}"),
        &format!("{p}.{p}.{p}.{p}"),
        &format!(".{p}.x"),
    ] {
        assert!(decode_unverified(t).is_err(), "{t:?} accepted");
        assert!(AccessToken::parse_jwt(t).is_err());
    }
}

#[test]
fn c02_bad_base64url_rejected() {
    let h = seg(br#"{"alg":"HS256"}"#);
    let good = seg(br#"{"exp":1700000000}"#);
    // Padding, standard alphabet, whitespace, impossible length.
    let padded = b64(br#"{"exp":17000000}"#.as_ref(), false);
    assert!(padded.ends_with('='));
    for p in [
        padded.clone(),
        format!("{good}="),
        good.replace('e', "+"),
        good.replace('e', "/"),
        format!("{} {}", &good[..4], &good[4..]),
        format!("{}\r\n", good),
        format!("{good}A"),
    ] {
        let t = format!("{h}.{p}.c2ln");
        assert!(decode_unverified(&t).is_err(), "{p:?} accepted");
    }
    // Non-canonical trailing bits: "eyJ" + last char changed so the unused bits are non-zero.
    let one = seg(b"{}"); // "e30"
    assert_eq!(one, "e30");
    assert!(decode_unverified(&format!("{h}.e31.c2ln")).is_err());
}

#[test]
fn c03_payload_not_a_json_object_rejected() {
    for p in [
        &br#"{"notajson"#[..],
        b"null",
        b"[]",
        b"123",
        br#""s""#,
        b"",
        b"{} {}",
    ] {
        let t = if p.is_empty() {
            format!("{}..c2ln", seg(br#"{"alg":"x"}"#))
        } else {
            jwt_bytes(p)
        };
        assert!(
            decode_unverified(&t).is_err(),
            "{:?} accepted",
            String::from_utf8_lossy(p)
        );
    }
}

#[test]
fn c04_non_utf8_bom_nul_lone_surrogate_rejected() {
    let cases: [&[u8]; 5] = [
        b"{\"exp\":1,\"s\":\"\xC0\xAF\"}",
        b"\xEF\xBB\xBF{\"exp\":1}",
        b"{\"exp\":1,\"s\":\"a\x00b\"}",
        br#"{"exp":1,"sub":"\ud800"}"#,
        b"{\"exp\":1}\x00",
    ];
    for p in cases {
        assert!(
            decode_unverified(&jwt_bytes(p)).is_err(),
            "{:?} accepted",
            String::from_utf8_lossy(p)
        );
    }
}

#[test]
fn c05_exp_missing_gives_no_timer() {
    let c = decode_unverified(&jwt(r#"{"sub":"u"}"#)).unwrap();
    assert_eq!(c.exp, None);
    assert_eq!(plan_expiry(&c, None, 1_700_000_000_000, 60_000), None);
    // expires_in from the body stands in.
    let e = plan_expiry(&c, Some(300.0), 1_700_000_000_000, 60_000).unwrap();
    assert_eq!(e.expires_at, 1_700_000_300_000);
}

#[test]
fn c06_exp_of_wrong_type_is_missing() {
    for v in [
        r#""1700000000""#,
        r#""never""#,
        "true",
        "null",
        "{}",
        "[]",
        r#"{"a":[1,{"b":2}]}"#,
    ] {
        let c = decode_unverified(&jwt(&format!(r#"{{"exp":{v}}}"#))).unwrap();
        assert_eq!(c.exp, None, "{v} coerced");
        assert_eq!(plan_expiry(&c, None, 1_700_000_000_000, 60_000), None);
    }
}

#[test]
fn c07_exp_zero_or_negative_looks_expired() {
    for v in ["0", "-1", "-1700000000"] {
        let c = decode_unverified(&jwt(&format!(r#"{{"exp":{v}}}"#))).unwrap();
        let e = plan_expiry(&c, None, 1_700_000_000_000, 60_000).unwrap();
        assert!(e.is_expired(1_700_000_000_000));
        assert_eq!(
            e.refresh_at, None,
            "an expired-looking token must not schedule a refresh"
        );
    }
}

#[test]
fn c08_huge_exp_never_overflows() {
    let now = 1_700_000_000_000;
    for v in [
        "9999999999999",
        "9007199254740993",
        "18446744073709551615",
        "1e300",
    ] {
        let c = decode_unverified(&jwt(&format!(r#"{{"exp":{v}}}"#))).unwrap();
        assert_eq!(plan_expiry(&c, None, now, 60_000), None, "{v} scheduled");
    }
    // 1e309 is not a finite number: serde_json refuses it, the token is refused (no panic).
    assert!(decode_unverified(&jwt(r#"{"exp":1e309}"#)).is_err());
}

#[test]
fn c09_millisecond_exp_treated_as_missing() {
    let now = 1_700_000_000_000u64;
    let c = decode_unverified(&jwt(&format!(r#"{{"exp":{}}}"#, now + 300_000))).unwrap();
    assert_eq!(plan_expiry(&c, None, now, 60_000), None);
}

#[test]
fn c10_float_exp_accepted() {
    let c = decode_unverified(&jwt(r#"{"exp":1700000000.5}"#)).unwrap();
    assert_eq!(c.exp, Some(1_700_000_000.5));
    let e = plan_expiry(&c, None, 1_699_999_000_000, 60_000).unwrap();
    assert_eq!(e.expires_at, 1_700_000_000_500);
}

#[test]
fn c11_client_clock_ahead_uses_exp_minus_iat() {
    // Server issued at T with a 5-minute lifetime; the client clock is 10 minutes (then 24 h) ahead.
    let t = 1_700_000_000u64;
    let c = decode_unverified(&jwt(&format!(r#"{{"iat":{t},"exp":{}}}"#, t + 300))).unwrap();
    for ahead_s in [600u64, 86_400] {
        let now = (t + ahead_s) * 1000;
        let e = plan_expiry(&c, None, now, 60_000).unwrap();
        assert_eq!(e.expires_at, now + 300_000);
        assert_eq!(e.refresh_at, Some(now + 240_000));
    }
}

#[test]
fn c12_nbf_is_read_but_not_trusted() {
    let c = decode_unverified(&jwt(r#"{"exp":1700000300,"nbf":1800000000}"#)).unwrap();
    assert_eq!(c.nbf, Some(1_800_000_000.0));
    assert!(plan_expiry(&c, None, 1_700_000_000_000, 60_000).is_some());
}

#[test]
fn c13_iat_in_future_schedules_from_receipt() {
    // The client clock is 10 minutes behind: iat is "in the future" locally.
    let t = 1_700_000_000u64;
    let c = decode_unverified(&jwt(&format!(r#"{{"iat":{t},"exp":{}}}"#, t + 300))).unwrap();
    let now = (t - 600) * 1000;
    let e = plan_expiry(&c, None, now, 60_000).unwrap();
    assert_eq!(
        e.expires_at,
        now + 300_000,
        "lifetime from receipt, not exp - now (which would be 15 min)"
    );
}

#[test]
fn c14_duplicate_claim_rejected() {
    assert!(decode_unverified(&jwt(r#"{"exp":1,"exp":9999999999}"#)).is_err());
    assert!(decode_unverified(&jwt(r#"{"iat":1,"exp":2,"iat":3}"#)).is_err());
}

#[test]
fn c15_huge_token_rejected_before_decode() {
    let big = "a".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(decode_unverified(&big), Err(TokenError::TooLong));
    let payload = format!(r#"{{"exp":1,"pad":"{}"}}"#, "x".repeat(100 * 1024));
    assert_eq!(decode_unverified(&jwt(&payload)), Err(TokenError::TooLong));
    assert!(AccessToken::new(&"a".repeat(1 << 20)).is_err());
}

#[test]
fn c16_header_injection_characters_rejected() {
    for t in [
        "abc\r\nX-Evil: 1",
        "a b",
        "a\tb",
        "a,b",
        "é",
        "a\u{0}b",
        "a\"b",
        "==",
        "",
    ] {
        assert!(check_b64token(t).is_err(), "{t:?} accepted");
        assert!(AccessToken::new(t).is_err());
        assert!(decode_unverified(t).is_err());
    }
    let good = jwt(r#"{"exp":1}"#);
    assert!(decode_unverified(&format!("{good}\r\nX-Evil: 1")).is_err());
    assert!(check_b64token("abc-._~+/==").is_ok());
}

#[test]
fn c17_typ_is_informational() {
    let t = format!(
        "{}.{}.c2ln",
        seg(br#"{"alg":"RS256","typ":"JWT"}"#),
        seg(br#"{"exp":1700000000}"#)
    );
    let c = decode_unverified(&t).unwrap();
    assert!(!c.typ_at_jwt);
    assert_eq!(c.exp, Some(1_700_000_000.0));
}

#[test]
fn c18_alg_none_and_empty_signature_treated_alike() {
    let none = format!(
        "{}.{}.",
        seg(br#"{"alg":"none"}"#),
        seg(br#"{"exp":1700000000}"#)
    );
    let signed = format!(
        "{}.{}.c2ln",
        seg(br#"{"alg":"HS256"}"#),
        seg(br#"{"exp":1700000000}"#)
    );
    assert_eq!(
        decode_unverified(&none).unwrap(),
        decode_unverified(&signed).unwrap()
    );
}

#[test]
fn token_debug_is_redacted() {
    let (t, _) = AccessToken::parse_jwt(&jwt(r#"{"exp":1}"#)).unwrap();
    let shown = format!("{t:?}");
    assert!(shown.contains("[redacted]"));
    assert!(!shown.contains(t.expose()));
    let mut s = Session::new(SessionConfig::default());
    s.set_token(1, t.expose(), None, TokenSource::Set).unwrap();
    assert!(!format!("{s:?}").contains(t.expose()));
}

const JSON: Option<&str> = Some("application/json");

/// An opaque access token as RFC 6749 servers issue them: 43 base64url characters (32 random bytes).
fn opaque(seed: u8) -> String {
    let bytes: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(97).wrapping_add(seed))
        .collect();
    b64(&bytes, true)
}

#[test]
fn c58_opaque_token_accepted_without_claims() {
    let t = opaque(1);
    assert_eq!(t.len(), 43);
    assert!(
        decode_unverified(&t).is_err(),
        "the fixture must not be a JWT"
    );
    let (tok, claims) = AccessToken::parse(&t).unwrap();
    assert_eq!(tok.expose(), t);
    assert_eq!(claims, UnverifiedClaims::default());
    // Every b64token character, and trailing padding, as RFC 6750 §2.1 allows.
    for t in [
        "a",
        "abc-._~+/==",
        "2YotnFZFEjr1zCsicMWpAA",
        "mF_9.B5f-4.1JqM",
    ] {
        assert_eq!(
            AccessToken::parse(t).map(|(tok, _)| tok.expose().to_owned()),
            Ok(t.to_owned()),
            "{t:?} refused"
        );
    }
    // A JWT still has its claims read.
    let (_, claims) = AccessToken::parse(&jwt(r#"{"exp":1700000300}"#)).unwrap();
    assert_eq!(claims.exp, Some(1_700_000_300.0));
}

#[test]
fn c58_three_segments_that_do_not_decode_are_opaque() {
    // Three segments whose header or payload is not strict base64url of a JSON object with unique members
    // (C02, C03, C04, C14): the claims are never read (no exp is trusted from them), the token is kept.
    let h = seg(br#"{"alg":"HS256"}"#);
    for t in [
        "a.b.c".to_owned(),
        format!("{h}.{}.c2ln", seg(b"[]")),
        format!("{h}.{}.c2ln", seg(b"{\"exp\":1,\"s\":\"\xC0\xAF\"}")),
        jwt(r#"{"exp":1,"exp":9999999999}"#),
        format!("{h}.e31.c2ln"),
        format!("{h}.{}+.c2ln", seg(br#"{"exp":1700000300}"#)),
    ] {
        assert!(decode_unverified(&t).is_err(), "{t:?} decodes");
        let (tok, claims) = AccessToken::parse(&t).unwrap_or_else(|e| panic!("{t:?} refused: {e}"));
        assert_eq!(tok.expose(), t);
        assert_eq!(
            claims,
            UnverifiedClaims::default(),
            "{t:?}: claims read from an undecodable token"
        );
    }
    // Size and characters are still checked (C15, C16).
    assert_eq!(
        AccessToken::parse(&"a".repeat(MAX_TOKEN_LEN + 1)).unwrap_err(),
        TokenError::TooLong
    );
    for t in ["", "a b", "abc\r\nX-Evil: 1", "a,b", "é", "=="] {
        assert_eq!(
            AccessToken::parse(t).unwrap_err(),
            TokenError::BadCharacters,
            "{t:?}"
        );
    }
}

#[test]
fn c58_opaque_token_from_expires_in() {
    let t = opaque(2);
    let body = format!(r#"{{"access_token":"{t}","token_type":"Bearer","expires_in":4}}"#);
    let b = parse_token_body(body.as_bytes(), JSON, None).unwrap();
    assert_eq!(b.token.expose(), t);
    assert_eq!(b.claims, UnverifiedClaims::default());
    assert_eq!(b.expires_in, Some(4.0));
    let e = plan_expiry(&b.claims, b.expires_in, 1_700_000_000_000, 60_000).unwrap();
    assert_eq!(
        e.expires_at, 1_700_000_004_000,
        "the lifetime counts from receipt"
    );
    assert_eq!(
        e.refresh_at,
        Some(1_700_000_002_000),
        "renewed ahead of expiry, as a JWT is"
    );
    // Without a lifetime there is no timer: the 401 path applies (C05).
    let b = parse_token_body(
        format!(r#"{{"access_token":"{t}"}}"#).as_bytes(),
        JSON,
        None,
    )
    .unwrap();
    assert_eq!(
        plan_expiry(&b.claims, b.expires_in, 1_700_000_000_000, 60_000),
        None
    );
}

#[test]
fn body_reads_token_field_and_fallback() {
    let t = jwt(r#"{"exp":1700000300}"#);
    let b = parse_token_body(
        format!(r#"{{"accessToken":"{t}","expires_in":300}}"#).as_bytes(),
        JSON,
        None,
    )
    .unwrap();
    assert_eq!(b.token.expose(), t);
    assert_eq!(b.expires_in, Some(300.0));
    let b = parse_token_body(
        format!(r#"{{"access_token":"{t}","token_type":"Bearer"}}"#).as_bytes(),
        Some("Application/JSON; charset=utf-8"),
        None,
    )
    .unwrap();
    assert_eq!(b.token.expose(), t);
    // A configured field is the only one read.
    assert!(parse_token_body(
        format!(r#"{{"access_token":"{t}"}}"#).as_bytes(),
        JSON,
        Some("jwt")
    )
    .is_err());
    assert!(parse_token_body(format!(r#"{{"jwt":"{t}"}}"#).as_bytes(), JSON, Some("jwt")).is_ok());
}

#[test]
fn c62_expires_in_camel_case() {
    // The reference server's own answer (server/src/routes/auth.rs token_response).
    let t = jwt(r#"{"sub":"u"}"#);
    let body = format!(r#"{{"accessToken":"{t}","expiresIn":900,"tokenType":"Bearer"}}"#);
    let b = parse_token_body(body.as_bytes(), JSON, None).unwrap();
    assert_eq!(b.expires_in, Some(900.0));
    let e = plan_expiry(&b.claims, b.expires_in, 1_700_000_000_000, 60_000).unwrap();
    assert_eq!(e.expires_at, 1_700_000_900_000);
    // An opaque token with the camelCase field, read without a configured tokenField.
    let o = opaque(3);
    let b = parse_token_body(
        format!(r#"{{"accessToken":"{o}","expiresIn":4}}"#).as_bytes(),
        JSON,
        None,
    )
    .unwrap();
    assert_eq!(b.expires_in, Some(4.0));
    // With a configured token field the lifetime fields are still read.
    let b = parse_token_body(
        format!(r#"{{"jwt":"{o}","expiresIn":30}}"#).as_bytes(),
        JSON,
        Some("jwt"),
    )
    .unwrap();
    assert_eq!(b.expires_in, Some(30.0));
    assert_eq!(LIFETIME_FIELDS, ["expires_in", "expiresIn"]);
}

#[test]
fn c62_both_lifetime_fields_earlier_wins() {
    let o = opaque(4);
    for (a, b) in [(300, 60), (60, 300)] {
        let body = format!(r#"{{"access_token":"{o}","expires_in":{a},"expiresIn":{b}}}"#);
        assert_eq!(
            parse_token_body(body.as_bytes(), JSON, None)
                .unwrap()
                .expires_in,
            Some(60.0),
            "{body}"
        );
    }
    // An unusable one does not hide the other.
    let body = format!(r#"{{"access_token":"{o}","expires_in":null,"expiresIn":45}}"#);
    assert_eq!(
        parse_token_body(body.as_bytes(), JSON, None)
            .unwrap()
            .expires_in,
        Some(45.0)
    );
}

#[test]
fn c62_expires_in_numeric_string() {
    let o = opaque(7);
    let read = |v: &str| {
        let body = format!(r#"{{"access_token":"{o}","expires_in":{v}}}"#);
        parse_token_body(body.as_bytes(), JSON, None)
            .unwrap_or_else(|e| panic!("{v} refused: {e}"))
            .expires_in
    };
    assert_eq!(read(r#""3600""#), Some(3600.0));
    assert_eq!(read(r#""90.5""#), Some(90.5));
    assert_eq!(read(r#""1e3""#), Some(1000.0));
    // Strings that are not exactly a JSON number count as absent; the answer is still used.
    for v in [
        r#""soon""#,
        r#""""#,
        r#"" 60""#,
        r#""60 ""#,
        r#""60s""#,
        r#""0x10""#,
        r#""+60""#,
        r#""Infinity""#,
        r#""NaN""#,
        r#""1e400""#,
        r#""060""#,
    ] {
        assert_eq!(read(v), None, "{v}");
    }
    // The camelCase field alike.
    let body = format!(r#"{{"accessToken":"{o}","expiresIn":"120"}}"#);
    assert_eq!(
        parse_token_body(body.as_bytes(), JSON, None)
            .unwrap()
            .expires_in,
        Some(120.0)
    );
}

#[test]
fn c62_expires_in_fraction_zero_negative_huge() {
    let now = 1_700_000_000_000u64;
    let o = opaque(8);
    let read = |v: &str| {
        let body = format!(r#"{{"access_token":"{o}","expires_in":{v}}}"#);
        parse_token_body(body.as_bytes(), JSON, None)
            .unwrap_or_else(|e| panic!("{v} refused: {e}"))
            .expires_in
    };
    let none = UnverifiedClaims::default();
    // A fraction is kept to the millisecond.
    assert_eq!(read("1.5"), Some(1.5));
    let e = plan_expiry(&none, read("1.5"), now, 60_000).unwrap();
    assert_eq!((e.expires_at, e.refresh_at), (now + 1500, Some(now + 750)));
    // Under a millisecond: expired on receipt, and no renewal loop.
    let e = plan_expiry(&none, read("0.0004"), now, 60_000).unwrap();
    assert_eq!((e.expires_at, e.refresh_at), (now, None));
    // Zero and negative lifetimes count as absent: the 401 path applies.
    for v in ["0", "-0", "-5", "-1e3", r#""-60""#, r#""0""#] {
        assert_eq!(read(v), None, "{v}");
        assert_eq!(plan_expiry(&none, read(v), now, 60_000), None, "{v}");
    }
    // Over ten years is implausible (as for exp, C09): unknown, no timer; it never overrides exp.
    for v in [
        "315576001",
        "1e12",
        "18446744073709551616",
        r#""99999999999""#,
    ] {
        assert!(read(v).is_some(), "{v}");
        assert_eq!(plan_expiry(&none, read(v), now, 60_000), None, "{v}");
        let claims = decode_unverified(&jwt(r#"{"exp":1700000300}"#)).unwrap();
        assert_eq!(
            plan_expiry(&claims, read(v), now, 60_000)
                .unwrap()
                .expires_at,
            now + 300_000,
            "{v}"
        );
    }
    // 1e400 is not a finite JSON number: the strict reader refuses the whole answer (as serde_json does).
    let body = format!(r#"{{"access_token":"{o}","expires_in":1e400}}"#);
    assert!(parse_token_body(body.as_bytes(), JSON, None).is_err());
}

#[test]
fn c58_token_type_bearer_in_any_case() {
    let o = opaque(10);
    for extra in [
        r#","token_type":"Bearer""#,
        r#","token_type":"bearer""#,
        r#","token_type":"BEARER""#,
        r#","token_type":"bEaReR""#,
        r#","tokenType":"Bearer""#,
        r#","token_type":null"#,
        "",
        r#","token_type":"Bearer","tokenType":"bearer""#,
    ] {
        let body = format!(r#"{{"access_token":"{o}"{extra}}}"#);
        assert!(
            parse_token_body(body.as_bytes(), JSON, None).is_ok(),
            "{body} refused"
        );
    }
    assert_eq!(TOKEN_TYPE_FIELDS, ["token_type", "tokenType"]);
}

#[test]
fn c58_other_token_types_refused_with_a_precise_message() {
    let o = opaque(11);
    for extra in [
        r#""token_type":"mac""#,
        r#""token_type":"N_A""#,
        r#""token_type":"""#,
        r#""token_type":"Bearer ""#,
        r#""token_type":"Bearer, DPoP""#,
        r#""token_type":"DPoP ""#,
        r#""token_type":1"#,
        r#""token_type":true"#,
        r#""token_type":["Bearer"]"#,
        // The two fields disagree: neither is believed.
        r#""token_type":"Bearer","tokenType":"DPoP""#,
        r#""token_type":"DPoP","tokenType":"Bearer""#,
    ] {
        let body = format!(r#"{{"access_token":"{o}",{extra},"expires_in":60}}"#);
        let e = parse_token_body(body.as_bytes(), JSON, None).unwrap_err();
        assert_eq!(e, BodyError::NotBearer, "{body}");
        assert_eq!(e.code(), ErrorCode::BadResponse);
        assert!(
            e.message().contains("token_type is not Bearer"),
            "{}",
            e.message()
        );
    }
}

/// RFC 9449 §5: a `DPoP` token type (any case, either field) marks the token as bound to the client's key;
/// `Bearer` or no type leaves it a bearer token.
#[test]
fn dpop_token_type_marks_the_token() {
    let o = opaque(13);
    for (extra, dpop) in [
        (r#","token_type":"DPoP""#, true),
        (r#","token_type":"dpop""#, true),
        (r#","tokenType":"DPoP""#, true),
        (r#","token_type":"DPoP","tokenType":"dpop""#, true),
        (r#","token_type":"Bearer""#, false),
        ("", false),
    ] {
        let body = format!(r#"{{"access_token":"{o}"{extra}}}"#);
        let b = parse_token_body(body.as_bytes(), JSON, None).unwrap();
        assert_eq!(b.token.is_dpop(), dpop, "{body}");
        assert_eq!(b.token.expose(), o);
    }
}

/// A manager without the `dpop` option has no key to prove: a DPoP token answer is refused with a message
/// that names the option; with it, the token is stored marked.
#[test]
fn dpop_token_needs_the_dpop_option() {
    let o = opaque(14);
    let body = format!(r#"{{"access_token":"{o}","token_type":"DPoP","expires_in":60}}"#);
    let mut off = Session::new(SessionConfig::default());
    let e = off
        .set_token_body(1_000, body.as_bytes(), JSON, TokenSource::Login)
        .unwrap_err();
    assert_eq!(e, BodyError::NotBearer);
    assert!(e.message().contains("dpop option"), "{}", e.message());
    assert!(off.current_token().0.is_none());
    let mut on = Session::new(SessionConfig {
        dpop: true,
        ..SessionConfig::default()
    });
    on.set_token_body(1_000, body.as_bytes(), JSON, TokenSource::Login)
        .unwrap();
    assert!(on.current_token().0.unwrap().is_dpop());
}

#[test]
fn c58_scope_refresh_token_and_other_members_ignored() {
    let o = opaque(12);
    let rt = "tGzv3JOkF0XG5Qx2TlKWIA";
    let body = format!(
        r#"{{"access_token":"{o}","token_type":"Bearer","expires_in":3600,"refresh_token":"{rt}","scope":"read write",
        "id_token":"x.y.z","example_parameter":{{"a":[1,2,{{"b":null}}]}},"issued_at":1700000000,"expires_at":"never"}}"#
    );
    let b = parse_token_body(body.as_bytes(), JSON, None).unwrap();
    assert_eq!(b.token.expose(), o);
    assert_eq!(b.expires_in, Some(3600.0));
    // The refresh token in the body is never kept: the httpOnly cookie is the refresh credential.
    assert!(!format!("{b:?}").contains(rt));
    let mut s = Session::new(SessionConfig::default());
    s.set_token_body(1_700_000_000_000, body.as_bytes(), JSON, TokenSource::Login)
        .unwrap();
    let actions: Vec<Action> = std::iter::from_fn(|| s.poll_action()).collect();
    assert!(!format!("{s:?} {actions:?}").contains(rt));
    for a in &actions {
        if let Action::Broadcast(m) = a {
            assert!(
                !m.encode().contains(rt),
                "the refresh token went to the other tabs"
            );
        }
    }
}

#[test]
fn c20_refusals_name_the_problem() {
    let o = opaque(13);
    let cases: [(&str, BodyError, &str); 9] = [
        ("<html>", BodyError::NotObject, "not a JSON object"),
        ("[]", BodyError::NotObject, "not a JSON object"),
        ("\u{FEFF}{}", BodyError::NotObject, "not a JSON object"),
        (
            r#"{"access_token":"a","access_token":"b"}"#,
            BodyError::NotObject,
            "repeated member",
        ),
        ("{}", BodyError::MissingToken, "no token field"),
        (
            r#"{"token":"abc"}"#,
            BodyError::MissingToken,
            "no token field",
        ),
        (
            r#"{"access_token":42}"#,
            BodyError::TokenNotString,
            "not a non-empty string",
        ),
        (
            r#"{"accessToken":""}"#,
            BodyError::TokenNotString,
            "not a non-empty string",
        ),
        (
            r#"{"access_token":"a b"}"#,
            BodyError::Token(TokenError::BadCharacters),
            "b64token",
        ),
    ];
    for (body, want, words) in cases {
        let e = parse_token_body(body.as_bytes(), JSON, None).unwrap_err();
        assert_eq!(e, want, "{body}");
        assert!(e.message().contains(words), "{body}: {}", e.message());
    }
    assert_eq!(
        BodyError::Token(TokenError::BadCharacters).code(),
        ErrorCode::InvalidToken
    );
    let mut bad = format!(r#"{{"access_token":"{o}","x":"y"}}"#).into_bytes();
    bad.insert(bad.len() - 3, 0xFF);
    assert_eq!(
        parse_token_body(&bad, JSON, None).unwrap_err(),
        BodyError::NotObject
    );
}

#[test]
fn c19_html_body_rejected() {
    let r = parse_token_body(
        b"<!doctype html><title>Sign in</title>",
        Some("text/html"),
        None,
    );
    assert_eq!(r.unwrap_err(), BodyError::NotJson);
    assert_eq!(
        parse_token_body(b"<html>", JSON, None).unwrap_err(),
        BodyError::NotObject
    );
}

#[test]
fn c20_missing_or_mistyped_token_rejected() {
    for body in [
        r#"{}"#,
        r#"{"accessToken":null}"#,
        r#"{"accessToken":""}"#,
        r#"{"accessToken":42}"#,
        r#"{"accessToken":["a"]}"#,
        "[]",
        "null",
        r#"{"accessToken":"a b"}"#,
    ] {
        assert!(
            parse_token_body(body.as_bytes(), JSON, None).is_err(),
            "{body} accepted"
        );
    }
    let t = jwt(r#"{"exp":1}"#);
    let dup = format!(r#"{{"accessToken":"{t}","accessToken":"{t}"}}"#);
    assert!(parse_token_body(dup.as_bytes(), JSON, None).is_err());
    // expires_in of the wrong type is ignored, not an error.
    let b = parse_token_body(
        format!(r#"{{"accessToken":"{t}","expires_in":true}}"#).as_bytes(),
        JSON,
        None,
    )
    .unwrap();
    assert_eq!(b.expires_in, None);
}

#[test]
fn c21_wrong_content_type_rejected() {
    let t = jwt(r#"{"exp":1}"#);
    let body = format!(r#"{{"accessToken":"{t}"}}"#);
    for ct in [
        Some("text/plain"),
        None,
        Some("application/jsonp"),
        Some(""),
    ] {
        assert_eq!(
            parse_token_body(body.as_bytes(), ct, None).unwrap_err(),
            BodyError::NotJson
        );
    }
}

#[test]
fn c21_json_media_types_accepted() {
    let t = opaque(5);
    let body = format!(r#"{{"access_token":"{t}","token_type":"Bearer","expires_in":60}}"#);
    for ct in [
        "application/json",
        "APPLICATION/JSON",
        "application/json;charset=utf-8",
        "application/json; charset=UTF-8",
        "Application/Json ; Charset=\"utf-8\"",
        "  application/json\t;\tcharset=utf-8  ",
        "application/json;",
        "application/vnd.api+json",
        "application/vnd.example.token+JSON; charset=utf-8",
        "application/x-amz-json-1.1+json",
    ] {
        let b = parse_token_body(body.as_bytes(), Some(ct), None)
            .unwrap_or_else(|e| panic!("{ct:?} refused: {e}"));
        assert_eq!(b.token.expose(), t);
    }
}

#[test]
fn c21_other_media_types_refused_naming_the_content_type() {
    let body = format!(r#"{{"access_token":"{}"}}"#, opaque(6));
    for ct in [
        "text/json",
        "application/jsonp",
        "application/json5",
        "application/x-json",
        "application/+json",
        "application/json+xml",
        "application/ json",
        "application /json",
        "application",
        "application/",
        "/json",
        "text/html; application/json",
        "multipart/form-data",
        "application/x-www-form-urlencoded",
        "application/vnd api+json",
    ] {
        let e = parse_token_body(body.as_bytes(), Some(ct), None).unwrap_err();
        assert_eq!(e, BodyError::NotJson, "{ct:?}");
        assert!(e.message().contains("Content-Type"), "{}", e.message());
    }
}

#[test]
fn c22_expires_in_earlier_than_exp_wins() {
    let now = 1_700_000_000_000u64;
    let c = decode_unverified(&jwt(r#"{"exp":1700003600}"#)).unwrap();
    let e = plan_expiry(&c, Some(10.0), now, 60_000).unwrap();
    assert_eq!(e.expires_at, now + 10_000);
    let e = plan_expiry(&c, Some(7200.0), now, 60_000).unwrap();
    assert_eq!(e.expires_at, now + 3_600_000);
}

#[test]
fn c23_body_over_64_kib_rejected() {
    assert_eq!(MAX_BODY_BYTES, 64 * 1024);
    let body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
    assert_eq!(
        parse_token_body(body.as_bytes(), JSON, None).unwrap_err(),
        BodyError::TooLarge
    );
}

#[test]
fn c23_capped_body_stops_at_64_kib() {
    let mut b = CappedBody::new();
    let chunk = [b' '; 1000];
    let mut pushed = 0;
    // A never-ending stream: chunks are accepted up to the cap, and the first that does not fit is refused.
    let refused = loop {
        match b.push(&chunk) {
            Ok(()) => pushed += chunk.len(),
            Err(e) => break e,
        }
        assert!(pushed <= MAX_BODY_BYTES);
    };
    assert_eq!(refused, BodyError::TooLarge);
    assert_eq!(pushed, MAX_BODY_BYTES / 1000 * 1000);
    assert_eq!(b.bytes().len(), pushed, "a refused chunk is not appended");
    assert!(b.fits(MAX_BODY_BYTES - pushed) && !b.fits(MAX_BODY_BYTES - pushed + 1));
    assert!(!b.fits(usize::MAX), "no overflow on a huge declared chunk");
    // Exactly the cap is accepted; one byte more is not.
    let mut exact = CappedBody::new();
    assert!(exact.push(&vec![b'x'; MAX_BODY_BYTES]).is_ok());
    assert_eq!(exact.push(b"x"), Err(BodyError::TooLarge));
}

#[test]
fn c23_capped_body_reads_like_response_text() {
    let t = jwt(r#"{"exp":1700000300}"#);
    let json = format!(r#"{{"accessToken":"{t}"}}"#);
    let mut b = CappedBody::new();
    // Chunk boundaries do not matter, and a leading byte order mark is dropped as Response.text() drops it.
    b.push(b"\xEF\xBB").unwrap();
    b.push(b"\xBF").unwrap();
    for part in json.as_bytes().chunks(7) {
        b.push(part).unwrap();
    }
    assert_eq!(b.bytes(), json.as_bytes());
    assert!(parse_token_body(b.bytes(), JSON, None).is_ok());
    assert_eq!(CappedBody::new().bytes(), b"");
}

#[test]
fn c48_hostile_inputs_never_panic() {
    // A cheap deterministic fuzz: every prefix and byte flip of a valid token and body.
    let t = jwt(r#"{"exp":1700000300,"iat":1700000000}"#);
    let body = format!(r#"{{"accessToken":"{t}","expires_in":300}}"#);
    let mut x: u32 = 12345;
    for i in 0..20_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let mut b = body.clone().into_bytes();
        let len = b.len();
        if let Some(byte) = b.get_mut((x as usize) % len) {
            *byte = (x >> 16) as u8;
        }
        let cut = if i % 3 == 0 {
            (x as usize >> 8) % (len + 1)
        } else {
            len
        };
        b.truncate(cut);
        let _ = parse_token_body(&b, JSON, None);
        let _ = parse_retry_after(&String::from_utf8_lossy(&b), 0);
        if let Ok(s) = std::str::from_utf8(&b) {
            let _ = decode_unverified(s);
        }
        let mut tb = t.clone().into_bytes();
        let tl = tb.len();
        if let Some(byte) = tb.get_mut((x as usize >> 3) % tl) {
            *byte = b"._-+/=A\r \x00"[(x as usize >> 20) % 10];
        }
        if let Ok(s) = std::str::from_utf8(&tb) {
            let _ = decode_unverified(s);
        }
    }
}

#[test]
fn json_reader_is_strict() {
    let ok = |payload: &str| decode_unverified(&jwt(payload)).is_ok();
    assert!(ok(
        r#"{"exp":1,"a":[1,{"b":[true,false,null]}],"s":"\u00e9\ud83d\ude00\u0000\"\\\/\b\f\n\r\t"}"#
    ));
    assert!(ok(" {\"exp\" : -0.5e+3 } \n"));
    for bad in [
        r#"{"exp":01}"#,
        r#"{"exp":1.}"#,
        r#"{"exp":.5}"#,
        r#"{"exp":+1}"#,
        r#"{"exp":-}"#,
        r#"{"exp":1e}"#,
        r#"{"exp":NaN}"#,
        r#"{"exp":Infinity}"#,
        r#"{"exp":1,}"#,
        r#"{"exp" 1}"#,
        r#"{'exp':1}"#,
        r#"{"exp":tru}"#,
        r#"{"a":"\x"}"#,
        r#"{"a":"\u12"}"#,
        r#"{"a":"\udc00"}"#,
        r#"{"a":"\ud800\u0041"}"#,
        r#"{"a":[1,]}"#,
        r#"{"a":{"b":1,}}"#,
        r#"{"a":1}x"#,
        "{\"a\":\"tab\there\"}",
        r#"{"a":"unterminated}"#,
    ] {
        assert!(!ok(bad), "{bad} accepted");
    }
    // Deep nesting is refused, not a stack overflow.
    let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
    let t = format!(
        "{}.{}.c2ln",
        b64(br#"{"alg":"x"}"#, true),
        b64(deep.as_bytes(), true)
    );
    assert!(t.len() > MAX_TOKEN_LEN);
    let nested = |n: usize| format!(r#"{{"exp":1,"a":{}{}}}"#, "[".repeat(n), "]".repeat(n));
    assert!(ok(&nested(60)));
    assert!(!ok(&nested(70)));
    let deep_body = format!(
        r#"{{"accessToken":{}1{}}}"#,
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    assert!(parse_token_body(deep_body.as_bytes(), JSON, None).is_err());
}

#[test]
fn c02_base64url_decoder_is_canonical() {
    assert_eq!(b64url_decode(""), Some(vec![]));
    assert_eq!(b64url_decode("e30"), Some(b"{}".to_vec()));
    assert_eq!(b64url_decode("AQID"), Some(vec![1, 2, 3]));
    assert_eq!(b64url_decode("_-8"), Some(vec![0xff, 0xef]));
    for bad in ["e31", "A", "AB=", "AB==", "A+B/", "AB C", "ABC\n", "AQ"] {
        if bad == "AQ" {
            assert_eq!(b64url_decode(bad), Some(vec![1]));
            continue;
        }
        assert_eq!(b64url_decode(bad), None, "{bad:?}");
    }
    for n in 0..64u8 {
        let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37).wrapping_add(n)).collect();
        assert_eq!(b64url_decode(&b64(&data, true)), Some(data));
    }
}

#[test]
fn json_numbers_convert_exactly_for_timing_claims() {
    let exp = |v: &str| {
        decode_unverified(&jwt(&format!(r#"{{"exp":{v}}}"#)))
            .unwrap()
            .exp
    };
    assert_eq!(exp("1700000000"), Some(1_700_000_000.0));
    assert_eq!(exp("1700000000.5"), Some(1_700_000_000.5));
    assert_eq!(exp("1.7e9"), Some(1_700_000_000.0));
    assert_eq!(exp("17E8"), Some(1_700_000_000.0));
    assert_eq!(exp("170000000000e-2"), Some(1_700_000_000.0));
    assert_eq!(exp("-0"), Some(0.0));
    assert_eq!(exp("0.000"), Some(0.0));
    assert_eq!(exp("-1700000000"), Some(-1_700_000_000.0));
    assert_eq!(exp("9007199254740993"), Some(9_007_199_254_740_992.0));
    assert_eq!(
        exp("18446744073709551615"),
        Some(18_446_744_073_709_551_615.0)
    );
    assert_eq!(
        exp("123456789012345678901234567890"),
        Some(1.2345678901234568e29)
    );
    assert_eq!(exp("1e-400"), Some(0.0));
    assert!(decode_unverified(&jwt(r#"{"exp":1e400}"#)).is_err());
    assert!(decode_unverified(&jwt(r#"{"exp":1e99999999999}"#)).is_err());
}
