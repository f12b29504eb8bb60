//! S45: per-IP limits behind a proxy. The client IP comes from a trusted proxy's forwarding header
//! only (none by default), and the per-IP refresh budget is spent only after the cheap checks.

mod common;

use auth_server::clientip::parse_trusted_proxy;
use common::*;
use reqwest::StatusCode;

async fn login_from(s: &Srv, header: (&str, &str)) -> StatusCode {
    s.http
        .post(s.url("/auth/login"))
        .header(header.0, header.1)
        .json(&serde_json::json!({ "username": "demo", "password": "demo" }))
        .send()
        .await
        .expect("login")
        .status()
}

#[tokio::test]
async fn s45_forwarding_headers_are_ignored_without_a_trusted_proxy() {
    let s = Srv::with(|c| c.login_rate_per_min = 2).await;
    // Each claims another client; all are the loopback peer, which has a budget of 2.
    assert_eq!(
        login_from(&s, ("x-forwarded-for", "203.0.113.1")).await,
        StatusCode::OK
    );
    assert_eq!(
        login_from(&s, ("x-forwarded-for", "203.0.113.2")).await,
        StatusCode::OK
    );
    assert_eq!(
        login_from(&s, ("x-forwarded-for", "203.0.113.3")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_from(&s, ("forwarded", "for=203.0.113.4")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn s45_behind_a_trusted_proxy_each_client_has_its_own_budget() {
    let s = Srv::with(|c| {
        c.login_rate_per_min = 2;
        c.trusted_proxies = vec![
            parse_trusted_proxy("127.0.0.1").expect("net"),
            parse_trusted_proxy("10.0.0.0/8").expect("net"),
        ];
    })
    .await;
    let xff = "x-forwarded-for";
    assert_eq!(login_from(&s, (xff, "203.0.113.7")).await, StatusCode::OK);
    assert_eq!(login_from(&s, (xff, "203.0.113.7")).await, StatusCode::OK);
    assert_eq!(
        login_from(&s, (xff, "203.0.113.7")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy is not affected.
    assert_eq!(login_from(&s, (xff, "203.0.113.8")).await, StatusCode::OK);
    // A client cannot escape its budget by writing its own hop: the proxy appends the real one,
    // and only hops appended by trusted proxies are believed.
    assert_eq!(
        login_from(&s, (xff, "198.51.100.99, 203.0.113.7")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Through a chain of trusted proxies the client is the rightmost untrusted hop.
    assert_eq!(
        login_from(&s, (xff, "1.2.3.4, 203.0.113.7, 10.9.8.7")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Forwarded is not read when X-Forwarded-For is the configured header.
    assert_eq!(
        login_from(&s, ("forwarded", "for=203.0.113.9")).await,
        StatusCode::OK,
        "no header: keyed on the proxy itself, which has budget left"
    );
}

#[tokio::test]
async fn s45_forwarded_header_mode() {
    let s = Srv::with(|c| {
        c.login_rate_per_min = 1;
        c.trusted_proxies = vec![parse_trusted_proxy("127.0.0.1").expect("net")];
        c.client_ip_header = auth_server::clientip::ClientIpHeader::Forwarded;
    })
    .await;
    let fwd = "forwarded";
    assert_eq!(
        login_from(&s, (fwd, r#"for="[2001:db8::1]:4711";proto=https"#)).await,
        StatusCode::OK
    );
    assert_eq!(
        login_from(&s, (fwd, "for=\"[2001:db8::1]\"")).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the same client, written another way"
    );
    assert_eq!(
        login_from(&s, (fwd, "for=192.0.2.60")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn s45_junk_refreshes_do_not_spend_the_per_ip_budget() {
    let s = Srv::with(|c| c.refresh_ip_rate_per_5min = 3).await;
    let l = s.login().await;
    for _ in 0..20 {
        // A cross-site form post: no custom header.
        let r = s
            .http
            .post(s.url("/auth/refresh"))
            .header("origin", "https://evil.example")
            .header("cookie", format!("rt={}", l.rt))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // A foreign Origin with the custom header.
        let r = s
            .refresh_req(&l.rt)
            .header("origin", "https://evil.example")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // No cookie at all, or a malformed one.
        let r = s
            .http
            .post(s.url("/auth/refresh"))
            .header("x-requested-with", "tm")
            .header("origin", s.origin())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            s.refresh("not-a-token").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        s.metric("auth_rate_limited_total{route=\"refresh\"}").await,
        0
    );
    // The budget is intact for real refreshes, and still applies to them.
    let (_, rt1) = s.refresh_ok(&l.rt).await;
    let (_, rt2) = s.refresh_ok(&rt1).await;
    let (_, rt3) = s.refresh_ok(&rt2).await;
    assert_eq!(
        s.refresh(&rt3).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}
