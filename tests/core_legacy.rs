//! Native scenario tests of the legacy-token migration in the core (issue 10), with a fake clock: a held legacy
//! token is sent until the exchange; a deprecation signal or a 401 to a request that carried it starts the
//! exchange once, single-flight like a refresh; success drops the legacy token; failures end in one event and a
//! clear state, never a loop.
#![cfg(not(target_arch = "wasm32"))]

use wasm_token_manager::session::*;

mod common;
use common::{b64, drain, events, starts};

const T0: u64 = 1_700_000_000_000;
const JSON: Option<&str> = Some("application/json");
const LEGACY: &str = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VySWQiOiI0NzExIn0.c2ln";

fn token(now_ms: u64, life_s: u64) -> String {
    let iat = now_ms / 1000;
    let p = format!(r#"{{"iat":{iat},"exp":{}}}"#, iat + life_s);
    format!(
        "{}.{}.c2ln",
        b64(br#"{"alg":"ES256"}"#.as_ref(), true),
        b64(p.as_ref(), true)
    )
}

fn http(status: u16, body: &[u8]) -> RefreshResponse<'_> {
    RefreshResponse::Http {
        status,
        content_type: JSON,
        retry_after: None,
        body,
        body_too_large: false,
    }
}

fn holding() -> Session {
    let mut s = Session::new(SessionConfig::default());
    s.hold_legacy(LEGACY).unwrap();
    s
}

fn sent(p: &Prepare) -> (Option<String>, u64) {
    match p {
        Prepare::Send { token, generation } => {
            (token.as_ref().map(|t| t.expose().to_owned()), *generation)
        }
        Prepare::Wait(_) => panic!("expected Send"),
    }
}

#[test]
fn a_held_legacy_token_is_sent_without_any_refresh() {
    let mut s = holding();
    assert_eq!(s.legacy_status(), LegacyStatus::Held);
    for i in 0..3 {
        let p = s.prepare_request(T0 + i, false);
        assert_eq!(sent(&p).0.as_deref(), Some(LEGACY));
    }
    assert!(
        starts(&drain(&mut s)).is_empty(),
        "no cold-start refresh while a legacy token is held"
    );
    assert!(
        !s.has_token(),
        "the legacy token is not the session's token"
    );
}

#[test]
fn a_deprecation_signal_starts_one_exchange_and_success_drops_the_legacy_token() {
    let mut s = holding();
    let (_, g) = sent(&s.prepare_request(T0, false));
    assert!(s.handle_deprecation(T0, g));
    assert!(
        !s.handle_deprecation(T0 + 1, g),
        "a second signal joins, no second exchange"
    );
    let a = drain(&mut s);
    let ids = starts(&a);
    assert_eq!(ids.len(), 1);
    assert!(s.is_legacy_flight(ids[0]));
    assert_eq!(s.legacy_status(), LegacyStatus::Upgrading);
    assert_eq!(
        s.legacy_token().map(|t| t.expose()),
        Some(LEGACY),
        "the shell sends it to the upgrade URL"
    );
    // Requests meanwhile wait for the exchange, as for a refresh.
    assert!(matches!(s.prepare_request(T0 + 2, false), Prepare::Wait(id) if id == ids[0]));
    let t = token(T0, 600);
    let body = format!(r#"{{"accessToken":"{t}","expiresIn":600}}"#);
    s.handle_refresh_response(T0 + 5, ids[0], http(200, body.as_bytes()), 0.5);
    let a = drain(&mut s);
    assert!(events(&a).iter().any(|e| matches!(
        e,
        Event::TokenChange {
            expires_at: Some(_),
            source: TokenSource::Legacy
        }
    )));
    assert!(a.iter().any(|x| matches!(
        x,
        Action::Broadcast(Message::Token {
            source: TokenSource::Legacy,
            ..
        })
    )));
    assert!(a.contains(&Action::RefreshSettled { id: ids[0] }));
    assert_eq!(s.legacy_status(), LegacyStatus::Upgraded);
    assert!(s.legacy_token().is_none(), "dropped after the exchange");
    assert_eq!(
        sent(&s.prepare_request(T0 + 6, true)).0.as_deref(),
        Some(t.as_str())
    );
    // A Deprecation header on a new-token request is about something else.
    let (_, g2) = sent(&s.prepare_request(T0 + 7, false));
    assert!(!s.handle_deprecation(T0 + 7, g2));
    assert!(starts(&drain(&mut s)).is_empty());
}

#[test]
fn a_401_to_the_legacy_token_exchanges_then_the_request_is_retried_with_the_new_token() {
    let mut s = holding();
    let (_, g) = sent(&s.prepare_request(T0, false));
    let id = match s.handle_unauthorized(T0, g) {
        Unauthorized::Wait(id) => id,
        other => panic!("expected Wait, got {other:?}"),
    };
    assert!(s.is_legacy_flight(id));
    // A second request's 401 joins the same exchange.
    assert_eq!(s.handle_unauthorized(T0 + 1, g), Unauthorized::Wait(id));
    assert_eq!(starts(&drain(&mut s)), vec![id]);
    let t = token(T0, 600);
    s.handle_refresh_response(
        T0 + 2,
        id,
        http(200, format!(r#"{{"accessToken":"{t}"}}"#).as_bytes()),
        0.5,
    );
    drain(&mut s);
    assert_eq!(
        s.token_since(g).map(|(t, _)| t.expose().to_owned()),
        Some(t)
    );
}

#[test]
fn a_refused_exchange_fires_one_event_drops_the_token_and_never_loops() {
    for (body, reason) in [
        (
            &br#"{"error":"legacy_token_retired"}"#[..],
            LegacyFailure::Retired,
        ),
        (br#"{"error":"invalid_grant"}"#, LegacyFailure::Replayed),
        (br#"{"error":"invalid_token"}"#, LegacyFailure::Invalid),
        (b"<html>", LegacyFailure::Refused),
    ] {
        let mut s = holding();
        let (_, g) = sent(&s.prepare_request(T0, false));
        let Unauthorized::Wait(id) = s.handle_unauthorized(T0, g) else {
            panic!("wait")
        };
        drain(&mut s);
        s.handle_refresh_response(T0 + 1, id, http(401, body), 0.5);
        let a = drain(&mut s);
        assert_eq!(
            events(&a),
            vec![Event::LegacyUpgradeFailed {
                status: Some(401),
                reason,
                retryable: false
            }]
        );
        assert!(a.contains(&Action::RefreshSettled { id }));
        assert_eq!(s.legacy_status(), LegacyStatus::Failed);
        assert!(s.legacy_token().is_none());
        assert!(
            s.token_since(g).is_none(),
            "the original 401 goes to the caller"
        );
        // Later requests: no token, no refresh, no exchange; their 401s give up.
        for i in 0..5 {
            let (t, g) = sent(&s.prepare_request(T0 + 10 + i, false));
            assert!(t.is_none());
            assert_eq!(s.handle_unauthorized(T0 + 10 + i, g), Unauthorized::GiveUp);
        }
        assert!(starts(&drain(&mut s)).is_empty(), "{reason:?}: no loop");
        assert_eq!(s.legacy_failure(), Some((Some(401), reason)));
    }
}

#[test]
fn a_network_failure_keeps_the_token_but_never_retries_automatically() {
    let mut s = holding();
    let (_, g) = sent(&s.prepare_request(T0, false));
    assert!(s.handle_deprecation(T0, g));
    let id = starts(&drain(&mut s))[0];
    s.handle_refresh_response(T0 + 1, id, RefreshResponse::NetworkError, 0.5);
    let a = drain(&mut s);
    assert_eq!(
        events(&a),
        vec![Event::LegacyUpgradeFailed {
            status: None,
            reason: LegacyFailure::Unavailable,
            retryable: true
        }]
    );
    assert_eq!(
        s.legacy_status(),
        LegacyStatus::Held,
        "phases 0–1 still accept it"
    );
    let (t, g) = sent(&s.prepare_request(T0 + 2, false));
    assert_eq!(t.as_deref(), Some(LEGACY));
    assert!(!s.handle_deprecation(T0 + 2, g), "no automatic retry");
    assert_eq!(s.handle_unauthorized(T0 + 2, g), Unauthorized::GiveUp);
    assert!(starts(&drain(&mut s)).is_empty());
    // An explicit upgradeLegacyToken() may try again.
    let id2 = s.upgrade_legacy(T0 + 3, None).unwrap();
    assert_eq!(starts(&drain(&mut s)), vec![id2]);
    // A timeout is a retryable failure too.
    s.handle_timeout(T0 + 3 + DEFAULT_REFRESH_TIMEOUT_MS);
    let a = drain(&mut s);
    assert!(a.contains(&Action::AbortRefresh { id: id2 }));
    assert!(events(&a).iter().any(|e| matches!(
        e,
        Event::LegacyUpgradeFailed {
            retryable: true,
            ..
        }
    )));
}

#[test]
fn upgrade_legacy_is_single_flight_and_checks_the_token() {
    let mut s = Session::new(SessionConfig::default());
    assert_eq!(s.upgrade_legacy(T0, None), Err(LegacyError::NoToken));
    assert_eq!(
        s.upgrade_legacy(T0, Some("bad token\r\n")),
        Err(LegacyError::Token(TokenError::BadCharacters))
    );
    let a = s.upgrade_legacy(T0, Some(LEGACY)).unwrap();
    let b = s.upgrade_legacy(T0 + 1, Some(LEGACY)).unwrap();
    let c = s.upgrade_legacy(T0 + 1, None).unwrap();
    assert_eq!((a, a), (b, c));
    assert_eq!(starts(&drain(&mut s)), vec![a]);
}

#[test]
fn upgrading_while_a_refresh_runs_aborts_the_refresh() {
    let mut s = Session::new(SessionConfig::default());
    let r = s.request_refresh(T0);
    drain(&mut s);
    let u = s.upgrade_legacy(T0 + 1, Some(LEGACY)).unwrap();
    let a = drain(&mut s);
    assert!(a.contains(&Action::AbortRefresh { id: r }));
    assert_eq!(starts(&a), vec![u]);
    // The aborted refresh's late answer is dropped.
    s.handle_refresh_response(T0 + 2, r, http(200, b"{}"), 0.5);
    assert!(drain(&mut s).is_empty());
    assert!(s.is_legacy_flight(u));
}

#[test]
fn another_tabs_exchange_settles_this_tabs_and_drops_its_legacy_token() {
    let mut s = holding();
    let (_, g) = sent(&s.prepare_request(T0, false));
    assert!(s.handle_deprecation(T0, g));
    let id = starts(&drain(&mut s))[0];
    let t = token(T0, 600);
    let msg = Message::decode(&format!(
        r#"{{"v":1,"type":"token","epoch":{},"source":"legacy","token":"{t}"}}"#,
        T0 + 10
    ))
    .unwrap();
    assert!(s.handle_message(T0 + 1, msg));
    let a = drain(&mut s);
    assert!(
        a.contains(&Action::AbortRefresh { id }),
        "this tab's own exchange would be a replay"
    );
    assert!(a.contains(&Action::RefreshSettled { id }));
    assert_eq!(s.legacy_status(), LegacyStatus::Upgraded);
    assert_eq!(sent(&s.prepare_request(T0 + 2, true)).0, Some(t));
}

#[test]
fn login_and_logout_drop_a_held_legacy_token() {
    let mut s = holding();
    s.set_token(T0, &token(T0, 600), None, TokenSource::Login)
        .unwrap();
    assert_eq!(s.legacy_status(), LegacyStatus::None);
    let mut s = holding();
    s.logout(T0, LogoutReason::User);
    assert!(s.legacy_token().is_none());
    let (t, _) = sent(&s.prepare_request(T0 + 1, false));
    assert!(t.is_none());
}
