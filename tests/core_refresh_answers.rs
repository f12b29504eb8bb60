//! Refresh answers the catalogue names beyond tests/core_session.rs (C31, C32): a redirect is terminal with
//! exactly one refresh call, and a 200 whose body cannot be read (while the browser already stored the rotated
//! cookie) is retried promptly once and the session carries on. Native, with a fake clock.
#![cfg(not(target_arch = "wasm32"))]

use wasm_token_manager::session::*;

mod common;
use common::{b64, drain, events};

const T0: u64 = 1_700_000_000_000;
const JSON: Option<&str> = Some("application/json");

fn token(now_ms: u64, life_s: u64) -> String {
    let iat = now_ms / 1000;
    let payload = format!(r#"{{"iat":{iat},"exp":{}}}"#, iat + life_s);
    format!(
        "{}.{}.c2ln",
        b64(br#"{"alg":"ES256"}"#.as_ref(), true),
        b64(payload.as_bytes(), true)
    )
}

fn starts(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::StartRefresh { .. }))
        .count()
}

fn logged_in(now: u64, life_s: u64) -> Session {
    let mut s = Session::new(SessionConfig::default());
    s.set_token(now, &token(now, life_s), None, TokenSource::Login)
        .expect("token");
    drain(&mut s);
    s
}

#[test]
fn c31_refresh_redirect_ends_the_session_after_exactly_one_call() {
    let mut s = logged_in(T0, 300);
    let now = T0 + 300_000;
    let Prepare::Wait(id) = s.prepare_request(now, false) else {
        panic!("an expired token waits for a refresh")
    };
    let a = drain(&mut s);
    assert_eq!(starts(&a), 1);
    // The call used redirect: 'manual', so a 302 to the login page or a 307 to another origin arrives as an
    // opaque redirect: it is never followed (no request reaches the other origin) and ends the session.
    s.handle_refresh_response(now + 5, id, RefreshResponse::Redirected, 0.5);
    let a = drain(&mut s);
    let ev = events(&a);
    assert!(
        ev.contains(&Event::RefreshFailed {
            status: None,
            retryable: false,
            retry_at: None,
            had_token: true
        }),
        "{ev:?}"
    );
    assert_eq!(
        ev.iter().filter(|e| **e == Event::SessionExpired).count(),
        1
    );
    assert!(a.contains(&Action::RefreshSettled { id }));
    assert!(s.is_ended() && !s.has_token());
    // No loop: later calls, 401s and timers start no further refresh (count stays 1).
    let mut more = 0;
    for i in 0..100 {
        let t = now + 10 + i * 30_000;
        if let Prepare::Send { generation, token } = s.prepare_request(t, false) {
            assert!(token.is_none());
            assert_eq!(s.handle_unauthorized(t, generation), Unauthorized::GiveUp);
        }
        s.handle_timeout(t);
        more += starts(&drain(&mut s));
    }
    assert_eq!(more, 0);
}

#[test]
fn c32_unreadable_200_is_retried_promptly_and_the_next_answer_keeps_the_session() {
    let mut s = logged_in(T0, 300);
    let now = T0 + 300_000;
    let Prepare::Wait(id) = s.prepare_request(now, false) else {
        panic!("an expired token waits for a refresh")
    };
    drain(&mut s);
    // The server rotated (the browser stored the new cookie) but the body was cut short.
    let cut = RefreshResponse::Http {
        status: 200,
        content_type: JSON,
        retry_after: None,
        body: br#"{"accessTok"#,
        body_too_large: false,
    };
    s.handle_refresh_response(now + 5, id, cut, 0.5);
    let a = drain(&mut s);
    let ev = events(&a);
    assert!(!ev.contains(&Event::SessionExpired), "{ev:?}");
    assert!(!s.is_ended());
    let Some(retry_at) = ev.iter().find_map(|e| match e {
        Event::RefreshFailed {
            status: Some(200),
            retryable: true,
            retry_at,
            ..
        } => *retry_at,
        _ => None,
    }) else {
        panic!("a retryable failure with a retry time: {ev:?}")
    };
    assert!(
        retry_at - (now + 5) <= BACKOFF_BASE_MS,
        "retried promptly: {} ms",
        retry_at - (now + 5)
    );
    // The re-attempt (with the cookie the browser now holds) succeeds: the session carries on.
    s.handle_timeout(retry_at);
    let a = drain(&mut s);
    assert_eq!(starts(&a), 1);
    let id2 = s.refresh_in_flight().expect("the re-attempt");
    let fresh = format!(r#"{{"accessToken":"{}"}}"#, token(retry_at, 300));
    let good = RefreshResponse::Http {
        status: 200,
        content_type: JSON,
        retry_after: None,
        body: fresh.as_bytes(),
        body_too_large: false,
    };
    s.handle_refresh_response(retry_at + 5, id2, good, 0.5);
    let ev = events(&drain(&mut s));
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::TokenChange {
                source: TokenSource::Refresh,
                ..
            }
        )),
        "{ev:?}"
    );
    assert!(s.is_authenticated(retry_at + 10) && !s.is_ended());
}
