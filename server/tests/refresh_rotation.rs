//! Refresh-token rotation, reuse detection, grace, session expiry, logout (CATALOGUE 4(b)).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn login_sets_cookie_and_refresh_rotates() {
    let s = Srv::start().await;
    let l = s.login().await;
    assert_eq!(l.body["tokenType"], "Bearer");
    assert_eq!(l.body["expiresIn"], 600);
    assert!(
        l.body.get("refreshToken").is_none(),
        "no refresh token in the body"
    );
    let (at2, rt2) = s.refresh_ok(&l.rt).await;
    assert_ne!(rt2, l.rt, "rotated on use");
    assert_ne!(at2, l.at);
    assert_eq!(s.me_status(&at2).await, StatusCode::OK);
    assert_eq!(s.refresh_metric("ok").await, 1);
}

#[tokio::test]
async fn bad_credentials_are_401() {
    let s = Srv::start().await;
    for (u, p) in [("demo", "nope"), ("nobody", "nobody"), ("", "")] {
        let r = s
            .http
            .post(s.url("/auth/login"))
            .json(&serde_json::json!({ "username": u, "password": p }))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(rt_cookie(r.headers()).is_none());
    }
    assert_eq!(s.metric("auth_logins_total").await, 0);
}

#[tokio::test]
async fn s01_reuse_of_rotated_token_revokes_family() {
    let s = Srv::start().await;
    let l = s.login().await;
    let (at1, rt1) = s.refresh_ok(&l.rt).await;
    let (at2, rt2) = s.refresh_ok(&rt1).await;
    s.advance(11); // past the 10 s grace window
    let r = s.refresh(&l.rt).await; // grandparent, after grace
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(rt_cookie(r.headers()).is_none());
    let body: Value = r.json().await.expect("json");
    assert_eq!(body, serde_json::json!({ "error": "invalid_grant" }));
    // The whole family is dead, including the current child …
    assert_eq!(s.refresh(&rt2).await.status(), StatusCode::UNAUTHORIZED);
    // … and every access token of the session.
    for at in [&l.at, &at1, &at2] {
        assert_eq!(s.me_status(at).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(s.metric("auth_rt_reuse_detected_total").await, 1);
    assert_eq!(s.metric("auth_family_revocations_total").await, 1);
}

#[tokio::test]
async fn s01_parent_replayed_after_grace_is_reuse() {
    let s = Srv::start().await;
    let l = s.login().await;
    let (_, rt1) = s.refresh_ok(&l.rt).await;
    s.advance(10); // grace is [rotation, rotation + 10 s)
    assert_eq!(s.refresh(&l.rt).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.refresh(&rt1).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.metric("auth_rt_reuse_detected_total").await, 1);
}

#[tokio::test]
async fn s02_parent_within_grace_gets_current_child() {
    let s = Srv::start().await;
    let l = s.login().await;
    let (_, rt1) = s.refresh_ok(&l.rt).await;
    s.advance(9);
    let r = s.refresh(&l.rt).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        rt_cookie(r.headers()).as_deref(),
        Some(rt1.as_str()),
        "same RT re-sent"
    );
    let body: Value = r.json().await.expect("json");
    let at = body["accessToken"].as_str().expect("fresh AT");
    assert_eq!(s.me_status(at).await, StatusCode::OK);
    // No revocation: the child still rotates normally, once.
    let (_, rt2) = s.refresh_ok(&rt1).await;
    assert_ne!(rt2, rt1);
    assert_eq!(s.refresh_metric("grace").await, 1);
    assert_eq!(s.metric("auth_rt_reuse_detected_total").await, 0);
    assert_eq!(s.metric("auth_family_revocations_total").await, 0);
}

#[tokio::test]
async fn s02_grandparent_within_grace_is_reuse() {
    let s = Srv::start().await;
    let l = s.login().await;
    let (_, rt1) = s.refresh_ok(&l.rt).await;
    let (_, rt2) = s.refresh_ok(&rt1).await;
    // Still within grace of both rotations, but l.rt is the grandparent.
    assert_eq!(s.refresh(&l.rt).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.refresh(&rt2).await.status(),
        StatusCode::UNAUTHORIZED,
        "family revoked"
    );
    assert_eq!(s.metric("auth_rt_reuse_detected_total").await, 1);
}

#[tokio::test]
async fn s02_strict_mode_without_grace_revokes_on_parent_replay() {
    let s = Srv::with(|c| c.reuse_grace = 0).await;
    let l = s.login().await;
    let (_, rt1) = s.refresh_ok(&l.rt).await;
    assert_eq!(s.refresh(&l.rt).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.refresh(&rt1).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn s03_fifty_parallel_refreshes_mint_one_child() {
    let s = Srv::start().await;
    let l = s.login().await;
    let sid = s.me(&l.at).await.json::<Value>().await.expect("json")["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    // Fire all 50 on separate tasks, over separate connections as far as the pool allows.
    let reqs = (0..50).map(|_| s.refresh_req(&l.rt).send());
    let responses = futures_join_all(reqs).await;
    let mut cookies = std::collections::HashSet::new();
    for r in responses {
        let r = r.expect("response");
        assert_eq!(r.status(), StatusCode::OK);
        cookies.insert(rt_cookie(r.headers()).expect("cookie"));
    }
    assert_eq!(
        cookies.len(),
        1,
        "every response carries the same single child"
    );
    assert_eq!(
        s.running.state.store.generation(&sid).await,
        Ok(Some(1)),
        "exactly one rotation in the store"
    );
    assert_eq!(s.refresh_metric("ok").await, 1);
    assert_eq!(s.refresh_metric("grace").await, 49);
    assert_eq!(s.metric("auth_family_revocations_total").await, 0);
    // And the child is live.
    let child = cookies.into_iter().next().expect("child");
    s.refresh_ok(&child).await;
}

/// `join_all` without the futures crate.
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = Vec::new();
    for f in futs {
        set.push(tokio::spawn(f));
    }
    let mut out = Vec::new();
    for h in set {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn s12_s13_missing_garbage_and_duplicate_cookies_are_invalid_grant() {
    let s = Srv::start().await;
    let l = s.login().await;
    let base = || {
        s.http
            .post(s.url("/auth/refresh"))
            .header("x-requested-with", "tm")
            .header("origin", s.origin())
    };
    let cases: Vec<Option<String>> = vec![
        None,
        Some("rt=".into()),
        Some("rt=garbage".into()),
        Some(format!("rt={}", "é".repeat(30))),
        Some(format!("rt={}; rt={}", l.rt, l.rt)),
        Some(format!("rt={}x", l.rt)),
    ];
    for c in cases {
        let mut req = base();
        if let Some(c) = &c {
            req = req.header("cookie", c.clone());
        }
        let r = req.send().await.expect("send");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{c:?}");
        assert!(rt_cookie(r.headers()).is_none(), "no Set-Cookie on {c:?}");
        assert_eq!(
            r.json::<Value>().await.expect("json"),
            serde_json::json!({ "error": "invalid_grant" })
        );
    }
    // The real token was never consumed by those.
    s.refresh_ok(&l.rt).await;
}

#[tokio::test]
async fn s19_idle_expiry_slides_only_on_refresh() {
    let s = Srv::with(|c| c.refresh_idle_ttl = 100).await;
    let l = s.login().await;
    s.advance(90);
    let (_, rt1) = s.refresh_ok(&l.rt).await; // slides the idle window to now + 100
    s.advance(99);
    let (_, rt2) = s.refresh_ok(&rt1).await;
    s.advance(100);
    let r = s.refresh(&rt2).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn s19_absolute_cap_is_never_extended_by_rotation() {
    let s = Srv::with(|c| {
        c.refresh_idle_ttl = 100;
        c.session_max = 250;
    })
    .await;
    let l = s.login().await;
    let mut rt = l.rt;
    let mut max_ages = Vec::new();
    for _ in 0..3 {
        s.advance(80);
        let r = s.refresh(&rt).await;
        assert_eq!(r.status(), StatusCode::OK);
        let line = rt_set_cookie_line(r.headers()).expect("cookie");
        let max_age: u64 = line
            .split(';')
            .find_map(|p| p.trim().strip_prefix("Max-Age="))
            .expect("Max-Age")
            .parse()
            .expect("number");
        max_ages.push(max_age);
        rt = rt_cookie(r.headers()).expect("rt");
    }
    // At t=80, 160: idle (100) bounds; at t=240 only 10 s remain of the 250 s cap.
    assert_eq!(max_ages, vec![100, 90, 10]);
    s.advance(10); // t = 250: absolute cap reached
    assert_eq!(s.refresh(&rt).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn s21_logout_revokes_family_and_every_access_token_of_the_session() {
    let s = Srv::start().await;
    let l = s.login().await;
    let (at_tab2, rt1) = s.refresh_ok(&l.rt).await;
    let (at_tab3, rt2) = s.refresh_ok(&rt1).await;
    let other = s.login_as("alice").await;
    let r = s.logout(Some(&rt2)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let line = rt_set_cookie_line(r.headers()).expect("clearing cookie");
    assert!(
        line.starts_with("rt=;") && line.contains("Max-Age=0"),
        "{line}"
    );
    assert_eq!(s.refresh(&rt2).await.status(), StatusCode::UNAUTHORIZED);
    for at in [&l.at, &at_tab2, &at_tab3] {
        let r = s.me(at).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer error=\"invalid_token\"")
        );
    }
    // Other sessions are untouched.
    assert_eq!(s.me_status(&other.at).await, StatusCode::OK);
    // Idempotent: again with the dead cookie, and with none.
    for rt in [Some(rt2.as_str()), None, Some("garbage")] {
        let r = s.logout(rt).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(rt_set_cookie_line(r.headers()).is_some_and(|l| l.contains("Max-Age=0")));
    }
    assert_eq!(s.metric("auth_family_revocations_total").await, 1);
}

#[tokio::test]
async fn s22_logout_racing_refresh_leaves_no_live_token() {
    for _ in 0..10 {
        let s = Srv::start().await;
        let l = s.login().await;
        let (refresh, logout) = tokio::join!(s.refresh(&l.rt), s.logout(Some(&l.rt)));
        assert_eq!(logout.status(), StatusCode::OK);
        if refresh.status() == StatusCode::OK {
            let child = rt_cookie(refresh.headers()).expect("child");
            let at = refresh.json::<Value>().await.expect("json")["accessToken"]
                .as_str()
                .expect("at")
                .to_string();
            assert_eq!(
                s.refresh(&child).await.status(),
                StatusCode::UNAUTHORIZED,
                "child revoked"
            );
            assert_eq!(
                s.me_status(&at).await,
                StatusCode::UNAUTHORIZED,
                "its AT revoked"
            );
        } else {
            assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(s.refresh(&l.rt).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            s.running
                .state
                .store
                .stats(s.now())
                .await
                .expect("store")
                .live_sessions,
            0
        );
    }
}

#[tokio::test]
async fn s39_unknown_expired_revoked_and_reused_look_the_same() {
    let s = Srv::with(|c| c.refresh_idle_ttl = 50).await;
    let mut answers = Vec::new();
    // unknown
    answers.push(
        s.refresh("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await,
    );
    // expired
    let l = s.login().await;
    s.advance(51);
    answers.push(s.refresh(&l.rt).await);
    // revoked
    let l = s.login().await;
    s.logout(Some(&l.rt)).await;
    answers.push(s.refresh(&l.rt).await);
    // reused
    let l = s.login().await;
    s.refresh_ok(&l.rt).await;
    s.advance(11);
    answers.push(s.refresh(&l.rt).await);
    let mut shapes = Vec::new();
    for r in answers {
        let status = r.status();
        let ct = r.headers().get("content-type").cloned();
        let has_cookie = rt_cookie(r.headers()).is_some();
        let body = r.text().await.expect("text");
        shapes.push((status, ct, has_cookie, body));
    }
    let first = shapes.first().cloned().expect("first");
    assert_eq!(first.0, StatusCode::UNAUTHORIZED);
    assert_eq!(first.3, r#"{"error":"invalid_grant"}"#);
    for sh in &shapes {
        assert_eq!(sh, &first);
    }
}

#[tokio::test]
async fn s20_sessions_are_isolated_from_each_other() {
    let s = Srv::start().await;
    let demo = s.login().await;
    let alice = s.login_as("alice").await;
    // Reuse in demo's family…
    let (_, _) = s.refresh_ok(&demo.rt).await;
    s.advance(11);
    assert_eq!(s.refresh(&demo.rt).await.status(), StatusCode::UNAUTHORIZED);
    // …leaves alice's session, tokens and cookie alone; her RT only ever yields her identity.
    assert_eq!(s.me_status(&alice.at).await, StatusCode::OK);
    let (at, _) = s.refresh_ok(&alice.rt).await;
    let me: Value = s.me(&at).await.json().await.expect("json");
    assert_eq!(me["sub"], "alice");
    assert_ne!(me["sid"], segment(&demo.at, 1)["sid"]);
}
