//! Access-token verification: tampering, algorithm attacks, claim types, time boundaries,
//! revocation, key rotation (CATALOGUE S04–S07, S11, S23, S24, S27, S28, S36).

mod common;

use common::*;
use jsonwebtoken::EncodingKey;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn header(kid: &str) -> Value {
    json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid })
}

async fn assert_rejected(s: &Srv, token: &str, what: &str) {
    let r = s.me(token).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "{what} must be rejected"
    );
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer error=\"invalid_token\""),
        "{what}"
    );
}

#[tokio::test]
async fn issued_access_token_has_the_documented_shape() {
    let s = Srv::start().await;
    let l = s.login().await;
    let h = segment(&l.at, 0);
    assert_eq!(h["alg"], "ES256");
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(h["kid"], s.kid());
    let c = segment(&l.at, 1);
    for k in ["iss", "aud", "sub", "sid", "jti", "iat", "exp"] {
        assert!(c.get(k).is_some(), "claim {k}");
    }
    assert_eq!(c["exp"].as_u64(), Some(T0 + 600));
    assert_eq!(c["iat"].as_u64(), Some(T0));
    assert_eq!(c["sub"], "demo");
    // The control for the forged-token tests below: our own signing helper yields an accepted token.
    let sid = s.sid_of(&l.at).await;
    let forged_ok = s.sign_raw(&header(&s.kid()), &s.claims(&sid));
    assert_eq!(s.me_status(&forged_ok).await, StatusCode::OK);
}

#[tokio::test]
async fn missing_or_malformed_authorization_is_401() {
    let s = Srv::start().await;
    let l = s.login().await;
    let no_auth = s.http.get(s.url("/api/me")).send().await.expect("send");
    assert_eq!(no_auth.status(), StatusCode::UNAUTHORIZED);
    assert!(no_auth.headers().contains_key("www-authenticate"));
    for v in [
        format!("Basic {}", l.at),
        format!("Bearer  {}", l.at),
        format!("Bearer {}\tx", l.at),
        "Bearer".into(),
    ] {
        let r = s
            .http
            .get(s.url("/api/me"))
            .header("authorization", v.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{v}");
    }
    let two = s
        .http
        .get(s.url("/api/me"))
        .header("authorization", format!("Bearer {}", l.at))
        .header("authorization", format!("Bearer {}", l.at))
        .send()
        .await
        .expect("send");
    assert_eq!(
        two.status(),
        StatusCode::UNAUTHORIZED,
        "two Authorization headers are ambiguous"
    );
    assert_eq!(
        s.metric("auth_api_requests_total{outcome=\"unauthorized\"}")
            .await,
        6
    );
}

#[tokio::test]
async fn s04_tampered_tokens_are_rejected() {
    let s = Srv::start().await;
    let l = s.login().await;
    assert_eq!(s.me_status(&l.at).await, StatusCode::OK);
    let parts: Vec<&str> = l.at.split('.').collect();
    for seg in 0..3 {
        for pos in [0usize, 5, 17] {
            let mut p: Vec<String> = parts.iter().map(|x| x.to_string()).collect();
            let bytes = unsafe_free_flip(&p[seg], pos);
            p[seg] = bytes;
            assert_rejected(&s, &p.join("."), &format!("flip in segment {seg} at {pos}")).await;
        }
    }
    let truncated = &l.at[..l.at.len() - 4];
    assert_rejected(&s, truncated, "truncated signature").await;
    let swapped = format!("{}.{}.{}", parts[1], parts[0], parts[2]);
    assert_rejected(&s, &swapped, "swapped segments").await;
    for shape in [
        String::new(),
        "a".into(),
        "a.b".into(),
        format!("{}.x", l.at),
        ".....".into(),
    ] {
        assert_rejected(&s, &shape, "wrong segment count").await;
    }
    let padded = format!("{}.{}.{}=", parts[0], parts[1], parts[2]);
    assert_rejected(&s, &padded, "padded base64").await;
}

/// Replace the base64url character at `pos` by a different one (one bit or more flipped).
fn unsafe_free_flip(seg: &str, pos: usize) -> String {
    let mut chars: Vec<char> = seg.chars().collect();
    let i = pos.min(chars.len().saturating_sub(2));
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test]
async fn s05_alg_none_in_every_spelling_is_rejected() {
    let s = Srv::start().await;
    let l = s.login().await;
    let sid = s.sid_of(&l.at).await;
    let claims = b64(s.claims(&sid).to_string().as_bytes());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64(json!({ "alg": alg, "typ": "at+jwt", "kid": s.kid() })
            .to_string()
            .as_bytes());
        assert_rejected(
            &s,
            &format!("{h}.{claims}."),
            &format!("alg {alg} with trailing dot"),
        )
        .await;
        assert_rejected(
            &s,
            &format!("{h}.{claims}"),
            &format!("alg {alg} without trailing dot"),
        )
        .await;
    }
    let h = b64(json!({ "alg": "RS256", "typ": "at+jwt", "kid": s.kid() })
        .to_string()
        .as_bytes());
    assert_rejected(&s, &format!("{h}.{claims}."), "RS256 with empty signature").await;
    let h = b64(json!({ "alg": "ES256", "typ": "at+jwt", "kid": s.kid() })
        .to_string()
        .as_bytes());
    assert_rejected(&s, &format!("{h}.{claims}."), "ES256 with empty signature").await;
}

#[tokio::test]
async fn s06_public_key_as_hmac_secret_is_rejected_in_every_encoding() {
    let s = Srv::start().await;
    let l = s.login().await;
    let sid = s.sid_of(&l.at).await;
    let jwks: Value = s.jwks().await;
    let jwk = jwks["keys"][0].clone();
    let x = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        jwk["x"].as_str().expect("x"),
    )
    .expect("x");
    let y = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        jwk["y"].as_str().expect("y"),
    )
    .expect("y");
    let mut point = vec![4u8];
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let public = p256::PublicKey::from_sec1_bytes(&point).expect("public key");
    let pem = public.to_public_key_pem(LineEnding::LF).expect("pem");
    let der = public.to_public_key_der().expect("der").as_bytes().to_vec();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("pem", pem.as_bytes().to_vec()),
        ("whitespace-prefixed pem", format!("  \n{pem}").into_bytes()),
        ("der", der),
        ("jwk json", jwk.to_string().into_bytes()),
        ("raw point", point.clone()),
        ("x only", x.clone()),
    ];
    let claims = s.claims(&sid);
    for (what, secret) in secrets {
        for alg in [
            jsonwebtoken::Algorithm::HS256,
            jsonwebtoken::Algorithm::HS384,
            jsonwebtoken::Algorithm::HS512,
        ] {
            let h = json!({ "alg": format!("{alg:?}"), "typ": "at+jwt", "kid": s.kid() });
            let msg = format!(
                "{}.{}",
                b64(h.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let sig =
                jsonwebtoken::crypto::sign(msg.as_bytes(), &EncodingKey::from_secret(&secret), alg)
                    .expect("hmac");
            assert_rejected(
                &s,
                &format!("{msg}.{sig}"),
                &format!("{alg:?} keyed with {what}"),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn s07_alg_header_differing_from_the_key_is_rejected() {
    let s = Srv::start().await;
    let l = s.login().await;
    let sid = s.sid_of(&l.at).await;
    // A valid ES256 signature under a header that names another algorithm.
    for alg in ["RS256", "PS256", "ES384", "EdDSA", "HS256", "es256"] {
        let h = json!({ "alg": alg, "typ": "at+jwt", "kid": s.kid() });
        let t = s.sign_raw(&h, &s.claims(&sid));
        assert_rejected(&s, &t, &format!("alg {alg} on the ES256 key")).await;
    }
    // A token signed by a foreign P-256 key under our kid.
    let foreign = auth_server::keys::KeyPair::generate(s.kid(), 0, 0).expect("key");
    let t = sign_with(foreign.encoding_key(), &header(&s.kid()), &s.claims(&sid));
    assert_rejected(&s, &t, "foreign key under our kid").await;
}

#[tokio::test]
async fn s09_s10_kid_is_a_map_key_and_header_keys_are_ignored() {
    let s = Srv::start().await;
    let l = s.login().await;
    let sid = s.sid_of(&l.at).await;
    let claims = s.claims(&sid);
    let kids = [
        json!("../../dev/null"),
        json!("' OR '1'='1"),
        json!("x".repeat(2_000)),
        json!(1),
        json!([s.kid()]),
        json!({"k": s.kid()}),
        Value::Null,
    ];
    for kid in kids {
        let t = s.sign_raw(
            &json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid }),
            &claims,
        );
        assert_rejected(
            &s,
            &t,
            &format!(
                "kid {}",
                kid.to_string().chars().take(40).collect::<String>()
            ),
        )
        .await;
    }
    // A 10 KiB kid makes an Authorization header over the 8 KiB bound: 431 before any parsing (S14/S34).
    let huge = s.sign_raw(
        &json!({ "alg": "ES256", "typ": "at+jwt", "kid": "x".repeat(10_000) }),
        &claims,
    );
    assert_eq!(
        s.me_status(&huge).await,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let no_kid = s.sign_raw(&json!({ "alg": "ES256", "typ": "at+jwt" }), &claims);
    assert_rejected(&s, &no_kid, "missing kid").await;
    // Self-signed with an embedded jwk: the header key is ignored, the kid is unknown.
    let attacker = auth_server::keys::KeyPair::generate("attacker".into(), 0, 0).expect("key");
    let h = json!({ "alg": "ES256", "typ": "at+jwt", "kid": "attacker", "jwk": attacker.public_jwk(), "jku": "http://127.0.0.1:1/jwks" });
    assert_rejected(
        &s,
        &sign_with(attacker.encoding_key(), &h, &claims),
        "embedded jwk/jku",
    )
    .await;
}

#[tokio::test]
async fn s27_claim_type_and_format_attacks_are_rejected() {
    let s = Srv::start().await;
    let l = s.login().await;
    let sid = s.sid_of(&l.at).await;
    let kid = s.kid();
    let good = s.claims(&sid);
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().expect("object").remove(k);
        c
    };
    let exp = good["exp"].as_u64().expect("exp");
    let cases: Vec<(&str, Value)> = vec![
        ("exp as string", with("exp", json!(exp.to_string()))),
        ("exp never", with("exp", json!("never"))),
        ("exp bool", with("exp", json!(true))),
        ("exp null", with("exp", Value::Null)),
        ("exp array", with("exp", json!([exp]))),
        ("exp object", with("exp", json!({}))),
        ("exp negative", with("exp", json!(-1))),
        ("exp float", with("exp", json!(exp as f64 + 0.5))),
        ("exp missing", without("exp")),
        ("iat string", with("iat", json!("0"))),
        ("iat future", with("iat", json!(s.now() + 3600))),
        ("nbf future", with("nbf", json!(s.now() + 3600))),
        ("nbf string", with("nbf", json!("0"))),
        ("iss wrong", with("iss", json!("https://staging.example"))),
        ("iss missing", without("iss")),
        ("aud wrong", with("aud", json!("another-service"))),
        ("aud empty array", with("aud", json!([]))),
        (
            "aud array with ours",
            with("aud", json!([good["aud"].clone(), "other"])),
        ),
        ("aud missing", without("aud")),
        ("sub missing", without("sub")),
        ("sid missing", without("sid")),
        ("sid unknown", with("sid", json!("no-such-session"))),
        ("jti missing", without("jti")),
    ];
    for (what, claims) in cases {
        assert_rejected(&s, &s.sign_raw(&header(&kid), &claims), what).await;
    }
    // Duplicate members (parser differential), and 1e309 (infinity), as raw JSON text.
    let base = good.to_string();
    let dup = base.replacen('{', &format!("{{\"exp\":{},", exp + 100_000), 1);
    let h = header(&kid).to_string();
    assert_rejected(&s, &s.sign_str(&h, &dup), "duplicate exp").await;
    let inf = base.replace(&format!("\"exp\":{exp}"), "\"exp\":1e309");
    assert!(inf.contains("1e309"));
    assert_rejected(&s, &s.sign_str(&h, &inf), "exp 1e309").await;
    // Header rules: typ, crit, b64.
    for h in [
        json!({ "alg": "ES256", "kid": kid }),
        json!({ "alg": "ES256", "typ": "JWT", "kid": kid }),
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid, "crit": ["exp"] }),
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid, "b64": false }),
    ] {
        assert_rejected(&s, &s.sign_raw(&h, &good), &format!("header {h}")).await;
    }
}

#[tokio::test]
async fn s28_exp_boundary_with_zero_leeway_rejects_exp_equal_now() {
    let s = Srv::with(|c| {
        c.leeway = 0;
        c.access_ttl = 60;
    })
    .await;
    let l = s.login().await;
    s.advance(59); // now = exp - 1
    assert_eq!(s.me_status(&l.at).await, StatusCode::OK);
    s.advance(1); // now = exp
    assert_eq!(s.me_status(&l.at).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn s28_exp_boundary_with_leeway_is_exp_plus_leeway_exclusive() {
    let s = Srv::with(|c| {
        c.leeway = 30;
        c.access_ttl = 60;
    })
    .await;
    let l = s.login().await;
    s.advance(60 + 29); // now = exp + leeway - 1
    assert_eq!(s.me_status(&l.at).await, StatusCode::OK);
    s.advance(1); // now = exp + leeway
    assert_eq!(s.me_status(&l.at).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn s23_revoked_access_token_blocked_exactly_until_it_would_expire() {
    let s = Srv::with(|c| {
        c.demo = true;
        c.access_ttl = 60;
        c.leeway = 30;
    })
    .await;
    let l = s.login().await;
    let (other_at, _) = s.refresh_ok(&l.rt).await; // same session, another jti
    let r = s.revoke_access(&l.at).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        s.me_status(&l.at).await,
        StatusCode::UNAUTHORIZED,
        "the presented jti is blocked"
    );
    assert_eq!(
        s.me_status(&other_at).await,
        StatusCode::OK,
        "only that jti"
    );
    let c = segment(&l.at, 1);
    let (iss, jti, exp) = (
        c["iss"].as_str().expect("iss"),
        c["jti"].as_str().expect("jti"),
        c["exp"].as_u64().expect("exp"),
    );
    let store = &s.running.state.store;
    assert!(
        store
            .jti_blocked(iss, jti, exp + 30 - 1)
            .await
            .expect("store"),
        "entry outlives the acceptance window"
    );
    assert!(
        !store.jti_blocked(iss, jti, exp + 30).await.expect("store"),
        "and not a second longer"
    );
    // Revoking an already expired token is a no-op success: no entry is stored.
    let before = store.stats(s.now()).await.expect("store").blocked_jtis;
    assert!(!store
        .block_jti(iss, "expired-jti", s.now(), s.now())
        .await
        .expect("store"));
    assert_eq!(
        store.stats(s.now()).await.expect("store").blocked_jtis,
        before
    );
    assert_eq!(s.metric("auth_revocations_total").await, 1);
}

#[tokio::test]
async fn s24_blocklist_is_keyed_on_jti_not_token_bytes() {
    let s = Srv::with(|c| c.demo = true).await;
    let l = s.login().await;
    // ECDSA malleability: (r, s) -> (r, n - s) is another valid signature of the same token.
    let parts: Vec<&str> = l.at.split('.').collect();
    let sig_bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[2])
            .expect("sig");
    let sig = p256::ecdsa::Signature::from_slice(&sig_bytes).expect("signature");
    let (r, s_scalar) = sig.split_scalars();
    let neg_s = -*s_scalar;
    let flipped =
        p256::ecdsa::Signature::from_scalars(r.to_bytes(), neg_s.to_bytes()).expect("n - s");
    let malleated = format!("{}.{}.{}", parts[0], parts[1], b64(&flipped.to_bytes()));
    assert_ne!(malleated, l.at);
    assert_eq!(
        s.me_status(&malleated).await,
        StatusCode::OK,
        "precondition: the variant verifies"
    );
    assert_eq!(s.revoke_access(&l.at).await.status(), StatusCode::OK);
    assert_eq!(s.me_status(&l.at).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.me_status(&malleated).await,
        StatusCode::UNAUTHORIZED,
        "re-encoded token still revoked"
    );
}

#[tokio::test]
async fn s11_key_rotation_publishes_first_and_retires_after_last_token_expires() {
    let s = Srv::with(|c| {
        c.access_ttl = 600;
        c.leeway = 30;
        c.jwks_max_age = 300;
    })
    .await;
    let jwks_kids = |s: &Srv| {
        let s2 = s.http.get(s.url("/.well-known/jwks.json"));
        async move {
            let v: Value = s2.send().await.expect("jwks").json().await.expect("json");
            v["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .map(|k| k["kid"].as_str().expect("kid").to_string())
                .collect::<Vec<_>>()
        }
    };
    let l = s.login().await;
    let k1 = s.kid();
    let k2 = s.running.state.rotate_keys().expect("rotate");
    assert_ne!(k1, k2);
    assert_eq!(
        jwks_kids(&s).await,
        vec![k1.clone(), k2.clone()],
        "new key published before it signs"
    );
    s.advance(299);
    let (at_last_k1, rt) = s.refresh_ok(&l.rt).await;
    assert_eq!(
        segment(&at_last_k1, 0)["kid"],
        k1.as_str(),
        "old key still signs during the lead"
    );
    s.advance(1); // t0 + 300: k2 takes over
    let (at_k2, _) = s.refresh_ok(&rt).await;
    assert_eq!(segment(&at_k2, 0)["kid"], k2.as_str());
    // The last k1 token (iat t0+299, exp t0+899) is accepted until exp + leeway.
    s.advance(628); // t0 + 928
    assert_eq!(s.me_status(&at_last_k1).await, StatusCode::OK);
    assert_eq!(jwks_kids(&s).await, vec![k1.clone(), k2.clone()]);
    s.advance(2); // t0 + 930 = signs_from(k2) + ttl + leeway: k1 retired
    assert_eq!(jwks_kids(&s).await, vec![k2.clone()]);
    assert_eq!(s.me_status(&at_last_k1).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn s11_token_signed_with_a_retired_key_is_rejected_even_before_exp() {
    let s = Srv::with(|c| c.jwks_max_age = 0).await;
    let l = s.login().await;
    let k1 = s.kid();
    let k2 = s.running.state.rotate_keys().expect("rotate");
    assert_eq!(s.kid(), k2, "lead 0: signs at once");
    assert_eq!(
        s.me_status(&l.at).await,
        StatusCode::OK,
        "k1 still verifies"
    );
    assert!(s.running.state.retire_key_now(&k1), "emergency retirement");
    assert_eq!(s.me_status(&l.at).await, StatusCode::UNAUTHORIZED);
    assert!(
        !s.running.state.retire_key_now(&k2),
        "the only signing key cannot be retired"
    );
}

#[tokio::test]
async fn s11_scheduled_rotation_is_driven_by_the_clock() {
    let s = Srv::with(|c| {
        c.key_rotate_every = Some(3600);
        c.jwks_max_age = 300;
    })
    .await;
    let k1 = s.kid();
    s.advance(3000);
    s.running.state.maintain().await;
    assert_eq!(s.kid(), k1, "not yet");
    s.advance(300); // 3300 = every - lead: publish the successor
    s.running.state.maintain().await;
    let kids = s
        .running
        .state
        .keys
        .read()
        .expect("keys")
        .published_kids(s.now());
    assert_eq!(kids.len(), 2);
    assert_eq!(s.kid(), k1, "successor not signing yet");
    s.advance(300);
    assert_ne!(s.kid(), k1, "successor signs after the lead");
}

#[tokio::test]
async fn s36_token_without_exp_under_a_current_kid_is_always_rejected() {
    let s = Srv::with(|c| c.demo = true).await;
    let l = s.login().await;
    let sid = s.sid_of(&l.at).await;
    let mut c = s.claims(&sid);
    c.as_object_mut().expect("obj").remove("exp");
    for h in [
        header(&s.kid()),
        json!({ "alg": "ES256", "typ": "JWT", "kid": s.kid() }),
        json!({ "alg": "ES256", "kid": s.kid() }),
    ] {
        let t = s.sign_raw(&h, &c);
        assert_rejected(&s, &t, &format!("no exp under {h}")).await;
        // Not even the upgrade endpoint takes it: a legacy token is HS256 here and never has a current kid.
        let r = s
            .http
            .post(s.url("/auth/legacy/upgrade"))
            .header("x-requested-with", "tm")
            .header("origin", s.origin())
            .bearer_auth(&t)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(rt_cookie(r.headers()).is_none());
    }
}

#[tokio::test]
async fn s33_s34_invalid_utf8_and_oversized_tokens_are_rejected_before_crypto() {
    let s = Srv::start().await;
    let l = s.login().await;
    let sid = s.sid_of(&l.at).await;
    let kid = s.kid();
    let h = b64(header(&kid).to_string().as_bytes());
    // Overlong UTF-8 (C0 AF) and a lone surrogate escape inside claims, validly signed.
    let mut bad = br#"{"sub":"x"#.to_vec();
    bad.extend_from_slice(&[0xC0, 0xAF]);
    bad.extend_from_slice(br#"","iss":"i"}"#);
    let msg = format!("{h}.{}", b64(&bad));
    let key = s
        .running
        .state
        .keys
        .read()
        .expect("keys")
        .signing_key(s.now())
        .expect("key");
    let sig = jsonwebtoken::crypto::sign(
        msg.as_bytes(),
        key.encoding_key(),
        jsonwebtoken::Algorithm::ES256,
    )
    .expect("sign");
    assert_rejected(&s, &format!("{msg}.{sig}"), "overlong UTF-8 in claims").await;
    let mut c = s.claims(&sid).to_string();
    c = c.replacen("\"sub\":\"demo\"", "\"sub\":\"\\ud800\"", 1);
    assert!(c.contains("ud800"));
    assert_rejected(
        &s,
        &s.sign_str(&header(&kid).to_string(), &c),
        "lone surrogate",
    )
    .await;
    // Deeply nested JSON and a 100 000-claim token: over the 4 KiB token bound, refused before decoding.
    let nested = format!("{{\"x\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let t = s.sign_str(&header(&kid).to_string(), &nested);
    let r = s.me(&t).await;
    assert!(
        r.status() == StatusCode::UNAUTHORIZED
            || r.status() == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let mut many = String::from("{");
    for i in 0..100_000 {
        many.push_str(&format!("\"c{i}\":{i},"));
    }
    many.push_str("\"sub\":\"x\"}");
    let t = s.sign_str(&header(&kid).to_string(), &many);
    assert_eq!(
        s.me_status(&t).await,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    // Just under the header bound but over the token bound: 401, not a crash.
    let long = format!("{}.{}.{}", h, "A".repeat(5000), "B".repeat(86));
    assert_rejected(&s, &long, "5 KiB token").await;
}
