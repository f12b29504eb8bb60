//! The in-memory store is bounded (issue 9 items 3 and 4): a record goes as soon as nothing can need
//! it, a user holds at most `--max-sessions-per-user` sessions (the oldest is revoked), and the store
//! at most `--max-sessions` records (further logins get 503 with `Retry-After`).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Defaults: access TTL 600 s + leeway 30 s, grace 10 s: an access token minted at a rotation (or
/// within the grace window after it) is dead 640 s after that rotation.
const TOKENS_OUTLIVE_ROTATION: u64 = 600 + 30 + 10;

async fn sessions(s: &Srv) -> usize {
    s.running.state.maintain().await;
    s.running
        .state
        .store
        .stats(s.now())
        .await
        .expect("store")
        .sessions
}

#[tokio::test]
async fn a_logged_out_session_is_kept_only_while_its_access_tokens_can_live() {
    let s = Srv::start().await;
    let l = s.login().await;
    assert_eq!(s.logout(Some(&l.rt)).await.status(), StatusCode::OK);
    s.advance(TOKENS_OUTLIVE_ROTATION - 1);
    assert_eq!(
        sessions(&s).await,
        1,
        "its access token may still be presented"
    );
    assert_eq!(s.me_status(&l.at).await, StatusCode::UNAUTHORIZED);
    s.advance(1);
    assert_eq!(
        sessions(&s).await,
        0,
        "gone once its access tokens have expired"
    );
    assert_eq!(s.me_status(&l.at).await, StatusCode::UNAUTHORIZED);
    assert_eq!(s.refresh(&l.rt).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_reuse_revoked_session_is_kept_only_while_its_access_tokens_can_live() {
    let s = Srv::start().await;
    let l = s.login().await;
    s.advance(5);
    let (at1, _) = s.refresh_ok(&l.rt).await;
    s.advance(11);
    assert_eq!(
        s.refresh(&l.rt).await.status(),
        StatusCode::UNAUTHORIZED,
        "reuse"
    );
    assert_eq!(s.metric("auth_rt_reuse_detected_total").await, 1);
    // Rotated at T0 + 5: its tokens are dead at T0 + 5 + 640.
    s.advance(5 + TOKENS_OUTLIVE_ROTATION - 16 - 1);
    assert_eq!(sessions(&s).await, 1);
    s.advance(1);
    assert_eq!(sessions(&s).await, 0);
    assert_eq!(s.me_status(&at1).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_idle_expired_session_goes_at_its_idle_expiry() {
    let s = Srv::start().await; // idle TTL 1 h, absolute 24 h
    let l = s.login().await;
    s.advance(3600 - 1);
    assert_eq!(sessions(&s).await, 1);
    s.advance(1);
    assert_eq!(
        sessions(&s).await,
        0,
        "nothing needs it: refresh and access tokens are dead"
    );
    assert_eq!(s.refresh(&l.rt).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_login_beyond_max_sessions_per_user_revokes_that_users_oldest_session() {
    let s = Srv::with(|c| c.max_sessions_per_user = 3).await;
    let alice = s.login_as("alice").await;
    let mut demo = Vec::new();
    for _ in 0..3 {
        demo.push(s.login().await);
        s.advance(1);
    }
    for l in &demo {
        assert_eq!(s.me_status(&l.at).await, StatusCode::OK);
    }
    let fourth = s.login().await;
    let oldest = demo.remove(0);
    assert_eq!(
        s.me_status(&oldest.at).await,
        StatusCode::UNAUTHORIZED,
        "oldest revoked"
    );
    assert_eq!(
        s.refresh(&oldest.rt).await.status(),
        StatusCode::UNAUTHORIZED
    );
    for l in demo.iter().chain([&fourth]) {
        assert_eq!(
            s.me_status(&l.at).await,
            StatusCode::OK,
            "the three newest live"
        );
    }
    assert_eq!(
        s.me_status(&alice.at).await,
        StatusCode::OK,
        "other users untouched"
    );
    let (_, rt) = s.refresh_ok(&alice.rt).await;
    assert!(!rt.is_empty());
}

#[tokio::test]
async fn a_login_beyond_max_sessions_is_refused_with_503_until_records_expire() {
    let s = Srv::with(|c| c.max_sessions = 2).await;
    let a = s.login_as("alice").await;
    s.login_as("bob").await;
    let login = || {
        s.http
            .post(s.url("/auth/login"))
            .json(&json!({ "username": "demo", "password": "demo" }))
            .send()
    };
    let r = login().await.expect("login");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert!(rt_cookie(r.headers()).is_none(), "no session started");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body, json!({ "error": "temporarily_unavailable" }));
    // Sessions already held keep working.
    assert_eq!(s.me_status(&a.at).await, StatusCode::OK);
    // A logout frees the record once the session's access tokens are dead.
    assert_eq!(s.logout(Some(&a.rt)).await.status(), StatusCode::OK);
    assert_eq!(
        login().await.expect("login").status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    s.advance(TOKENS_OUTLIVE_ROTATION);
    assert_eq!(login().await.expect("login").status(), StatusCode::OK);
}
