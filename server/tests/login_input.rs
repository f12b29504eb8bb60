//! S46: the login body is exactly `{"username": string, "password": string}`, and a request
//! with more than one `Content-Type` header is refused, on login and on refresh.

mod common;

use common::*;
use reqwest::StatusCode;

async fn login_raw(s: &Srv, content_types: &[&str], body: &str) -> reqwest::Response {
    let mut req = s.http.post(s.url("/auth/login")).body(body.to_string());
    for ct in content_types {
        req = req.header("content-type", *ct);
    }
    req.send().await.expect("login request")
}

#[tokio::test]
async fn s46_only_the_documented_login_object_logs_in() {
    let s = Srv::start().await;
    for body in [
        r#"["demo","demo"]"#,
        r#"{"username":"demo","password":"demo","remember":true}"#,
        r#"{"username":"alice","username":"demo","password":"demo"}"#,
        r#"{"username":"demo","password":"demo","password":"demo"}"#,
        r#"{"username":"demo"}"#,
        r#"{"username":"demo","password":["demo"]}"#,
        r#"{"username":null,"password":"demo"}"#,
        r#"{"username":"demo","password":"demo"} {}"#,
        r#""demo""#,
        "null",
        "",
    ] {
        let r = login_raw(&s, &["application/json"], body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        assert!(rt_cookie(r.headers()).is_none(), "no session for {body}");
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v["error"], "invalid_request");
    }
    assert_eq!(s.metric("auth_logins_total").await, 0);
    // The documented object, in any member order and with insignificant whitespace, logs in.
    let r = login_raw(
        &s,
        &["application/json; charset=utf-8"],
        "{ \"password\": \"demo\",\n \"username\": \"demo\" }",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(s.metric("auth_logins_total").await, 1);
}

#[tokio::test]
async fn s46_two_content_type_headers_are_refused() {
    let s = Srv::start().await;
    let body = r#"{"username":"demo","password":"demo"}"#;
    for cts in [
        &["application/json", "application/json"][..],
        &["application/json", "text/plain"][..],
        &["text/plain", "application/json"][..],
    ] {
        let r = login_raw(&s, cts, body).await;
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{cts:?}");
        assert!(rt_cookie(r.headers()).is_none());
    }
    assert_eq!(s.metric("auth_logins_total").await, 0);

    // Refresh: refused by the CSRF checks before the token is touched.
    let l = s.login().await;
    let r = s
        .refresh_req(&l.rt)
        .header("content-type", "application/json")
        .header("content-type", "text/plain")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(s.refresh_metric("csrf").await, 1);
    let r = s
        .refresh_req(&l.rt)
        .header("content-type", "application/json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK, "the token was untouched");
}
