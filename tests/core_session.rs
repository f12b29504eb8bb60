//! Native scenario tests of the session state machine with a fake clock (no sleeping anywhere).
#![cfg(not(target_arch = "wasm32"))]

use wasm_token_manager::session::*;

mod common;
use common::{b64, drain, events, starts};

const T0: u64 = 1_700_000_000_000;
const JSON: Option<&str> = Some("application/json");

fn jwt(payload: &str) -> String {
    format!(
        "{}.{}.c2ln",
        b64(br#"{"alg":"HS256"}"#.as_ref(), true),
        b64(payload.as_ref(), true)
    )
}

/// A token issued at `now_ms` living `life_s` seconds.
fn token(now_ms: u64, life_s: u64) -> String {
    let iat = now_ms / 1000;
    jwt(&format!(r#"{{"iat":{iat},"exp":{}}}"#, iat + life_s))
}

fn body(t: &str) -> Vec<u8> {
    format!(r#"{{"accessToken":"{t}"}}"#).into_bytes()
}

fn ok(b: &[u8]) -> RefreshResponse<'_> {
    RefreshResponse::Http {
        status: 200,
        content_type: JSON,
        retry_after: None,
        body: b,
        body_too_large: false,
    }
}

fn status(code: u16) -> RefreshResponse<'static> {
    RefreshResponse::Http {
        status: code,
        content_type: JSON,
        retry_after: None,
        body: b"{}",
        body_too_large: false,
    }
}

fn session() -> Session {
    Session::new(SessionConfig::default())
}

fn logged_in(now: u64, life_s: u64) -> Session {
    let mut s = session();
    s.set_token(now, &token(now, life_s), None, TokenSource::Login)
        .unwrap();
    drain(&mut s);
    s
}

fn wait_id(p: Prepare) -> RefreshId {
    match p {
        Prepare::Wait(id) => id,
        other => panic!("expected Wait, got {other:?}"),
    }
}

fn sent_token(p: &Prepare) -> Option<String> {
    match p {
        Prepare::Send { token, .. } => token.as_ref().map(|t| t.expose().to_owned()),
        Prepare::Wait(_) => panic!("expected Send"),
    }
}

#[test]
fn fresh_token_is_sent_without_refresh() {
    let mut s = logged_in(T0, 300);
    let p = s.prepare_request(T0 + 1000, false);
    assert!(sent_token(&p).is_some());
    assert!(drain(&mut s).is_empty());
    assert!(s.has_token());
    assert_eq!(s.expires_at(), Some(T0 + 300_000));
}

#[test]
fn login_emits_tokenchange() {
    let mut s = session();
    s.set_token(T0, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    assert_eq!(
        events(&drain(&mut s)),
        vec![Event::TokenChange {
            expires_at: Some(T0 + 300_000),
            source: TokenSource::Login
        }]
    );
}

#[test]
fn malformed_token_not_stored() {
    let mut s = session();
    assert!(s.set_token(T0, "a b", None, TokenSource::Set).is_err());
    assert!(!s.has_token());
    assert!(drain(&mut s).is_empty());
    assert!(s
        .set_token_body(T0, b"<html>", Some("text/html"), TokenSource::Login)
        .is_err());
    assert!(!s.has_token());
}

#[test]
fn proactive_refresh_at_exp_minus_margin() {
    let mut s = logged_in(T0, 300);
    assert_eq!(s.poll_timeout(), Some(T0 + 240_000));
    s.handle_timeout(T0 + 239_999);
    assert!(
        starts(&drain(&mut s)).is_empty(),
        "timers are hints: nothing due yet"
    );
    s.handle_timeout(T0 + 240_000);
    let a = drain(&mut s);
    let ids = starts(&a);
    assert_eq!(ids.len(), 1);
    // Requests during the refresh wait for it.
    let id = wait_id(s.prepare_request(T0 + 240_001, false));
    assert_eq!(id, ids[0]);
    let new = token(T0 + 240_100, 300);
    s.handle_refresh_response(T0 + 240_100, id, ok(&body(&new)), 0.5);
    let a = drain(&mut s);
    assert!(a.contains(&Action::RefreshSettled { id }));
    assert_eq!(
        events(&a),
        vec![Event::TokenChange {
            expires_at: Some(T0 + 540_100),
            source: TokenSource::Refresh
        }]
    );
    assert_eq!(
        sent_token(&s.prepare_request(T0 + 240_200, true)),
        Some(new)
    );
    assert_eq!(s.poll_timeout(), Some(T0 + 480_100));
}

#[test]
fn short_lifetime_margin_never_before_half_life() {
    let mut s = logged_in(T0, 30);
    assert_eq!(s.poll_timeout(), Some(T0 + 15_000));
    let s2 = {
        let mut s = Session::new(SessionConfig {
            margin_ms: 5_000,
            ..SessionConfig::default()
        });
        s.set_token(T0, &token(T0, 30), None, TokenSource::Set)
            .unwrap();
        s
    };
    assert_eq!(s2.poll_timeout(), Some(T0 + 25_000));
    s.handle_timeout(T0 + 15_000);
    assert_eq!(starts(&drain(&mut s)).len(), 1);
}

#[test]
fn scheduling_with_client_clock_skew_both_ways() {
    // The server issued the token at T0; the client's clock reads T0 ± skew at receipt.
    for skew in [
        -86_400_000i64,
        -600_000,
        -61_000,
        0,
        61_000,
        600_000,
        86_400_000,
    ] {
        let local = (T0 as i64 + skew) as u64;
        let mut s = session();
        s.set_token(local, &token(T0, 300), None, TokenSource::Login)
            .unwrap();
        assert_eq!(s.poll_timeout(), Some(local + 240_000), "skew {skew}");
        assert!(
            sent_token(&s.prepare_request(local + 1, false)).is_some(),
            "skew {skew}: no refresh loop"
        );
        assert!(starts(&drain(&mut s)).is_empty());
    }
}

#[test]
fn missing_exp_gives_no_timer_and_relies_on_401() {
    let mut s = session();
    s.set_token(T0, &jwt(r#"{"sub":"u"}"#), None, TokenSource::Set)
        .unwrap();
    drain(&mut s);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.expires_at(), None);
    let Prepare::Send { generation, .. } = s.prepare_request(T0 + 10_000_000, false) else {
        panic!()
    };
    assert!(matches!(
        s.handle_unauthorized(T0 + 10_000_001, generation),
        Unauthorized::Wait(_)
    ));
    assert_eq!(starts(&drain(&mut s)).len(), 1);
}

#[test]
fn c47_huge_remaining_lifetime_clamped_and_rearmed() {
    let mut s = logged_in(T0, 30 * 86_400);
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, T0 + 30 * 86_400_000 - 60_000);
    assert_eq!(clamp_timer_delay(deadline - T0), 2_147_483_647);
    // The clamped timer fires early: nothing happens, the deadline stays.
    s.handle_timeout(T0 + 2_147_483_647);
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), Some(deadline));
}

#[test]
fn c09_millisecond_exp_gets_no_timer() {
    let mut s = session();
    s.set_token(
        T0,
        &jwt(&format!(r#"{{"exp":{}}}"#, T0 + 300_000)),
        None,
        TokenSource::Set,
    )
    .unwrap();
    assert_eq!(s.poll_timeout(), None);
    assert!(sent_token(&s.prepare_request(T0, false)).is_some());
}

#[test]
fn c07_exp_negative_refreshes_once() {
    // A stored token that looks expired is sent as is; its 401 gives one refresh; a new token that also
    // looks expired is stored without scheduling anything: no loop.
    let mut s = session();
    s.set_token(T0, &jwt(r#"{"exp":-1}"#), None, TokenSource::Set)
        .unwrap();
    drain(&mut s);
    assert_eq!(s.poll_timeout(), None);
    let p = s.prepare_request(T0, false);
    let Prepare::Send {
        token: Some(_),
        generation,
    } = p
    else {
        panic!("{p:?}")
    };
    let Unauthorized::Wait(id) = s.handle_unauthorized(T0, generation) else {
        panic!()
    };
    s.handle_refresh_response(T0 + 10, id, ok(&body(&jwt(r#"{"exp":0}"#))), 0.5);
    let a = drain(&mut s);
    assert_eq!(starts(&a).len(), 1);
    assert!(s.token_since(generation).is_some());
    assert_eq!(s.poll_timeout(), None);
    for i in 0..100 {
        s.handle_timeout(T0 + 20 + i * 1000);
        assert!(sent_token(&s.prepare_request(T0 + 20 + i * 1000, false)).is_some());
    }
    assert!(starts(&drain(&mut s)).is_empty());
}

#[test]
fn c34_new_token_already_expired_never_loops() {
    // Client clock far ahead and no iat: the fresh token looks expired.
    let mut s = logged_in(T0, 300);
    s.handle_timeout(T0 + 240_000);
    let id = starts(&drain(&mut s))[0];
    let stale_looking = jwt(&format!(r#"{{"exp":{}}}"#, T0 / 1000 + 100));
    s.handle_refresh_response(T0 + 240_000, id, ok(&body(&stale_looking)), 0.5);
    drain(&mut s);
    assert_eq!(s.poll_timeout(), None);
    for t in (T0 + 240_001..T0 + 3_600_000).step_by(7_000) {
        s.handle_timeout(t);
        let _ = s.prepare_request(t, false);
    }
    assert!(starts(&drain(&mut s)).is_empty());
}

#[test]
fn single_flight_two_callers_one_refresh() {
    let mut s = logged_in(T0, 300);
    let now = T0 + 300_000; // expired: no doomed requests
    let a = wait_id(s.prepare_request(now, false));
    let b = wait_id(s.prepare_request(now, false));
    assert_eq!(a, b);
    assert_eq!(starts(&drain(&mut s)).len(), 1);
    s.handle_refresh_response(now + 50, a, ok(&body(&token(now, 300))), 0.5);
    drain(&mut s);
    assert!(sent_token(&s.prepare_request(now + 60, true)).is_some());
}

#[test]
fn c40_hundred_concurrent_401s_one_refresh() {
    let mut s = logged_in(T0, 300);
    let gens: Vec<u64> = (0..100)
        .map(|_| match s.prepare_request(T0 + 1000, false) {
            Prepare::Send { generation, .. } => generation,
            p => panic!("{p:?}"),
        })
        .collect();
    let ids: Vec<Unauthorized> = gens
        .iter()
        .map(|g| s.handle_unauthorized(T0 + 2000, *g))
        .collect();
    let a = drain(&mut s);
    assert_eq!(starts(&a).len(), 1);
    let id = starts(&a)[0];
    assert!(ids.iter().all(|u| *u == Unauthorized::Wait(id)));
    s.handle_refresh_response(T0 + 2100, id, ok(&body(&token(T0 + 2100, 300))), 0.5);
    for g in gens {
        assert!(s.token_since(g).is_some());
    }
    assert_eq!(starts(&drain(&mut s)).len(), 0);
}

#[test]
fn c38_stale_token_401_retries_with_current_without_refresh() {
    let mut s = logged_in(T0, 300);
    let Prepare::Send {
        generation: old, ..
    } = s.prepare_request(T0 + 1, false)
    else {
        panic!()
    };
    // Meanwhile a proactive refresh completes.
    s.handle_timeout(T0 + 240_000);
    let id = starts(&drain(&mut s))[0];
    let new = token(T0 + 240_000, 300);
    s.handle_refresh_response(T0 + 240_050, id, ok(&body(&new)), 0.5);
    drain(&mut s);
    // The late 401 for the old request: retry with the new token, no refresh.
    match s.handle_unauthorized(T0 + 240_060, old) {
        Unauthorized::Retry { token, generation } => {
            assert_eq!(token.expose(), new);
            assert_eq!(generation, s.generation());
        }
        u => panic!("{u:?}"),
    }
    assert!(starts(&drain(&mut s)).is_empty());
}

#[test]
fn c39_retry_401_is_given_up_by_generation() {
    // After one refresh, the retried request's 401 (with the new generation) starts at most one more
    // refresh for *other* callers; the shell never retries a request twice. Here: the core sees the same
    // generation twice in a row and single-flights it.
    let mut s = logged_in(T0, 300);
    let Prepare::Send { generation, .. } = s.prepare_request(T0 + 1, false) else {
        panic!()
    };
    let Unauthorized::Wait(id) = s.handle_unauthorized(T0 + 2, generation) else {
        panic!()
    };
    s.handle_refresh_response(T0 + 3, id, ok(&body(&token(T0 + 3, 300))), 0.5);
    let (_, g2) = s.token_since(generation).unwrap();
    drain(&mut s);
    // The retry is answered 401 too: the shell hands it to the caller. If it reported it, the core would
    // single-flight one refresh, never two.
    let u1 = s.handle_unauthorized(T0 + 4, g2);
    let u2 = s.handle_unauthorized(T0 + 4, g2);
    assert_eq!(u1, u2);
    assert_eq!(starts(&drain(&mut s)).len(), 1);
}

#[test]
fn c42_logout_during_refresh_drops_result() {
    let mut s = logged_in(T0, 300);
    s.handle_timeout(T0 + 240_000);
    let id = starts(&drain(&mut s))[0];
    assert!(s.logout(T0 + 240_010, LogoutReason::User));
    let a = drain(&mut s);
    assert!(
        a.contains(&Action::RefreshSettled { id }),
        "waiters are woken"
    );
    assert!(
        !a.contains(&Action::AbortRefresh { id }),
        "the call may still store a rotated cookie"
    );
    assert_eq!(
        events(&a),
        vec![Event::Logout {
            reason: LogoutReason::User
        }]
    );
    // The late result must not resurrect the session.
    s.handle_refresh_response(T0 + 240_100, id, ok(&body(&token(T0 + 240_100, 300))), 0.5);
    assert!(drain(&mut s).is_empty());
    assert!(!s.has_token());
    assert_eq!(s.poll_timeout(), None);
    // Requests go out without a token and trigger no refresh; logout is idempotent.
    assert_eq!(sent_token(&s.prepare_request(T0 + 240_200, false)), None);
    assert!(!s.logout(T0 + 240_300, LogoutReason::User));
    assert!(drain(&mut s).is_empty());
}

#[test]
fn s16_logout_confirmed_only_by_a_2xx_answer() {
    for status in [200, 204, 299] {
        assert_eq!(logout_result(Some(status)), Ok(()), "{status}");
    }
    for status in [Some(403), Some(500), Some(302), Some(401), Some(0), None] {
        let e = logout_result(status).unwrap_err();
        assert_eq!(e.status, status);
        assert_eq!(e.code(), ErrorCode::LogoutFailed);
        assert!(e.message().contains("still be active"), "{}", e.message());
    }
    // Whatever the server answers, the local logout already happened and is not undone.
    let mut s = logged_in(T0, 300);
    assert!(s.logout(T0 + 10, LogoutReason::User));
    drain(&mut s);
    let _ = logout_result(Some(403));
    assert!(!s.has_token() && s.is_ended());
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(
        sent_token(&s.prepare_request(T0 + 20, false)),
        None,
        "no session restore after a refused logout"
    );
    assert!(drain(&mut s).is_empty());
}

#[test]
fn c43_login_during_refresh_drops_old_result() {
    let mut s = logged_in(T0, 300);
    s.handle_timeout(T0 + 240_000);
    let id = starts(&drain(&mut s))[0];
    let b = token(T0 + 240_001, 600);
    s.set_token(T0 + 240_001, &b, None, TokenSource::Login)
        .unwrap();
    drain(&mut s);
    s.handle_refresh_response(T0 + 240_100, id, ok(&body(&token(T0, 300))), 0.5);
    assert!(drain(&mut s).is_empty());
    assert_eq!(sent_token(&s.prepare_request(T0 + 240_200, false)), Some(b));
}

#[test]
fn session_restore_tries_one_refresh() {
    let mut s = session();
    let id = wait_id(s.prepare_request(T0, false));
    assert_eq!(wait_id(s.prepare_request(T0, false)), id);
    assert_eq!(starts(&drain(&mut s)).len(), 1);
    s.handle_refresh_response(T0 + 10, id, ok(&body(&token(T0, 300))), 0.5);
    drain(&mut s);
    assert!(s.has_token());
}

#[test]
fn session_restore_without_session_stops_refreshing() {
    let mut s = session();
    let id = wait_id(s.prepare_request(T0, false));
    drain(&mut s);
    s.handle_refresh_response(T0 + 10, id, status(401), 0.5);
    let a = drain(&mut s);
    // No session was held: no sessionexpired.
    assert!(!events(&a).contains(&Event::SessionExpired));
    for i in 0..10 {
        assert_eq!(sent_token(&s.prepare_request(T0 + 100 + i, false)), None);
        let Prepare::Send { generation, .. } = s.prepare_request(T0 + 100 + i, false) else {
            panic!()
        };
        assert_eq!(
            s.handle_unauthorized(T0 + 100 + i, generation),
            Unauthorized::GiveUp
        );
    }
    assert!(starts(&drain(&mut s)).is_empty());
    // refresh() tries again; so does a login.
    let _ = s.request_refresh(T0 + 1000);
    assert_eq!(starts(&drain(&mut s)).len(), 1);
}

#[test]
fn c28_refresh_401_is_terminal_sessionexpired_once() {
    let mut s = logged_in(T0, 300);
    let now = T0 + 300_000;
    let id = wait_id(s.prepare_request(now, false));
    let _ = wait_id(s.prepare_request(now, false));
    drain(&mut s);
    s.handle_refresh_response(now + 5, id, status(401), 0.5);
    let a = drain(&mut s);
    let ev = events(&a);
    assert_eq!(
        ev.iter().filter(|e| **e == Event::SessionExpired).count(),
        1
    );
    assert!(ev.contains(&Event::RefreshFailed {
        status: Some(401),
        retryable: false,
        retry_at: None,
        had_token: true
    }));
    assert!(a.contains(&Action::RefreshSettled { id }));
    assert!(!s.has_token());
    // Waiters resolve with their original 401 (no token since); no further refresh calls (count = 1).
    for i in 0..50 {
        let p = s.prepare_request(now + 10 + i, false);
        assert_eq!(sent_token(&p), None);
        let Prepare::Send { generation, .. } = p else {
            panic!()
        };
        assert_eq!(
            s.handle_unauthorized(now + 10 + i, generation),
            Unauthorized::GiveUp
        );
        s.handle_timeout(now + 10 + i * 60_000);
    }
    let a = drain(&mut s);
    assert!(starts(&a).is_empty());
    assert!(!events(&a).contains(&Event::SessionExpired));
}

#[test]
fn c29_c30_refresh_400_and_403_are_terminal() {
    for code in [400, 403] {
        let mut s = logged_in(T0, 300);
        let id = s.request_refresh(T0 + 1);
        drain(&mut s);
        s.handle_refresh_response(T0 + 2, id, status(code), 0.5);
        assert!(
            events(&drain(&mut s)).contains(&Event::SessionExpired),
            "{code}"
        );
        assert!(s.is_ended());
        assert_eq!(s.poll_timeout(), None);
    }
}

fn retryable_keeps_session(resp: RefreshResponse<'_>, expect_status: Option<u16>) {
    let mut s = logged_in(T0, 300);
    s.handle_timeout(T0 + 240_000);
    let id = starts(&drain(&mut s))[0];
    s.handle_refresh_response(T0 + 240_100, id, resp, 0.0);
    let a = drain(&mut s);
    let retry_at = T0 + 240_100 + BACKOFF_BASE_MS;
    assert_eq!(
        events(&a),
        vec![Event::RefreshFailed {
            status: expect_status,
            retryable: true,
            retry_at: Some(retry_at),
            had_token: true
        }]
    );
    assert!(s.has_token(), "a still-valid token is kept");
    assert!(sent_token(&s.prepare_request(T0 + 240_200, false)).is_some());
    assert_eq!(s.poll_timeout(), Some(retry_at));
    // No refresh before the backoff ends, one right after.
    s.handle_timeout(retry_at - 1);
    assert!(starts(&drain(&mut s)).is_empty());
    s.handle_timeout(retry_at);
    assert_eq!(starts(&drain(&mut s)).len(), 1);
}

#[test]
fn c24_5xx_retryable_session_kept() {
    for code in [500, 502, 503, 504] {
        retryable_keeps_session(status(code), Some(code));
    }
}

#[test]
fn c26_network_error_retryable() {
    retryable_keeps_session(RefreshResponse::NetworkError, None);
}

#[test]
fn c19_malformed_answer_retryable_then_terminal() {
    let html = RefreshResponse::Http {
        status: 200,
        content_type: Some("text/html"),
        retry_after: None,
        body: b"<html>",
        body_too_large: false,
    };
    retryable_keeps_session(html, Some(200));
    let mut s = logged_in(T0, 300);
    for (i, expect_terminal) in [(0u64, false), (1, true)] {
        let id = s.request_refresh(T0 + i * 100_000);
        drain(&mut s);
        s.handle_refresh_response(T0 + i * 100_000 + 1, id, html, 0.5);
        assert_eq!(s.is_ended(), expect_terminal);
        drain(&mut s);
    }
}

#[test]
fn c23_oversized_answer_is_malformed() {
    let big = RefreshResponse::Http {
        status: 200,
        content_type: JSON,
        retry_after: None,
        body: b"",
        body_too_large: true,
    };
    retryable_keeps_session(big, Some(200));
}

#[test]
fn c27_refresh_timeout_is_retryable_and_aborts() {
    let mut s = logged_in(T0, 300);
    s.handle_timeout(T0 + 240_000);
    let id = starts(&drain(&mut s))[0];
    assert_eq!(s.poll_timeout(), Some(T0 + 250_000));
    s.handle_timeout(T0 + 250_000);
    let a = drain(&mut s);
    assert!(a.contains(&Action::AbortRefresh { id }));
    assert!(a.contains(&Action::RefreshSettled { id }));
    assert!(matches!(
        events(&a).as_slice(),
        [Event::RefreshFailed {
            status: None,
            retryable: true,
            ..
        }]
    ));
    // A late answer is dropped.
    s.handle_refresh_response(T0 + 250_001, id, ok(&body(&token(T0, 300))), 0.5);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn c25_429_retry_after_honoured_and_capped() {
    for (ra, expect) in [
        ("30", 30_000u64),
        ("1e9", 500),
        ("garbage", 500),
        ("99999999999999999999999", 300_000),
    ] {
        let mut s = logged_in(T0, 300);
        let id = s.request_refresh(T0);
        drain(&mut s);
        let r = RefreshResponse::Http {
            status: 429,
            content_type: None,
            retry_after: Some(ra),
            body: b"",
            body_too_large: false,
        };
        s.handle_refresh_response(T0, id, r, 0.0);
        assert_eq!(s.poll_timeout(), Some(T0 + expect), "Retry-After {ra}");
    }
    // HTTP-date form.
    let date = "Tue, 14 Nov 2023 22:14:20 GMT"; // = 1_700_000_060 s
    assert_eq!(parse_retry_after(date, T0), Some(60_000));
}

#[test]
fn backoff_full_jitter_doubles_to_cap() {
    assert_eq!(backoff_delay(0, 0.999_999, None), 499.max(BACKOFF_BASE_MS));
    assert_eq!(backoff_delay(1, 0.999_999, None), 999);
    assert_eq!(backoff_delay(3, 0.999_999, None), 3_999);
    assert_eq!(backoff_delay(10, 0.999_999, None), 29_999);
    assert_eq!(backoff_delay(u32::MAX, 1.0, None), BACKOFF_CAP_MS);
    assert_eq!(backoff_delay(5, 0.0, None), BACKOFF_BASE_MS);
    assert_eq!(backoff_delay(5, f64::NAN, None), 8_000);
    assert_eq!(backoff_delay(0, 0.3, Some(120_000)), 120_000);
    // Repeated failures: the delays grow.
    let mut s = logged_in(T0, 300);
    let mut now = T0 + 240_000;
    let mut delays = vec![];
    for _ in 0..8 {
        s.handle_timeout(now);
        let id = starts(&drain(&mut s))[0];
        s.handle_refresh_response(now, id, status(503), 0.999);
        drain(&mut s);
        let next = s.poll_timeout().unwrap();
        delays.push(next - now);
        now = next;
    }
    assert_eq!(
        delays,
        vec![500, 999, 1998, 3996, 7992, 15984, 29970, 29970]
    );
}

#[test]
fn requests_during_backoff_do_not_refresh() {
    let mut s = session();
    let id = wait_id(s.prepare_request(T0, false));
    drain(&mut s);
    s.handle_refresh_response(T0, id, RefreshResponse::NetworkError, 0.0);
    drain(&mut s);
    let p = s.prepare_request(T0 + 100, false);
    assert_eq!(sent_token(&p), None);
    let Prepare::Send { generation, .. } = p else {
        panic!()
    };
    assert_eq!(
        s.handle_unauthorized(T0 + 100, generation),
        Unauthorized::GiveUp
    );
    assert!(starts(&drain(&mut s)).is_empty());
    // After the backoff the next request tries again.
    let _ = wait_id(s.prepare_request(T0 + 600, false));
}

#[test]
fn no_doomed_requests_expired_token_refreshed_first() {
    let mut s = logged_in(T0, 300);
    s.set_visible(T0, false);
    assert_eq!(
        s.poll_timeout(),
        None,
        "hidden tabs run no proactive refresh"
    );
    // Hours later: the first request waits for a refresh instead of sending the expired token.
    let id = wait_id(s.prepare_request(T0 + 3 * 3_600_000, false));
    assert_eq!(starts(&drain(&mut s)), vec![id]);
}

#[test]
fn becoming_visible_rechecks_the_clock() {
    let mut s = logged_in(T0, 300);
    s.set_visible(T0 + 1, false);
    s.handle_timeout(T0 + 250_000);
    assert!(starts(&drain(&mut s)).is_empty());
    s.set_visible(T0 + 250_000, true);
    assert_eq!(starts(&drain(&mut s)).len(), 1);
}

#[test]
fn c45_restored_from_bfcache_revalidates() {
    let mut s = logged_in(T0, 300);
    s.handle_wake(T0 + 10_000, false);
    assert!(starts(&drain(&mut s)).is_empty());
    s.handle_wake(T0 + 10_000, true);
    let id = starts(&drain(&mut s))[0];
    s.handle_refresh_response(T0 + 10_010, id, status(401), 0.5);
    assert!(!s.has_token());
}

#[test]
fn clear_token_stops_refreshing() {
    let mut s = logged_in(T0, 300);
    s.clear_token(T0 + 1);
    assert_eq!(
        events(&drain(&mut s)),
        vec![Event::TokenChange {
            expires_at: None,
            source: TokenSource::Set
        }]
    );
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(sent_token(&s.prepare_request(T0 + 2, false)), None);
    assert!(starts(&drain(&mut s)).is_empty());
}

#[test]
fn refresh_joins_flight_and_overrides_backoff() {
    let mut s = logged_in(T0, 300);
    let a = s.request_refresh(T0);
    let b = s.request_refresh(T0 + 1);
    assert_eq!(a, b);
    assert_eq!(starts(&drain(&mut s)).len(), 1);
    s.handle_refresh_response(T0 + 2, a, status(503), 0.5);
    drain(&mut s);
    let c = s.request_refresh(T0 + 3);
    assert_ne!(a, c);
    assert_eq!(starts(&drain(&mut s)), vec![c]);
}

#[test]
fn epoch_is_monotonic_and_follows_wall_time() {
    let mut s = session();
    s.set_token(T0, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    let e1 = s.epoch();
    assert!(e1 >= T0);
    s.logout(T0 - 5000, LogoutReason::User); // clock went backwards
    assert!(s.epoch() > e1);
}

#[test]
fn c33_refresh_then_401_circuit_breaker() {
    // The API answers 401 whatever the token (wrong tenant): each call costs one refresh and its retry
    // fails too. After more than 3 such strikes within 60 s, 401s no longer trigger refreshes for 60 s.
    let mut s = logged_in(T0, 300);
    let mut now = T0 + 1000;
    let mut refreshes = 0;
    for _ in 0..10 {
        let Prepare::Send { generation, .. } = s.prepare_request(now, false) else {
            panic!()
        };
        match s.handle_unauthorized(now, generation) {
            Unauthorized::Wait(id) => {
                refreshes += 1;
                drain(&mut s);
                s.handle_refresh_response(now + 10, id, ok(&body(&token(now, 300))), 0.5);
                drain(&mut s);
                let (_, g) = s.token_since(generation).unwrap();
                // The retry is answered 401 as well.
                s.handle_retry_unauthorized(now + 20, g);
                s.handle_retry_unauthorized(now + 20, g); // one strike per generation
            }
            Unauthorized::GiveUp => {}
            u => panic!("{u:?}"),
        }
        now += 1000;
    }
    assert_eq!(refreshes, 4, "suspended after the fourth strike");
    // Proactive renewal goes on while suspended.
    s.handle_timeout(now + 240_000);
    assert_eq!(starts(&drain(&mut s)).len(), 1);
    // After 60 s a 401 may refresh again; a login resets the breaker at once.
    let mut s2 = logged_in(T0, 300);
    for i in 0..4u64 {
        let Prepare::Send { generation, .. } = s2.prepare_request(T0 + i, false) else {
            panic!()
        };
        let Unauthorized::Wait(id) = s2.handle_unauthorized(T0 + i, generation) else {
            panic!()
        };
        s2.handle_refresh_response(T0 + i, id, ok(&body(&token(T0, 300))), 0.5);
        let (_, g) = s2.token_since(generation).unwrap();
        s2.handle_retry_unauthorized(T0 + i, g);
    }
    let (_, g) = s2.current_token();
    assert_eq!(s2.handle_unauthorized(T0 + 10, g), Unauthorized::GiveUp);
    assert!(matches!(
        s2.handle_unauthorized(T0 + 10 + BREAKER_SUSPEND_MS, g),
        Unauthorized::Wait(_)
    ));
    let mut s3 = logged_in(T0, 300);
    for i in 0..4u64 {
        let (_, g0) = s3.current_token();
        let Unauthorized::Wait(id) = s3.handle_unauthorized(T0 + i, g0) else {
            panic!()
        };
        s3.handle_refresh_response(T0 + i, id, ok(&body(&token(T0, 300))), 0.5);
        s3.handle_retry_unauthorized(T0 + i, s3.generation());
    }
    s3.set_token(T0 + 20, &token(T0 + 20, 300), None, TokenSource::Login)
        .unwrap();
    let (_, g) = s3.current_token();
    assert!(matches!(
        s3.handle_unauthorized(T0 + 21, g),
        Unauthorized::Wait(_)
    ));
}

#[test]
fn f1_revocations_are_not_strikes() {
    // A revoked token (401 once, then the retry with the refreshed token succeeds) never trips the breaker.
    let mut s = logged_in(T0, 300);
    for i in 0..20u64 {
        let (_, g) = s.current_token();
        let Unauthorized::Wait(id) = s.handle_unauthorized(T0 + i * 100, g) else {
            panic!("call {i}")
        };
        s.handle_refresh_response(T0 + i * 100 + 1, id, ok(&body(&token(T0, 300))), 0.5);
        drain(&mut s);
    }
}

#[test]
fn c26_back_online_ends_the_network_backoff() {
    let mut s = logged_in(T0, 300);
    s.handle_timeout(T0 + 240_000);
    let id = starts(&drain(&mut s))[0];
    s.handle_refresh_response(T0 + 240_000, id, RefreshResponse::NetworkError, 0.99);
    drain(&mut s);
    assert!(s.poll_timeout().unwrap() > T0 + 240_400);
    s.handle_online(T0 + 240_100);
    assert_eq!(
        starts(&drain(&mut s)).len(),
        1,
        "the due refresh runs at once when the network is back"
    );
}

#[test]
fn c57_keepalive_token_only_when_not_expired() {
    let mut s = logged_in(T0, 300);
    assert!(s.token_without_waiting(T0 + 1000).is_some());
    assert!(s.token_without_waiting(T0 + 300_000).is_none());
    assert!(drain(&mut s).is_empty(), "nothing is started");
    assert_eq!(s.refresh_in_flight(), None);
    assert!(session().token_without_waiting(T0).is_none());
}

#[test]
fn c61_refresh_status_classes_misconfigured_endpoint_is_terminal() {
    // A refreshUrl answering 404 (or 405, 410, 501, another 4xx) is misconfigured: retrying cannot mend it, so
    // the session ends at once instead of being retried forever.
    for code in [400, 401, 403, 404, 405, 409, 410, 415, 422, 501] {
        let mut s = logged_in(T0, 300);
        let id = s.request_refresh(T0 + 1);
        drain(&mut s);
        s.handle_refresh_response(T0 + 2, id, status(code), 0.5);
        let ev = events(&drain(&mut s));
        assert!(
            ev.contains(&Event::RefreshFailed {
                status: Some(code),
                retryable: false,
                retry_at: None,
                had_token: true
            }),
            "{code}"
        );
        assert!(ev.contains(&Event::SessionExpired), "{code}");
        assert!(s.is_ended(), "{code}");
        assert_eq!(s.poll_timeout(), None, "{code}: no further attempt");
    }
    // The temporary ones are retried with backoff.
    for code in [408, 425, 429, 500, 502, 503, 504, 599] {
        let mut s = logged_in(T0, 300);
        let id = s.request_refresh(T0 + 1);
        drain(&mut s);
        s.handle_refresh_response(T0 + 2, id, status(code), 0.5);
        let ev = events(&drain(&mut s));
        assert!(
            matches!(
                ev.as_slice(),
                [Event::RefreshFailed {
                    retryable: true,
                    ..
                }]
            ),
            "{code}: {ev:?}"
        );
        assert!(s.has_token() && !s.is_ended(), "{code}");
    }
    for code in [200u16, 408, 429, 500, 503] {
        assert_eq!(
            wasm_token_manager::session::refresh_status_retryable(code),
            code != 200
        );
    }
}

#[test]
fn c61_refresh_redirect_is_terminal() {
    let mut s = logged_in(T0, 300);
    let id = s.request_refresh(T0 + 1);
    drain(&mut s);
    s.handle_refresh_response(T0 + 2, id, RefreshResponse::Redirected, 0.5);
    let ev = events(&drain(&mut s));
    assert!(ev.contains(&Event::RefreshFailed {
        status: None,
        retryable: false,
        retry_at: None,
        had_token: true
    }));
    assert!(s.is_ended());
}

#[test]
fn c61_cold_start_failure_says_no_token_was_held() {
    // A visitor who never signed in: the restore attempt fails with 401, and the event says no token was held,
    // so the app does not show "session expired" to someone who never had a session.
    let mut s = Session::new(SessionConfig::default());
    let id = s.request_refresh(T0);
    drain(&mut s);
    s.handle_refresh_response(T0 + 1, id, status(401), 0.5);
    let ev = events(&drain(&mut s));
    assert_eq!(
        ev,
        vec![Event::RefreshFailed {
            status: Some(401),
            retryable: false,
            retry_at: None,
            had_token: false
        }]
    );
}

#[test]
fn c61_expired_token_that_cannot_be_renewed_is_not_authenticated() {
    let mut s = logged_in(T0, 300);
    assert!(s.is_authenticated(T0 + 1));
    // The refresh endpoint is down past expiry: the token is still held (for the 401 path) but no longer counts.
    s.handle_timeout(T0 + 240_000);
    let id = starts(&drain(&mut s))[0];
    s.handle_refresh_response(T0 + 240_100, id, status(503), 0.5);
    drain(&mut s);
    assert!(s.is_authenticated(T0 + 299_999));
    assert!(s.has_token() && !s.is_authenticated(T0 + 300_000));
}

#[test]
fn c60_login_aborts_the_previous_sessions_refresh_call() {
    let mut s = logged_in(T0, 300);
    let id = s.request_refresh(T0 + 1);
    drain(&mut s);
    // The app signs in as someone else while the refresh call is on the wire.
    s.set_token(T0 + 2, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    let a = drain(&mut s);
    assert!(
        a.contains(&Action::AbortRefresh { id }),
        "the old call is aborted, so its Set-Cookie is never stored: {a:?}"
    );
    assert!(a.contains(&Action::RefreshSettled { id }));
    // Its answer, if it still arrives, changes nothing.
    let before = s.expires_at();
    s.handle_refresh_response(T0 + 3, id, status(200), 0.5);
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.expires_at(), before);
}

#[test]
fn c60_failed_login_leaves_the_refresh_in_flight_alone() {
    let mut s = logged_in(T0, 300);
    let id = s.request_refresh(T0 + 1);
    drain(&mut s);
    assert!(s
        .set_token(T0 + 2, "not a token", None, TokenSource::Login)
        .is_err());
    assert!(!drain(&mut s).contains(&Action::AbortRefresh { id }));
}

/// An opaque access token as RFC 6749 servers issue them: 43 base64url characters.
fn opaque(seed: u8) -> String {
    b64(&[seed; 32], true)
}

fn oauth_body(t: &str, expires_in: u32) -> Vec<u8> {
    format!(r#"{{"access_token":"{t}","token_type":"Bearer","expires_in":{expires_in}}}"#)
        .into_bytes()
}

#[test]
fn c58_opaque_login_stored_and_renewed_ahead_of_expires_in() {
    let mut s = session();
    let t = opaque(1);
    s.set_token_body(T0, &oauth_body(&t, 4), JSON, TokenSource::Login)
        .unwrap();
    let a = drain(&mut s);
    assert_eq!(
        events(&a),
        vec![Event::TokenChange {
            expires_at: Some(T0 + 4000),
            source: TokenSource::Login
        }]
    );
    assert_eq!(s.expires_at(), Some(T0 + 4000));
    assert_eq!(
        sent_token(&s.prepare_request(T0 + 10, false)).as_deref(),
        Some(t.as_str())
    );
    // Renewal is scheduled ahead of expiry (half-way for so short a lifetime), as for a JWT.
    assert_eq!(s.poll_timeout(), Some(T0 + 2000));
    s.handle_timeout(T0 + 2000);
    assert_eq!(starts(&drain(&mut s)).len(), 1);
}

#[test]
fn c58_jwt_session_meets_opaque_refresh_answers_stays_alive() {
    let mut s = logged_in(T0, 300);
    let mut now = T0;
    for i in 0..5u8 {
        let id = s.request_refresh(now);
        drain(&mut s);
        let t = opaque(i);
        let b = oauth_body(&t, 4);
        s.handle_refresh_response(now + 10, id, ok(&b), 0.5);
        let a = drain(&mut s);
        let ev = events(&a);
        assert_eq!(
            ev,
            vec![Event::TokenChange {
                expires_at: Some(now + 4010),
                source: TokenSource::Refresh
            }],
            "refresh {i}"
        );
        assert!(
            s.has_token() && !s.is_ended(),
            "refresh {i} ended the session"
        );
        assert_eq!(s.current_token().0.unwrap().expose(), t);
        now += 2010;
    }
}

#[test]
fn c58_set_token_accepts_opaque_and_relies_on_401() {
    let mut s = session();
    let t = opaque(9);
    s.set_token(T0, &t, None, TokenSource::Set).unwrap();
    assert_eq!(
        events(&drain(&mut s)),
        vec![Event::TokenChange {
            expires_at: None,
            source: TokenSource::Set
        }]
    );
    assert!(s.has_token());
    // No lifetime known: no timer; a 401 refreshes.
    assert_eq!(s.poll_timeout(), None);
    let p = s.prepare_request(T0 + 3_600_000, false);
    let generation = match p {
        Prepare::Send { token, generation } => {
            assert_eq!(token.unwrap().expose(), t);
            generation
        }
        Prepare::Wait(_) => panic!("waited for a refresh without a known expiry"),
    };
    wait_id(match s.handle_unauthorized(T0 + 3_600_010, generation) {
        Unauthorized::Wait(id) => Prepare::Wait(id),
        other => panic!("expected a refresh, got {other:?}"),
    });
    assert_eq!(starts(&drain(&mut s)).len(), 1);
}

#[test]
fn c62_reference_server_answer_schedules_renewal() {
    // {"accessToken", "expiresIn", "tokenType"} as server/src/routes/auth.rs answers, with an opaque token
    // so that expiresIn is the only lifetime.
    let mut s = session();
    let t = opaque(5);
    let b = format!(r#"{{"accessToken":"{t}","expiresIn":900,"tokenType":"Bearer"}}"#).into_bytes();
    s.set_token_body(T0, &b, JSON, TokenSource::Login).unwrap();
    assert_eq!(
        events(&drain(&mut s)),
        vec![Event::TokenChange {
            expires_at: Some(T0 + 900_000),
            source: TokenSource::Login
        }]
    );
    assert_eq!(s.poll_timeout(), Some(T0 + 840_000));
    // The same shape from a refresh.
    let id = s.request_refresh(T0 + 840_000);
    drain(&mut s);
    s.handle_refresh_response(T0 + 840_010, id, ok(&b), 0.5);
    drain(&mut s);
    assert_eq!(s.expires_at(), Some(T0 + 1_740_010));
}

#[test]
fn c58_dpop_refresh_answer_not_stored_then_terminal() {
    // A token that is not a bearer token is never sent as one: the answer counts as malformed (C19).
    let mut s = logged_in(T0, 300);
    let held = s.current_token().0.unwrap();
    let b = format!(
        r#"{{"access_token":"{}","token_type":"DPoP","expires_in":300}}"#,
        opaque(7)
    )
    .into_bytes();
    for (i, expect_terminal) in [(0u64, false), (1, true)] {
        let id = s.request_refresh(T0 + i * 100_000);
        drain(&mut s);
        s.handle_refresh_response(T0 + i * 100_000 + 1, id, ok(&b), 0.5);
        let ev = events(&drain(&mut s));
        assert!(
            ev.iter().all(|e| !matches!(e, Event::TokenChange { .. })),
            "the DPoP token was stored: {ev:?}"
        );
        assert_eq!(s.is_ended(), expect_terminal);
        if !expect_terminal {
            assert_eq!(s.current_token().0, Some(held.clone()));
        }
    }
    assert!(!s.has_token());
}
