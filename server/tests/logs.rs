//! S38: no token, cookie value or password ever reaches the logs. This test binary installs a
//! global tracing subscriber at TRACE level that captures everything the server logs.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn s38_no_tokens_in_logs_and_hygienic_auth_responses() {
    let cap = Capture::default();
    let writer = cap.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let s = Srv::with(|c| {
        c.demo = true;
    })
    .await;
    let mut secrets: Vec<String> = vec!["demo-secret-password".into()];
    // A failed login with a distinctive password.
    let r = s
        .http
        .post(s.url("/auth/login"))
        .json(&serde_json::json!({ "username": "demo", "password": "demo-secret-password" }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let l = s.login().await;
    // S38 response hygiene on login and refresh.
    assert_eq!(
        l.headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let line = rt_set_cookie_line(&l.headers).expect("cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/auth"] {
        assert!(
            line.split("; ").any(|a| a == attr),
            "{attr} missing in {line}"
        );
    }
    assert!(
        !line.to_ascii_lowercase().contains("domain="),
        "host-only cookie"
    );
    assert!(!l.body.to_string().contains(&l.rt), "no RT in the body");
    secrets.push(l.at.clone());
    secrets.push(l.rt.clone());

    let r = s.refresh(&l.rt).await;
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let rt1 = rt_cookie(r.headers()).expect("rt1");
    let body: Value = r.json().await.expect("json");
    assert!(!body.to_string().contains(&rt1));
    secrets.push(rt1.clone());
    secrets.push(body["accessToken"].as_str().expect("at").to_string());

    // Grace replay, API calls, a tampered token, reuse, revocation, logout, legacy upgrade.
    let r = s.refresh(&l.rt).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(s.me_status(&l.at).await, StatusCode::OK);
    assert_eq!(
        s.me_status(&format!("{}x", l.at)).await,
        StatusCode::UNAUTHORIZED
    );
    s.revoke_access(&l.at).await;
    let legacy = s
        .running
        .state
        .mint_legacy_token("alice", true)
        .expect("legacy");
    secrets.push(legacy.clone());
    assert_eq!(
        s.me_status(&legacy).await,
        StatusCode::OK,
        "phase 0: legacy accepted, logged"
    );
    let r = s
        .http
        .post(s.url("/auth/legacy/upgrade"))
        .header("x-requested-with", "tm")
        .header("origin", s.origin())
        .bearer_auth(&legacy)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let lr = rt_cookie(r.headers()).expect("cookie");
    secrets.push(lr.clone());
    s.advance(11);
    assert_eq!(s.refresh(&l.rt).await.status(), StatusCode::UNAUTHORIZED); // reuse
    let lo = s.logout(Some(&lr)).await;
    assert_eq!(
        lo.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );

    let text = String::from_utf8(cap.0.lock().expect("lock").clone()).expect("utf8");
    assert!(
        text.contains("legacy_token_use") && text.contains("user=alice"),
        "legacy uses are logged with the user"
    );
    assert!(
        text.contains("rt_reuse_detected"),
        "the audit event is logged"
    );
    assert!(text.contains("login"), "logging was captured at all");
    for secret in &secrets {
        // Also no fragment long enough to matter (any 16-character window).
        assert!(
            !text.contains(secret.as_str()),
            "a secret leaked into the logs"
        );
        for w in secret.as_bytes().windows(16).step_by(8) {
            let w = std::str::from_utf8(w).expect("ascii");
            assert!(!text.contains(w), "a token fragment leaked into the logs");
        }
    }
}
