//! Fault and load scenarios of the catalogue (4(c)) that are about the server alone: fifty parallel refreshes of
//! one cookie in grace and in strict mode (F10), and thirty simulated days of activity against the 24-hour session
//! cap (F16). The real server in-process with a manual clock, over real HTTP on loopback; the figures come from the
//! answers and `/metrics`.

mod common;

use std::collections::HashSet;

use common::*;
use reqwest::header::SET_COOKIE;
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// `count` refreshes of the same cookie at once, each on its own task.
async fn parallel_refreshes(s: &Srv, rt: &str, count: usize) -> Vec<Response> {
    let tasks: Vec<_> = (0..count)
        .map(|_| tokio::spawn(s.refresh_req(rt).send()))
        .collect();
    let mut out = Vec::with_capacity(count);
    for t in tasks {
        out.push(t.await.expect("task").expect("response"));
    }
    out
}

#[tokio::test]
async fn f10_fifty_parallel_refreshes_of_one_cookie_in_grace_and_in_strict_mode() {
    // Grace mode (the default 10 s): one child minted, every caller gets it, nothing revoked.
    let s = Srv::start().await;
    let l = s.login().await;
    let mut cookies = HashSet::new();
    for r in parallel_refreshes(&s, &l.rt, 50).await {
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "grace mode: every one of the 50 succeeds"
        );
        cookies.insert(rt_cookie(r.headers()).expect("each answer carries the cookie"));
        let body: Value = r.json().await.expect("json");
        assert!(body["accessToken"].is_string());
    }
    assert_eq!(cookies.len(), 1, "all 50 got the same single child");
    assert_eq!(
        s.refresh_metric("ok").await,
        1,
        "one rotation: one new refresh token minted"
    );
    assert_eq!(s.refresh_metric("grace").await, 49);
    assert_eq!(s.metric("auth_family_revocations_total").await, 0);
    assert_eq!(s.metric("auth_rt_reuse_detected_total").await, 0);
    let child = cookies.into_iter().next().expect("child");
    s.refresh_ok(&child).await;

    // Strict mode (`--reuse-grace 0`): the documented policy is that any replay of a rotated token is reuse, and
    // the race is one: exactly one success, the others refused with the generic invalid_grant, and the family
    // revoked, so the winner's child and access token die too (as node-oidc-provider does).
    let s = Srv::with(|c| c.reuse_grace = 0).await;
    let l = s.login().await;
    let mut winners = Vec::new();
    let mut refused = 0;
    for r in parallel_refreshes(&s, &l.rt, 50).await {
        match r.status() {
            StatusCode::OK => {
                let rt = rt_cookie(r.headers()).expect("cookie");
                let at = r.json::<Value>().await.expect("json")["accessToken"]
                    .as_str()
                    .expect("accessToken")
                    .to_string();
                winners.push((at, rt));
            }
            StatusCode::UNAUTHORIZED => {
                assert!(
                    r.headers().get(SET_COOKIE).is_none(),
                    "a refusal sets no cookie"
                );
                assert_eq!(
                    r.json::<Value>().await.expect("json")["error"],
                    "invalid_grant"
                );
                refused += 1;
            }
            other => panic!("strict mode answered {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "strict mode: exactly one success");
    assert_eq!(refused, 49);
    assert_eq!(s.refresh_metric("ok").await, 1);
    assert_eq!(s.refresh_metric("grace").await, 0);
    assert_eq!(
        s.metric("auth_rt_reuse_detected_total").await,
        1,
        "the first loser is the reuse"
    );
    assert_eq!(s.metric("auth_family_revocations_total").await, 1);
    let (at, rt) = &winners[0];
    assert_eq!(
        s.refresh(rt).await.status(),
        StatusCode::UNAUTHORIZED,
        "the winner's child is revoked with the family"
    );
    assert_eq!(
        s.me_status(at).await,
        StatusCode::UNAUTHORIZED,
        "and so is its access token"
    );
}

/// `Max-Age` of the refresh cookie in an answer, in seconds.
fn cookie_max_age(r: &Response) -> u64 {
    let line = rt_set_cookie_line(r.headers()).expect("a refresh cookie");
    line.split(';')
        .find_map(|a| a.trim().strip_prefix("Max-Age="))
        .expect("Max-Age")
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn f16_thirty_days_of_activity_meet_the_24_hour_cap_daily_and_idle_sessions_end() {
    const DAY: u64 = 24 * 3600;
    const ACCESS: u64 = 600; // the default 10 min access tokens, renewed as each expires (day 1)
    const LATER: u64 = 2_880; // days 2–30: a renewal every 48 min, inside the 1 h idle period (fewer requests)
    let s = Srv::with(|c| {
        // Rotations come faster than the real-clock rate limits allow: switch them off.
        c.refresh_rate_per_min = 0;
        c.refresh_ip_rate_per_5min = 0;
        c.login_rate_per_min = 0;
    })
    .await;
    let cfg = &s.running.state.config;
    assert_eq!(
        (cfg.session_max, cfg.access_ttl, cfg.refresh_idle_ttl),
        (DAY, ACCESS, 3600),
        "the defaults under test"
    );
    let start = s.now();
    let mut session_start = start;
    let mut rt = s.login().await.rt;
    let mut chains = Vec::new();
    let mut links = 0u64;
    while s.now() < start + 30 * DAY {
        s.advance(if chains.is_empty() { ACCESS } else { LATER });
        let r = s.refresh(&rt).await;
        if r.status() == StatusCode::OK {
            let left = session_start + DAY - s.now();
            assert!(
                cookie_max_age(&r) <= left,
                "no refresh token outlives the family cap"
            );
            rt = rt_cookie(r.headers()).expect("rotated cookie");
            links += 1;
            continue;
        }
        // Forced re-authentication: exactly at the cap, never before.
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            s.now() - session_start,
            DAY,
            "the session ended at the 24 h cap"
        );
        chains.push(links);
        links = 0;
        rt = s.login().await.rt;
        session_start = s.now();
    }
    assert_eq!(chains.len(), 30, "one forced sign-in per day");
    assert_eq!(
        chains[0],
        DAY / ACCESS - 1,
        "day 1: 143 rotations of 10 min tokens, the 144th renewal meets the cap"
    );
    assert!(
        chains[1..].iter().all(|&n| n == DAY / LATER - 1),
        "every later day ends at the cap too: {chains:?}"
    );
    assert_eq!(s.metric("auth_family_revocations_total").await, 0);
    assert_eq!(s.metric("auth_rt_reuse_detected_total").await, 0);

    // Idle expiry (the default 1 h): a session unused for an hour needs a new sign-in; one used within it lives.
    let idle = s.running.state.config.refresh_idle_ttl;
    let active = s.login().await.rt;
    let dozing = s.login().await.rt;
    s.advance(idle - 1);
    s.refresh_ok(&active).await;
    s.advance(1);
    assert_eq!(
        s.refresh(&dozing).await.status(),
        StatusCode::UNAUTHORIZED,
        "idle for the whole idle period: re-authentication"
    );
}
