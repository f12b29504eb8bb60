//! CSRF on refresh and logout, CORS, header and body bounds, rate limits
//! (CATALOGUE S14–S18).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn s14_oversized_credential_headers_are_431_before_parsing() {
    let s = Srv::start().await;
    let l = s.login().await;
    let big = "a".repeat(9 * 1024);
    let r = s
        .refresh_req(&l.rt)
        .header("cookie", format!("pad={big}"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let r = s
        .http
        .get(s.url("/api/me"))
        .header("authorization", format!("Bearer {big}"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // Nothing reached the refresh handler, and the token is intact.
    assert_eq!(s.refresh_metric("invalid_grant").await, 0);
    s.refresh_ok(&l.rt).await;
}

#[tokio::test]
async fn s14_bodies_are_bounded_except_echo() {
    let s = Srv::start().await;
    let huge = format!(
        r#"{{"username":"demo","password":"{}"}}"#,
        "p".repeat(64 * 1024)
    );
    let r = s
        .http
        .post(s.url("/auth/login"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let l = s.login().await;
    let too_big = vec![0u8; 16 * 1024 * 1024 + 1];
    let r = s
        .http
        .post(s.url("/api/echo"))
        .bearer_auth(&l.at)
        .body(too_big)
        .send()
        .await;
    // Either a 413 answer or the connection closed while we were still sending.
    if let Ok(r) = r {
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}

/// Each CSRF vector on /auth/refresh: refused before the token is looked up.
#[tokio::test]
async fn s15_csrf_vectors_on_refresh_are_refused_before_the_token_is_touched() {
    let s = Srv::start().await;
    let l = s.login().await;
    let origin = s.origin();
    let cookie = format!("rt={}", l.rt);
    type Case = (&'static str, Vec<(&'static str, String)>, StatusCode);
    let cases: Vec<Case> = vec![
        (
            "missing custom header",
            vec![("origin", origin.clone())],
            StatusCode::FORBIDDEN,
        ),
        (
            "empty custom header",
            vec![("x-requested-with", " ".into()), ("origin", origin.clone())],
            StatusCode::FORBIDDEN,
        ),
        (
            "evil origin",
            vec![
                ("x-requested-with", "tm".into()),
                ("origin", "https://evil.example".into()),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "null origin",
            vec![("x-requested-with", "tm".into()), ("origin", "null".into())],
            StatusCode::FORBIDDEN,
        ),
        (
            "no origin",
            vec![("x-requested-with", "tm".into())],
            StatusCode::FORBIDDEN,
        ),
        (
            "suffix origin",
            vec![
                ("x-requested-with", "tm".into()),
                ("origin", format!("{origin}.evil.example")),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "prefix origin",
            vec![
                ("x-requested-with", "tm".into()),
                (
                    "origin",
                    origin.trim_end_matches(char::is_numeric).to_string(),
                ),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "https downgrade mismatch",
            vec![
                ("x-requested-with", "tm".into()),
                ("origin", origin.replace("http://", "https://")),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "upper-case origin",
            vec![
                ("x-requested-with", "tm".into()),
                ("origin", origin.to_uppercase()),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "cross-site fetch metadata",
            vec![
                ("x-requested-with", "tm".into()),
                ("origin", origin.clone()),
                ("sec-fetch-site", "cross-site".into()),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "text/plain",
            vec![
                ("x-requested-with", "tm".into()),
                ("origin", origin.clone()),
                ("content-type", "text/plain".into()),
            ],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "form",
            vec![
                ("x-requested-with", "tm".into()),
                ("origin", origin.clone()),
                ("content-type", "application/x-www-form-urlencoded".into()),
            ],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    let n = cases.len() as u64;
    for (what, headers, want) in cases {
        let mut req = s
            .http
            .post(s.url("/auth/refresh"))
            .header("cookie", cookie.clone());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let r = req.send().await.expect("send");
        assert_eq!(r.status(), want, "{what}");
        assert!(rt_cookie(r.headers()).is_none(), "{what}: no cookie");
    }
    assert_eq!(s.refresh_metric("csrf").await, n);
    // The token was never consumed: it rotates now as a first use (ok, not grace).
    s.refresh_ok(&l.rt).await;
    assert_eq!(s.refresh_metric("ok").await, 1);
    assert_eq!(s.refresh_metric("grace").await, 0);
    // application/json with parameters is accepted.
    let l2 = s.login().await;
    let r = s
        .refresh_req(&l2.rt)
        .header("content-type", "application/json; charset=utf-8")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn s15_listed_cross_origin_is_accepted_exactly() {
    let s = Srv::with(|c| c.allowed_origins = vec!["http://localhost:5173".into()]).await;
    let l = s.login().await;
    let r = s
        .http
        .post(s.url("/auth/refresh"))
        .header("cookie", format!("rt={}", l.rt))
        .header("x-requested-with", "tm")
        .header("origin", "http://localhost:5173")
        .header("sec-fetch-site", "same-site")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://localhost:5173")
    );
    assert_eq!(
        r.headers()
            .get("access-control-allow-credentials")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let r = s
        .http
        .post(s.url("/auth/refresh"))
        .header("cookie", format!("rt={}", l.rt))
        .header("x-requested-with", "tm")
        .header("origin", "http://localhost:51730")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn s16_csrf_on_logout_leaves_the_session_untouched() {
    let s = Srv::start().await;
    let l = s.login().await;
    let vectors: Vec<Vec<(&str, String)>> = vec![
        vec![("origin", s.origin())],
        vec![
            ("x-requested-with", "tm".into()),
            ("origin", "https://evil.example".into()),
        ],
        vec![("x-requested-with", "tm".into()), ("origin", "null".into())],
        vec![("x-requested-with", "tm".into())],
        vec![
            ("x-requested-with", "tm".into()),
            ("origin", s.origin()),
            ("sec-fetch-site", "cross-site".into()),
        ],
        vec![
            ("x-requested-with", "tm".into()),
            ("origin", s.origin()),
            ("content-type", "text/plain".into()),
        ],
    ];
    for v in vectors {
        let mut req = s
            .http
            .post(s.url("/auth/logout"))
            .header("cookie", format!("rt={}", l.rt))
            .bearer_auth(&l.at);
        for (k, val) in &v {
            req = req.header(*k, val.clone());
        }
        let r = req.send().await.expect("send");
        assert!(
            r.status() == StatusCode::FORBIDDEN || r.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{v:?}"
        );
        assert!(
            rt_cookie(r.headers()).is_none() && !r.headers().contains_key("set-cookie"),
            "{v:?}: cookie kept"
        );
    }
    assert_eq!(s.me_status(&l.at).await, StatusCode::OK);
    s.refresh_ok(&l.rt).await;
    assert_eq!(s.metric("auth_family_revocations_total").await, 0);
}

#[tokio::test]
async fn s17_cors_never_reflects_arbitrary_origins() {
    let s = Srv::with(|c| c.allowed_origins = vec!["http://app.example:3000".into()]).await;
    for origin in [
        "https://evil.example",
        "null",
        "http://app.example:3000.evil.example",
        "http://APP.example:3000",
    ] {
        let pre = s
            .http
            .request(reqwest::Method::OPTIONS, s.url("/auth/refresh"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-requested-with")
            .send()
            .await
            .expect("send");
        assert!(
            !pre.headers().contains_key("access-control-allow-origin"),
            "{origin}"
        );
        assert!(
            !pre.headers()
                .contains_key("access-control-allow-credentials"),
            "{origin}"
        );
        let get = s
            .http
            .get(s.url("/.well-known/jwks.json"))
            .header("origin", origin)
            .send()
            .await
            .expect("send");
        assert!(
            !get.headers().contains_key("access-control-allow-origin"),
            "{origin}"
        );
        assert!(get.headers().get_all("vary").iter().any(|v| v == "Origin"));
    }
    let pre = s
        .http
        .request(reqwest::Method::OPTIONS, s.url("/auth/refresh"))
        .header("origin", "http://app.example:3000")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("send");
    assert_eq!(pre.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        pre.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://app.example:3000")
    );
    let allow_headers = pre
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(allow_headers.contains("x-requested-with") && allow_headers.contains("authorization"));
}

#[tokio::test]
async fn s18_family_rate_limit_is_429_and_never_consumes_the_token() {
    let s = Srv::with(|c| c.refresh_rate_per_min = 3).await;
    let l = s.login().await;
    let mut rt = l.rt;
    for _ in 0..3 {
        rt = s.refresh_ok(&rt).await.1;
    }
    let r = s.refresh(&rt).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry >= 1);
    assert!(rt_cookie(r.headers()).is_none());
    // The limited token is still current: not consumed, not rotated, family not revoked.
    let sid = s.sid_of(&s.login_as("alice").await.at).await; // another family is unaffected
    assert!(!sid.is_empty());
    let store = &s.running.state.store;
    let me: Value = s.me(&l.at).await.json().await.expect("json");
    assert_eq!(
        store.generation(me["sid"].as_str().expect("sid")).await,
        Ok(Some(3))
    );
    assert_eq!(
        store
            .session_rejected(me["sid"].as_str().expect("sid"))
            .await,
        Ok(false)
    );
    assert_eq!(s.refresh_metric("rate_limited").await, 1);
    assert_eq!(
        s.metric("auth_rate_limited_total{route=\"refresh\"}").await,
        1
    );
    assert_eq!(s.metric("auth_rt_reuse_detected_total").await, 0);
    // Other families behind the same IP are not limited by this family's budget.
    let a = s.login_as("bob").await;
    s.refresh_ok(&a.rt).await;
}

#[tokio::test]
async fn s18_per_ip_refresh_limit_applies_before_the_store_is_touched() {
    let s = Srv::with(|c| c.refresh_ip_rate_per_5min = 4).await;
    let l = s.login().await;
    for _ in 0..4 {
        let r = s
            .refresh("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = s.refresh(&l.rt).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    // The limited request did not touch the real token.
    let sid = s.sid_of(&l.at).await;
    assert_eq!(s.running.state.store.generation(&sid).await, Ok(Some(0)));
}

#[tokio::test]
async fn s18_parallel_grace_replays_do_not_eat_the_family_budget() {
    let s = Srv::with(|c| c.refresh_rate_per_min = 2).await;
    let l = s.login().await;
    let mut handles = Vec::new();
    for _ in 0..20 {
        handles.push(tokio::spawn(s.refresh_req(&l.rt).send()));
    }
    for h in handles {
        assert_eq!(
            h.await.expect("task").expect("send").status(),
            StatusCode::OK
        );
    }
    assert_eq!(s.refresh_metric("ok").await, 1);
    assert_eq!(s.refresh_metric("grace").await, 19);
}

#[tokio::test]
async fn s18_login_rate_limit() {
    let s = Srv::with(|c| c.login_rate_per_min = 2).await;
    s.login().await;
    s.login().await;
    let r = s
        .http
        .post(s.url("/auth/login"))
        .json(&serde_json::json!({ "username": "demo", "password": "demo" }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        s.metric("auth_rate_limited_total{route=\"login\"}").await,
        1
    );
}

#[tokio::test]
async fn rate_limits_of_zero_disable_limiting() {
    let s = Srv::with(|c| {
        c.login_rate_per_min = 0;
        c.refresh_rate_per_min = 0;
        c.refresh_ip_rate_per_5min = 0;
    })
    .await;
    let l = s.login().await;
    let mut rt = l.rt;
    for _ in 0..30 {
        rt = s.refresh_ok(&rt).await.1;
    }
    for _ in 0..30 {
        s.login().await;
    }
}

#[tokio::test]
async fn login_refuses_foreign_origin_and_non_json() {
    let s = Srv::start().await;
    let r = s
        .http
        .post(s.url("/auth/login"))
        .header("origin", "https://evil.example")
        .json(&serde_json::json!({ "username": "demo", "password": "demo" }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s
        .http
        .post(s.url("/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=demo&password=demo")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = s
        .http
        .post(s.url("/auth/login"))
        .header("origin", s.origin())
        .json(&serde_json::json!({ "username": "demo", "password": "demo" }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
}
