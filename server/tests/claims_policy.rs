//! Access-token policy at its edges (CATALOGUE S29–S32): time claims exactly at the leeway, the issuer and
//! audience policy, tokens of another type presented as access tokens, and header extensions the server does
//! not implement. Each token is signed with the server's own current key, so only the rule under test can
//! refuse it.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn header(kid: &str) -> Value {
    json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid })
}

/// A logged-in session's sid (claims must name a live session to be accepted).
async fn live_sid(s: &Srv) -> String {
    let l = s.login().await;
    s.sid_of(&l.at).await
}

fn with(c: &Value, k: &str, v: Value) -> Value {
    let mut c = c.clone();
    c[k] = v;
    c
}

async fn status(s: &Srv, h: &Value, c: &Value) -> StatusCode {
    s.me_status(&s.sign_raw(h, c)).await
}

#[tokio::test]
async fn s29_nbf_and_iat_are_accepted_up_to_the_leeway_and_refused_one_second_later() {
    let s = Srv::with(|c| c.leeway = 30).await;
    let sid = live_sid(&s).await;
    let (h, good, now) = (header(&s.kid()), s.claims(&sid), s.now());
    assert_eq!(status(&s, &h, &good).await, StatusCode::OK);
    for claim in ["nbf", "iat"] {
        assert_eq!(
            status(&s, &h, &with(&good, claim, json!(now + 30))).await,
            StatusCode::OK,
            "{claim} = now + leeway"
        );
        assert_eq!(
            status(&s, &h, &with(&good, claim, json!(now + 31))).await,
            StatusCode::UNAUTHORIZED,
            "{claim} = now + leeway + 1"
        );
    }
    // No maximum token age: an `iat` far in the past is accepted while `exp` is ahead (the lifetime is `exp`'s
    // job; legacy tokens without `exp` are never access tokens, S36).
    assert_eq!(
        status(&s, &h, &with(&good, "iat", json!(now - 365 * 86_400))).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn s30_issuer_and_audience_must_be_exactly_ours_and_aud_a_single_string() {
    let s = Srv::start().await;
    let sid = live_sid(&s).await;
    let (h, good) = (header(&s.kid()), s.claims(&sid));
    let (iss, aud) = (good["iss"].clone(), good["aud"].clone());
    assert_eq!(status(&s, &h, &good).await, StatusCode::OK);
    let cases = [
        (
            "staging issuer",
            with(
                &good,
                "iss",
                json!("urn:wasm-token-manager:auth-server-staging"),
            ),
        ),
        (
            "issuer differing in case",
            with(
                &good,
                "iss",
                json!(iss.as_str().expect("iss").to_uppercase()),
            ),
        ),
        (
            "issuer with a trailing slash",
            with(
                &good,
                "iss",
                json!(format!("{}/", iss.as_str().expect("iss"))),
            ),
        ),
        (
            "another service's audience",
            with(&good, "aud", json!("urn:wasm-token-manager:billing")),
        ),
        ("empty audience array", with(&good, "aud", json!([]))),
        // Policy: `aud` is one string. An array is refused even when it holds ours, alone or among others.
        (
            "audience array with ours and others",
            with(&good, "aud", json!([aud.clone(), "urn:other"])),
        ),
        (
            "audience array of ours alone",
            with(&good, "aud", json!([aud.clone()])),
        ),
        ("audience null", with(&good, "aud", Value::Null)),
    ];
    for (what, claims) in cases {
        assert_eq!(
            status(&s, &h, &claims).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
}

#[tokio::test]
async fn s31_id_tokens_refresh_jwts_and_legacy_tokens_are_not_access_tokens() {
    // A legacy key configured (the demo's, generated), in phase 3, where the API refuses legacy tokens outright:
    // in phases 0-1 its legacy gate would answer for the user, which is not what this test is about.
    let s = Srv::with(|c| {
        c.demo = true;
        c.legacy.phase = 3;
    })
    .await;
    let sid = live_sid(&s).await;
    let (kid, good) = (s.kid(), s.claims(&sid));
    // An OpenID Connect ID token: `typ: JWT`, the client as audience, a nonce; signed by our own key.
    let id_token = json!({
        "iss": good["iss"], "aud": "spa-client", "sub": "demo", "sid": sid, "jti": "id-1",
        "iat": good["iat"], "exp": good["exp"], "nonce": "n-0S6_WzA2Mj", "auth_time": good["iat"],
    });
    for typ in [json!("JWT"), Value::Null] {
        let h = json!({ "alg": "ES256", "typ": typ, "kid": kid });
        assert_eq!(
            status(&s, &h, &id_token).await,
            StatusCode::UNAUTHORIZED,
            "ID token, typ {typ}"
        );
    }
    // Even with our audience, an ID token's `typ` keeps it out.
    let h = json!({ "alg": "ES256", "typ": "JWT", "kid": kid });
    assert_eq!(
        status(&s, &h, &good).await,
        StatusCode::UNAUTHORIZED,
        "typ JWT with access-token claims"
    );
    // A refresh token minted as a JWT.
    for typ in ["rt+jwt", "refresh+jwt", "JWT"] {
        let h = json!({ "alg": "ES256", "typ": typ, "kid": kid });
        let rt = with(&good, "token_use", json!("refresh"));
        assert_eq!(
            status(&s, &h, &rt).await,
            StatusCode::UNAUTHORIZED,
            "refresh JWT, typ {typ}"
        );
    }
    // A legacy never-expiring token, minted as the old system did (legacy kid, typ JWT, no exp).
    let legacy = s
        .running
        .state
        .mint_legacy_token("demo", true)
        .expect("legacy token");
    assert!(
        s.running.state.verify_legacy(&legacy).is_ok(),
        "a valid legacy token"
    );
    assert!(
        s.running.state.authenticate(&legacy).await.is_err(),
        "a legacy token is no access token"
    );
    assert_eq!(
        s.me_status(&legacy).await,
        StatusCode::UNAUTHORIZED,
        "legacy token at the API"
    );
}

#[tokio::test]
async fn s32_crit_and_unencoded_payload_headers_are_refused() {
    let s = Srv::start().await;
    let sid = live_sid(&s).await;
    let (kid, good) = (s.kid(), s.claims(&sid));
    assert_eq!(status(&s, &header(&kid), &good).await, StatusCode::OK);
    let headers = [
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid, "crit": ["exp"] }),
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid, "crit": ["x-unknown"], "x-unknown": 1 }),
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid, "crit": [] }),
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid, "crit": "b64" }),
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid, "b64": false, "crit": ["b64"] }),
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid, "b64": true }),
    ];
    for h in headers {
        assert_eq!(
            status(&s, &h, &good).await,
            StatusCode::UNAUTHORIZED,
            "header {h}"
        );
    }
}
