//! `POST /auth/introspect` (RFC 7662): what the APIs behind the JWKS ask about a token's session.

mod common;

use common::Srv;
use reqwest::StatusCode;
use serde_json::{json, Value};

const SECRET: &str = "introspection-test-secret";

async fn server() -> Srv {
    let dir = std::env::temp_dir().join(format!(
        "wtm-introspection-{}",
        auth_server::tokens::random_id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).expect("write");
    Srv::with(|c| {
        c.introspection_secret_file = Some(file);
        c.demo = true;
    })
    .await
}

async fn introspect(s: &Srv, token: &str) -> Value {
    let r = s
        .http
        .post(s.url("/auth/introspect"))
        .bearer_auth(SECRET)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("introspect");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.expect("json")
}

#[tokio::test]
async fn absent_without_the_secret_file() {
    let s = Srv::start().await;
    let r = s
        .http
        .post(s.url("/auth/introspect"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn active_until_logout_revocation_or_expiry() {
    let s = server().await;
    let login = s.login().await;
    let (second, rt) = s.refresh_ok(&login.rt).await;
    let a = introspect(&s, &login.at).await;
    let sid = s.sid_of(&login.at).await;
    assert_eq!(
        (
            a["active"].as_bool(),
            a["sid"].as_str(),
            a["token_type"].as_str()
        ),
        (Some(true), Some(sid.as_str()), Some("Bearer"))
    );
    assert_eq!(a["aud"], json!(s.running.state.config.audience));
    // One token revoked by its jti: inactive; the session's other token stays active.
    assert_eq!(s.revoke_access(&login.at).await.status(), StatusCode::OK);
    assert_eq!(introspect(&s, &login.at).await, json!({"active": false}));
    assert_eq!(introspect(&s, &second).await["active"], true);
    // Logout: every token of the session is inactive at once.
    assert_eq!(s.logout(Some(&rt)).await.status(), StatusCode::OK);
    assert_eq!(introspect(&s, &second).await, json!({"active": false}));
    // Expiry (plus the leeway).
    let other = s.login_as("alice").await;
    assert_eq!(introspect(&s, &other.at).await["active"], true);
    let cfg = &s.running.state.config;
    s.advance(cfg.access_ttl + cfg.leeway);
    assert_eq!(introspect(&s, &other.at).await, json!({"active": false}));
}
