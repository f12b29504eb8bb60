//! Legacy never-expiring tokens: upgrade once, kill switch, cohort, sunset (CATALOGUE 4(d), S35–S37).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn upgrade(s: &Srv, token: &str) -> reqwest::Response {
    s.http
        .post(s.url("/auth/legacy/upgrade"))
        .header("x-requested-with", "tm")
        .header("origin", s.origin())
        .bearer_auth(token)
        .send()
        .await
        .expect("send")
}

async fn error_of(r: reqwest::Response) -> String {
    r.json::<Value>().await.expect("json")["error"]
        .as_str()
        .expect("error")
        .to_string()
}

#[tokio::test]
async fn s35_legacy_token_is_accepted_only_at_the_upgrade_endpoint() {
    let s = Srv::with(|c| c.legacy_upgrade = true).await;
    let legacy = s
        .running
        .state
        .mint_legacy_token("alice", true)
        .expect("legacy");
    let h = segment(&legacy, 0);
    assert_eq!(h["kid"], auth_server::LEGACY_KID);
    assert!(segment(&legacy, 1).get("exp").is_none());
    assert_eq!(
        s.me_status(&legacy).await,
        StatusCode::UNAUTHORIZED,
        "not an access token"
    );
    let r = upgrade(&s, &legacy).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rt = rt_cookie(r.headers()).expect("RT cookie");
    let body: Value = r.json().await.expect("json");
    let at = body["accessToken"].as_str().expect("at");
    let me: Value = s.me(at).await.json().await.expect("json");
    assert_eq!(me["sub"], "alice");
    s.refresh_ok(&rt).await;
    assert_eq!(
        s.metric("auth_legacy_upgrades_total{outcome=\"ok\"}").await,
        1
    );
    // The legacy key is never published.
    let jwks = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .text()
        .await
        .expect("text");
    assert!(!jwks.contains(auth_server::LEGACY_KID));
}

#[tokio::test]
async fn s35_kill_switch_off_means_legacy_token_retired() {
    let s = Srv::with(|c| c.legacy_upgrade = false).await;
    let legacy = s
        .running
        .state
        .mint_legacy_token("alice", true)
        .expect("legacy");
    let r = upgrade(&s, &legacy).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(rt_cookie(r.headers()).is_none());
    assert_eq!(error_of(r).await, "legacy_token_retired");
    // Flipping the switch at runtime takes effect at once, both ways.
    s.running.state.set_legacy_accept(true);
    assert_eq!(upgrade(&s, &legacy).await.status(), StatusCode::OK);
    s.running.state.set_legacy_accept(false);
    let other = s
        .running
        .state
        .mint_legacy_token("bob", true)
        .expect("legacy");
    assert_eq!(
        error_of(upgrade(&s, &other).await).await,
        "legacy_token_retired"
    );
    assert_eq!(
        s.metric("auth_legacy_upgrades_total{outcome=\"retired\"}")
            .await,
        2
    );
}

#[tokio::test]
async fn s35_after_sunset_legacy_tokens_always_fail() {
    let s = Srv::with(|c| {
        c.legacy_upgrade = true;
        c.legacy_sunset = 3600;
    })
    .await;
    let legacy = s
        .running
        .state
        .mint_legacy_token("alice", true)
        .expect("legacy");
    s.advance(3600);
    let r = upgrade(&s, &legacy).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(r).await, "legacy_token_retired");
}

#[tokio::test]
async fn s35_cohort_flag_limits_who_may_upgrade() {
    let s = Srv::with(|c| {
        c.legacy_upgrade = true;
        c.legacy_cohort_percent = 0;
    })
    .await;
    let legacy = s
        .running
        .state
        .mint_legacy_token("alice", true)
        .expect("legacy");
    let r = upgrade(&s, &legacy).await;
    assert_eq!(error_of(r).await, "legacy_token_retired");
}

#[tokio::test]
async fn s35_legacy_rules_are_exclusive_of_access_token_rules() {
    let s = Srv::with(|c| c.legacy_upgrade = true).await;
    let key = &s.running.state.legacy_key;
    let iss = s.running.state.config.issuer.clone();
    let start = s.now();
    let cases = [
        // issued after the cutoff (server start)
        (
            json!({ "alg": "ES256", "typ": "JWT", "kid": key.kid }),
            json!({ "iss": iss, "sub": "a", "jti": "1", "iat": start }),
        ),
        // typ of a new access token
        (
            json!({ "alg": "ES256", "typ": "at+jwt", "kid": key.kid }),
            json!({ "iss": iss, "sub": "a", "jti": "2", "iat": 1 }),
        ),
        // carries exp: not a legacy token
        (
            json!({ "alg": "ES256", "kid": key.kid }),
            json!({ "iss": iss, "sub": "a", "jti": "3", "iat": 1, "exp": start + 99 }),
        ),
        // wrong issuer
        (
            json!({ "alg": "ES256", "kid": key.kid }),
            json!({ "iss": "other", "sub": "a", "jti": "4", "iat": 1 }),
        ),
    ];
    for (h, c) in cases {
        let t = sign_with(key.encoding_key(), &h, &c);
        let r = upgrade(&s, &t).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{h} {c}");
        assert_eq!(error_of(r).await, "invalid_token");
    }
    // A legacy-shaped token signed by a key that is not the legacy key.
    let k =
        auth_server::keys::KeyPair::generate(auth_server::LEGACY_KID.into(), 0, 0).expect("key");
    let t = sign_with(
        k.encoding_key(),
        &json!({ "alg": "ES256", "kid": auth_server::LEGACY_KID }),
        &json!({ "iss": iss, "sub": "a" }),
    );
    assert_eq!(upgrade(&s, &t).await.status(), StatusCode::UNAUTHORIZED);
    // Without the CSRF header the endpoint refuses before looking at the token.
    let legacy = s
        .running
        .state
        .mint_legacy_token("alice", true)
        .expect("legacy");
    let r = s
        .http
        .post(s.url("/auth/legacy/upgrade"))
        .bearer_auth(&legacy)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        upgrade(&s, &legacy).await.status(),
        StatusCode::OK,
        "the refused attempt did not consume it"
    );
}

#[tokio::test]
async fn s37_legacy_upgrade_replay_is_refused() {
    let s = Srv::with(|c| c.legacy_upgrade = true).await;
    for with_jti in [true, false] {
        let legacy = s
            .running
            .state
            .mint_legacy_token("alice", with_jti)
            .expect("legacy");
        assert_eq!(upgrade(&s, &legacy).await.status(), StatusCode::OK);
        let r = upgrade(&s, &legacy).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "second exchange (jti: {with_jti})"
        );
        assert!(rt_cookie(r.headers()).is_none());
        assert_eq!(error_of(r).await, "invalid_grant");
    }
    assert_eq!(
        s.metric("auth_legacy_upgrades_total{outcome=\"replay\"}")
            .await,
        2
    );
}
