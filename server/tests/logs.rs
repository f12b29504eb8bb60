//! S38: no token, cookie value or password ever reaches the logs; issue 8b: every refusal is
//! logged with its reason. This test binary installs one global tracing subscriber at TRACE level
//! that captures everything the servers of its tests log (the tests share it, so each looks for
//! lines only it produces).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

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

/// The shared capture, installed as the global subscriber on first use.
fn capture() -> Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let cap = Capture::default();
            let writer = cap.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .init();
            cap
        })
        .clone()
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf8")
    }
}

#[tokio::test]
async fn s38_no_tokens_in_logs_and_hygienic_auth_responses() {
    let cap = capture();

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

    let text = cap.text();
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

/// Issue 8b: a refused request's log line carries the reason, whoever refused it; never a
/// secret. Each case: (what the test does, the path, the status, the reason logged).
#[tokio::test]
async fn every_refusal_is_logged_with_its_reason() {
    let cap = capture();
    let s = Srv::start().await;
    let json = |b: &str| b.to_string();
    let post = |path: &str| s.http.post(s.url(path));
    let unknown_rt = "Zm9yZWlnbi1yZWZyZXNoLXRva2VuLW5vdC1vdXJzLTE"; // well-formed, never issued
    let long_rt = "Zm9yZWlnbi1yZWZyZXNoLXRva2VuLW5vdC1vdXJzLTEyMzQ"; // 47 characters
    let bad_at = "not.a.jwt-secret-ish";

    let cases: Vec<(reqwest::RequestBuilder, &str, u16, &str)> = vec![
        (
            post("/auth/login")
                .header("origin", "https://evil.example")
                .header("content-type", "application/json")
                .body(json(r#"{"username":"demo","password":"origin-secret-pw"}"#)),
            "/auth/login",
            403,
            "Origin not allowed",
        ),
        (
            post("/auth/login")
                .header("content-type", "text/plain")
                .body(json(r#"{"username":"demo","password":"ct-secret-pw"}"#)),
            "/auth/login",
            415,
            "Content-Type is not exactly one application/json header",
        ),
        (
            post("/auth/login")
                .header("content-type", "application/json")
                .body(json(r#"["demo","array-secret-pw"]"#)),
            "/auth/login",
            400,
            "body is not exactly",
        ),
        (
            post("/auth/login")
                .header("content-type", "application/json")
                .body(json(r#"{"username":"demo","password":"wrong-secret-pw"}"#)),
            "/auth/login",
            401,
            "unknown user or wrong password",
        ),
        (
            post("/auth/refresh")
                .header("x-requested-with", "tm")
                .header("origin", s.origin()),
            "/auth/refresh",
            401,
            "no refresh cookie",
        ),
        (
            s.refresh_req(long_rt),
            "/auth/refresh",
            401,
            "malformed refresh cookie",
        ),
        (
            s.refresh_req(unknown_rt),
            "/auth/refresh",
            401,
            "unknown, expired or revoked refresh token",
        ),
        (
            post("/auth/legacy/upgrade").header("origin", s.origin()),
            "/auth/legacy/upgrade",
            403,
            "missing X-Requested-With",
        ),
        (
            s.http.get(s.url("/api/me")).bearer_auth(bad_at),
            "/api/me",
            401,
            "access token rejected: Malformed",
        ),
        (
            post("/auth/login")
                .header("content-type", "application/json")
                .body(vec![b' '; 20 * 1024]),
            "/auth/login",
            413,
            "Payload Too Large",
        ),
    ];
    for (req, path, status, reason) in cases {
        let r = req.send().await.expect("send");
        assert_eq!(r.status().as_u16(), status, "{path} {reason}");
        let text = cap.text();
        let logged = text.lines().any(|l| {
            l.contains(&format!("path={path} "))
                && l.contains(&format!("status={status} "))
                && l.contains(&format!("reason=\"{reason}"))
        });
        assert!(
            logged,
            "no log line for {path} {status} with reason {reason:?}"
        );
    }
    let text = cap.text();
    for secret in [
        "origin-secret-pw",
        "ct-secret-pw",
        "array-secret-pw",
        "wrong-secret-pw",
        unknown_rt,
        long_rt,
        bad_at,
    ] {
        assert!(!text.contains(secret), "{secret} leaked into the logs");
    }
}
