//! Native tests of the cross-tab messages and of how the session applies them (issue 5): versioned,
//! validated, stale epochs ignored, malformed messages dropped, logout wins.
#![cfg(not(target_arch = "wasm32"))]

use wasm_token_manager::session::*;

mod common;
use common::{b64, drain, events};

const T0: u64 = 1_700_000_000_000;

fn token(now_ms: u64, life_s: u64) -> String {
    let iat = now_ms / 1000;
    let p = format!(r#"{{"iat":{iat},"exp":{}}}"#, iat + life_s);
    format!(
        "{}.{}.c2ln",
        b64(br#"{"alg":"HS256"}"#.as_ref(), true),
        b64(p.as_ref(), true)
    )
}

fn broadcasts(a: &[Action]) -> Vec<Message> {
    a.iter()
        .filter_map(|x| match x {
            Action::Broadcast(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn token_msg(epoch: u64, t: &str, source: &str) -> String {
    format!(r#"{{"v":1,"type":"token","epoch":{epoch},"source":"{source}","token":"{t}"}}"#)
}

fn ok_body(t: &str) -> Vec<u8> {
    format!(r#"{{"accessToken":"{t}"}}"#).into_bytes()
}

fn ok(b: &[u8]) -> RefreshResponse<'_> {
    RefreshResponse::Http {
        status: 200,
        content_type: Some("application/json"),
        retry_after: None,
        body: b,
        body_too_large: false,
    }
}

#[test]
fn messages_round_trip() {
    let t = token(T0, 300);
    let (tok, claims) = AccessToken::parse_jwt(&t).unwrap();
    for m in [
        Message::Token {
            epoch: 42,
            source: TokenSource::Refresh,
            token: tok.clone(),
            claims,
        },
        Message::Token {
            epoch: T0,
            source: TokenSource::Login,
            token: tok,
            claims,
        },
        Message::Logout { epoch: 7 },
        Message::Ended { epoch: 0 },
        Message::Failed {
            epoch: 3,
            retry_at: T0 + 500,
        },
    ] {
        assert_eq!(
            Message::decode(&m.encode()),
            Some(m.clone()),
            "{}",
            m.encode()
        );
    }
    assert!(
        !format!(
            "{:?}",
            Message::decode(&token_msg(1, &t, "refresh")).unwrap()
        )
        .contains(&t),
        "Debug leaks the token"
    );
}

#[test]
fn malformed_messages_dropped() {
    let t = token(T0, 300);
    let cases = vec![
        String::new(),
        "null".into(),
        "[]".into(),
        "{}".into(),
        "not json".into(),
        r#"{"v":2,"type":"logout","epoch":1}"#.into(),
        r#"{"v":"1","type":"logout","epoch":1}"#.into(),
        r#"{"type":"logout","epoch":1}"#.into(),
        r#"{"v":1,"type":"logout"}"#.into(),
        r#"{"v":1,"type":"logout","epoch":-1}"#.into(),
        r#"{"v":1,"type":"logout","epoch":1.5}"#.into(),
        r#"{"v":1,"type":"logout","epoch":"1"}"#.into(),
        r#"{"v":1,"type":"logout","epoch":9007199254740993}"#.into(),
        r#"{"v":1,"type":"logout","epoch":1,"v":1}"#.into(),
        r#"{"v":1,"type":"logout","epoch":1,"token":"x"}"#.into(),
        r#"{"v":1,"type":"steal","epoch":1}"#.into(),
        r#"{"v":1,"type":"token","epoch":1,"source":"refresh"}"#.into(),
        token_msg(1, &t, "evil"),
        token_msg(1, "a b", "refresh"),
        token_msg(1, "", "refresh"),
        token_msg(1, "abc\\r\\nX-Evil: 1", "refresh"),
        token_msg(1, &"a".repeat(MAX_MESSAGE_LEN), "refresh"),
        format!(
            r#"{{"v":1,"type":"token","epoch":1,"source":"refresh","token":{}}}"#,
            5
        ),
        r#"{"v":1,"type":"failed","epoch":1}"#.into(),
        r#"{"v":1,"type":"failed","epoch":1,"retryAt":"soon"}"#.into(),
        r#"{"v":1,"type":"failed","epoch":1,"retryAt":-5}"#.into(),
        r#"{"v":1,"type":"failed","epoch":1,"retryAt":1,"token":"x"}"#.into(),
    ];
    for c in cases {
        assert_eq!(Message::decode(&c), None, "{c:?} accepted");
    }
    // Unknown extra fields are tolerated (forward compatible), the version is not.
    assert!(Message::decode(r#"{"v":1,"type":"logout","epoch":1,"tab":"x"}"#).is_some());
}

#[test]
fn remote_token_is_adopted_and_settles_a_waiting_refresh() {
    let mut s = Session::new(SessionConfig::default());
    s.set_token(T0, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    drain(&mut s);
    let id = s.request_refresh(T0 + 240_000);
    drain(&mut s);
    let fresh = token(T0 + 240_000, 300);
    let m = Message::decode(&token_msg(s.epoch(), &fresh, "refresh")).unwrap();
    assert!(s.handle_message(T0 + 240_050, m));
    let a = drain(&mut s);
    assert!(
        a.contains(&Action::RefreshSettled { id }),
        "waiters are woken"
    );
    assert!(
        !a.contains(&Action::AbortRefresh { id }),
        "our own call is not aborted (it may carry a rotated cookie)"
    );
    assert!(broadcasts(&a).is_empty(), "no echo");
    assert_eq!(
        events(&a),
        vec![Event::TokenChange {
            expires_at: Some(T0 + 540_050),
            source: TokenSource::Refresh
        }]
    );
    assert_eq!(s.refresh_in_flight(), None);
    assert_eq!(s.current_token().0.unwrap().expose(), fresh);
    // Our own late answer is dropped.
    let late = ok_body(&token(T0 + 240_000, 300));
    s.handle_refresh_response(T0 + 240_100, id, ok(&late), 0.5);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn new_tab_adopts_the_session() {
    let mut s = Session::new(SessionConfig::default());
    let t = token(T0, 300);
    assert!(s.handle_message(
        T0,
        Message::decode(&token_msg(T0 - 5000, &t, "login")).unwrap()
    ));
    assert!(s.has_token());
    assert_eq!(s.epoch(), T0 - 5000);
}

#[test]
fn stale_generation_messages_ignored() {
    let mut s = Session::new(SessionConfig::default());
    s.set_token(T0, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    let e = s.epoch();
    drain(&mut s);
    // A token from a refresh that started before our login: dropped (C43 across tabs).
    let old = Message::decode(&token_msg(e - 1, &token(T0, 300), "refresh")).unwrap();
    assert!(!s.handle_message(T0 + 1, old));
    // A logout older than our login: dropped.
    assert!(!s.handle_message(T0 + 1, Message::Logout { epoch: e - 1 }));
    assert!(!s.handle_message(T0 + 1, Message::Ended { epoch: e - 1 }));
    assert!(drain(&mut s).is_empty());
    assert!(s.has_token());
}

#[test]
fn f12_logout_wins_over_a_refresh_in_flight_elsewhere() {
    // Tab 1 and tab 3 share epoch e. Tab 3 starts a refresh; tab 1 logs out; tab 3's refresh result then
    // reaches tab 1, and tab 1's logout reaches tab 3 (both orders).
    let mut tab1 = Session::new(SessionConfig::default());
    let mut tab3 = Session::new(SessionConfig::default());
    tab1.set_token(T0, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    let login = broadcasts(&drain(&mut tab1)).remove(0);
    assert!(tab3.handle_message(T0 + 1, login));
    drain(&mut tab3);

    let id = tab3.request_refresh(T0 + 200_000);
    drain(&mut tab3);
    tab1.logout(T0 + 200_010, LogoutReason::User);
    let logout = broadcasts(&drain(&mut tab1)).remove(0);
    assert!(matches!(logout, Message::Logout { .. }));

    // Order A: tab 3's result arrives first and is broadcast; tab 1 ignores it; then tab 3 hears the logout.
    let mut tab3b = Session::new(SessionConfig::default());
    tab3b.handle_message(
        T0 + 1,
        Message::decode(&token_msg(tab3.epoch(), &token(T0, 300), "login")).unwrap(),
    );
    let body = ok_body(&token(T0 + 200_020, 300));
    tab3.handle_refresh_response(T0 + 200_020, id, ok(&body), 0.5);
    let result = broadcasts(&drain(&mut tab3)).remove(0);
    assert!(
        !tab1.handle_message(T0 + 200_030, result),
        "a refresh from before the logout revived tab 1"
    );
    assert!(!tab1.has_token());
    assert!(tab3.handle_message(T0 + 200_040, logout.clone()));
    let a = drain(&mut tab3);
    assert_eq!(
        events(&a),
        vec![Event::Logout {
            reason: LogoutReason::Remote
        }]
    );
    assert!(broadcasts(&a).is_empty());
    assert!(!tab3.has_token());
    assert_eq!(tab3.poll_timeout(), None, "timers stopped");

    // Order B: the logout arrives while the refresh is in flight: it is cancelled, its result dropped.
    let id = tab3b.request_refresh(T0 + 200_000);
    drain(&mut tab3b);
    assert!(tab3b.handle_message(T0 + 200_015, logout));
    let a = drain(&mut tab3b);
    assert!(a.contains(&Action::RefreshSettled { id }));
    tab3b.handle_refresh_response(T0 + 200_020, id, ok(&body), 0.5);
    assert!(drain(&mut tab3b).is_empty());
    assert!(!tab3b.has_token());
}

#[test]
fn login_elsewhere_after_logout_is_accepted() {
    let mut s = Session::new(SessionConfig::default());
    s.set_token(T0, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    s.logout(T0 + 1000, LogoutReason::User);
    drain(&mut s);
    let later = s.epoch() + 5000;
    assert!(s.handle_message(
        T0 + 6000,
        Message::decode(&token_msg(later, &token(T0 + 6000, 300), "login")).unwrap()
    ));
    assert!(s.has_token());
    assert!(!s.is_ended());
    // A logout from before that login is now stale.
    assert!(!s.handle_message(T0 + 7000, Message::Logout { epoch: later - 1 }));
}

#[test]
fn ended_elsewhere_expires_the_session_here() {
    let mut s = Session::new(SessionConfig::default());
    s.set_token(T0, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    drain(&mut s);
    assert!(s.handle_message(T0 + 10, Message::Ended { epoch: s.epoch() }));
    assert_eq!(events(&drain(&mut s)), vec![Event::SessionExpired]);
    assert!(!s.has_token() && s.is_ended());
}

#[test]
fn local_changes_are_broadcast() {
    let mut s = Session::new(SessionConfig::default());
    s.set_token(T0, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    assert!(matches!(
        broadcasts(&drain(&mut s)).as_slice(),
        [Message::Token {
            source: TokenSource::Login,
            ..
        }]
    ));
    let id = s.request_refresh(T0 + 1);
    drain(&mut s);
    let body = ok_body(&token(T0 + 2, 300));
    s.handle_refresh_response(T0 + 2, id, ok(&body), 0.5);
    assert!(matches!(
        broadcasts(&drain(&mut s)).as_slice(),
        [Message::Token {
            source: TokenSource::Refresh,
            ..
        }]
    ));
    let id = s.request_refresh(T0 + 3);
    drain(&mut s);
    s.handle_refresh_response(
        T0 + 4,
        id,
        RefreshResponse::Http {
            status: 401,
            content_type: None,
            retry_after: None,
            body: b"",
            body_too_large: false,
        },
        0.5,
    );
    assert!(matches!(
        broadcasts(&drain(&mut s)).as_slice(),
        [Message::Ended { .. }]
    ));
    s.set_token(T0 + 5, &token(T0 + 5, 300), None, TokenSource::Set)
        .unwrap();
    drain(&mut s);
    s.logout(T0 + 6, LogoutReason::User);
    assert!(matches!(
        broadcasts(&drain(&mut s)).as_slice(),
        [Message::Logout { .. }]
    ));
    // A second logout says nothing more.
    s.logout(T0 + 7, LogoutReason::User);
    assert!(drain(&mut s).is_empty());
}

#[test]
fn election_time_extends_the_deadline_until_the_call_starts() {
    let cfg = SessionConfig {
        election_ms: 11_000,
        ..SessionConfig::default()
    };
    let mut s = Session::new(cfg);
    let id = s.request_refresh(T0);
    assert_eq!(s.poll_timeout(), Some(T0 + 21_000));
    s.refresh_call_started(T0 + 3_000, id);
    assert_eq!(s.poll_timeout(), Some(T0 + 13_000));
}

#[test]
fn duplicate_token_message_is_a_no_op() {
    let mut s = Session::new(SessionConfig::default());
    let t = token(T0, 300);
    let m = Message::decode(&token_msg(0, &t, "refresh")).unwrap();
    assert!(s.handle_message(T0, m.clone()));
    drain(&mut s);
    assert!(!s.handle_message(T0 + 1, m));
    assert!(drain(&mut s).is_empty());
}

#[test]
fn f6_a_follower_adopts_the_leaders_failure_and_backs_off() {
    // The leader's retryable failure is broadcast with its retry time.
    let mut leader = Session::new(SessionConfig::default());
    leader
        .set_token(T0, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    drain(&mut leader);
    let id = leader.request_refresh(T0 + 1);
    leader.refresh_call_started(T0 + 1, id);
    drain(&mut leader);
    let r = RefreshResponse::Http {
        status: 503,
        content_type: None,
        retry_after: Some("20"),
        body: b"",
        body_too_large: false,
    };
    leader.handle_refresh_response(T0 + 2, id, r, 0.5);
    let failed = broadcasts(&drain(&mut leader)).remove(0);
    assert_eq!(
        failed,
        Message::Failed {
            epoch: leader.epoch(),
            retry_at: T0 + 20_002
        }
    );

    // A follower still waiting for the election adopts it: no call of its own, same backoff.
    let mut follower = Session::new(SessionConfig::default());
    follower.handle_message(
        T0,
        Message::decode(&token_msg(leader.epoch(), &token(T0, 300), "login")).unwrap(),
    );
    drain(&mut follower);
    let fid = follower.request_refresh(T0 + 1);
    drain(&mut follower);
    assert!(follower.handle_message(T0 + 3, failed.clone()));
    let a = drain(&mut follower);
    assert!(a.contains(&Action::RefreshSettled { id: fid }));
    assert_eq!(
        events(&a),
        vec![Event::RefreshFailed {
            status: None,
            retryable: true,
            retry_at: Some(T0 + 20_002),
            had_token: true
        }]
    );
    assert!(broadcasts(&a).is_empty());
    assert_eq!(follower.poll_timeout(), Some(T0 + 20_002));
    assert!(follower.has_token(), "the session is kept");

    // A tab whose own call is already running keeps its chance of a success.
    let mut caller = Session::new(SessionConfig::default());
    caller.handle_message(
        T0,
        Message::decode(&token_msg(leader.epoch(), &token(T0, 300), "login")).unwrap(),
    );
    let cid = caller.request_refresh(T0 + 1);
    caller.refresh_call_started(T0 + 1, cid);
    drain(&mut caller);
    assert!(!caller.handle_message(T0 + 3, failed.clone()));
    assert_eq!(caller.refresh_in_flight(), Some(cid));
    // An idle tab is not pushed into a backoff, and a hostile retryAt is clamped.
    let mut idle = Session::new(SessionConfig::default());
    assert!(!idle.handle_message(T0, failed));
    let fid = idle.request_refresh(T0);
    drain(&mut idle);
    assert!(idle.handle_message(
        T0,
        Message::Failed {
            epoch: 0,
            retry_at: MAX_EPOCH_FOR_TEST
        }
    ));
    assert!(idle.poll_timeout().unwrap() <= T0 + 330_000);
    let _ = fid;
}

const MAX_EPOCH_FOR_TEST: u64 = (1 << 53) - 1;

#[test]
fn f4_without_locks_a_peer_refresh_is_awaited() {
    let mut s = Session::new(SessionConfig::default());
    s.set_token(T0, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    drain(&mut s);
    assert!(!s.peer_refreshing(T0, 11_000));
    let m = Message::decode(&Message::Refreshing { epoch: s.epoch() }.encode()).unwrap();
    assert!(s.handle_message(T0 + 10, m));
    assert!(
        drain(&mut s).is_empty(),
        "an announcement changes nothing by itself"
    );
    assert!(s.peer_refreshing(T0 + 20, 11_000));
    assert!(!s.peer_refreshing(T0 + 11_010, 11_000), "bounded");
    // The peer's token ends the wait.
    assert!(s.handle_message(
        T0 + 30,
        Message::decode(&token_msg(s.epoch(), &token(T0 + 1000, 300), "refresh")).unwrap()
    ));
    assert!(!s.peer_refreshing(T0 + 40, 11_000));
    // A stale announcement is ignored.
    assert!(!s.handle_message(
        T0 + 50,
        Message::Refreshing {
            epoch: s.epoch() - 1
        }
    ));
    assert!(Message::decode(r#"{"v":1,"type":"refreshing","epoch":1,"token":"x"}"#).is_none());
}

/// Without Web Locks two tabs can call at once: `a`'s answer comes first and its token reaches `b`, whose
/// own call is then superseded, but `b`'s announcement reaches `a` only after `a` stored its token. `b` must
/// answer its announcement, or `a` would wait `lockTimeoutSeconds` for a token that never comes before
/// its next refresh.
#[test]
fn f4_a_superseded_announced_call_is_answered() {
    let t0 = token(T0, 300);
    let mut a = Session::new(SessionConfig::default());
    let mut b = Session::new(SessionConfig::default());
    for s in [&mut a, &mut b] {
        s.set_token(T0, &t0, None, TokenSource::Login).unwrap();
        drain(s);
    }
    let (ia, ib) = (a.request_refresh(T0 + 1), b.request_refresh(T0 + 1));
    drain(&mut a);
    drain(&mut b);
    a.refresh_call_started(T0 + 1, ia);
    b.refresh_call_started(T0 + 1, ib); // the shell posts `refreshing` first
    let t1 = token(T0 + 1000, 300);
    let body = ok_body(&t1);
    a.handle_refresh_response(T0 + 5, ia, ok(&body), 0.5);
    let from_a = broadcasts(&drain(&mut a));
    assert_eq!(from_a.len(), 1);
    // b's announcement arrives late at a, then a's token reaches b.
    assert!(a.handle_message(T0 + 6, Message::Refreshing { epoch: b.epoch() }));
    assert!(b.handle_message(T0 + 7, Message::decode(&from_a[0].encode()).unwrap()));
    let from_b = broadcasts(&drain(&mut b));
    assert_eq!(from_b.len(), 1, "b did not answer its announcement");
    assert!(a.peer_refreshing(T0 + 8, 11_000));
    drain(&mut a);
    assert!(
        !a.handle_message(T0 + 8, Message::decode(&from_b[0].encode()).unwrap()),
        "the same token changed a"
    );
    assert!(drain(&mut a).is_empty(), "the answer fired events in a");
    assert!(!a.peer_refreshing(T0 + 9, 11_000), "a still waits for b");
    // b's own answer, arriving after it adopted a's token, changes nothing.
    let late = ok_body(&token(T0 + 2000, 300));
    b.handle_refresh_response(T0 + 10, ib, ok(&late), 0.5);
    assert!(broadcasts(&drain(&mut b)).is_empty());
}

#[test]
fn c60_login_in_another_tab_aborts_this_tabs_refresh_call() {
    let mut leader = Session::new(SessionConfig::default());
    leader
        .set_token(T0, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    drain(&mut leader);
    let mut tab = Session::new(SessionConfig::default());
    tab.set_token(T0, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    drain(&mut tab);
    let id = tab.request_refresh(T0 + 1);
    drain(&mut tab);
    // Another tab signs in (a new session): this tab's call must not store the previous session's cookie.
    assert!(tab.handle_message(
        T0 + 2,
        Message::decode(&token_msg(leader.epoch() + 10, &token(T0, 600), "login")).unwrap()
    ));
    let a = drain(&mut tab);
    assert!(a.contains(&Action::AbortRefresh { id }), "{a:?}");
    assert!(a.contains(&Action::RefreshSettled { id }));
    // A token another tab got by refreshing the same session does not abort this tab's call.
    let id2 = tab.request_refresh(T0 + 3);
    drain(&mut tab);
    assert!(tab.handle_message(
        T0 + 4,
        Message::decode(&token_msg(tab.epoch() + 1, &token(T0, 900), "refresh")).unwrap()
    ));
    assert!(!drain(&mut tab).contains(&Action::AbortRefresh { id: id2 }));
}

#[test]
fn c58_opaque_token_reaches_other_tabs() {
    let t = b64(&[7u8; 32], true);
    let m =
        Message::decode(&token_msg(1, &t, "login")).expect("an opaque token message was dropped");
    match &m {
        Message::Token { token, claims, .. } => {
            assert_eq!(token.expose(), t);
            assert_eq!(*claims, UnverifiedClaims::default());
        }
        other => panic!("decoded as {other:?}"),
    }
    let mut s = Session::new(SessionConfig::default());
    assert!(s.handle_message(T0, m));
    assert_eq!(s.current_token().0.unwrap().expose(), t);
}

#[test]
fn every_message_carries_the_protocol_version_constant() {
    let t = token(T0, 300);
    let (tok, claims) = AccessToken::parse_jwt(&t).unwrap();
    let head = format!(r#"{{"v":{PROTOCOL_VERSION},"type":"#);
    for m in [
        Message::Token {
            epoch: 1,
            source: TokenSource::Legacy,
            token: tok,
            claims,
        },
        Message::Logout { epoch: 2 },
        Message::Ended { epoch: 3 },
        Message::Refreshing { epoch: 4 },
        Message::Failed {
            epoch: 5,
            retry_at: T0,
        },
    ] {
        let wire = m.encode();
        assert!(wire.starts_with(&head), "{wire}");
        assert_eq!(Message::decode(&wire), Some(m));
    }
}

#[test]
fn token_sources_are_named_once() {
    for s in TokenSource::ALL {
        assert_eq!(TokenSource::from_name(s.as_str()), Some(s));
    }
    assert_eq!(TokenSource::from_name("Login"), None);
    assert_eq!(TokenSource::from_name(""), None);
}

/// The election (issue 11 item 4): the states and inputs of [`Coordination::Locks`] and
/// [`Coordination::Announce`], driven with a fake clock.
fn elector(coordination: Coordination) -> Session {
    let mut s = Session::new(SessionConfig {
        election_ms: 11_000,
        coordination,
        ..SessionConfig::default()
    });
    s.set_token(T0, &token(T0, 300), None, TokenSource::Login)
        .unwrap();
    drain(&mut s);
    s
}

fn releases(a: &[Action]) -> Vec<(RefreshId, u64)> {
    a.iter()
        .filter_map(|x| match x {
            Action::ReleaseLock { id, delay_ms } => Some((*id, *delay_ms)),
            _ => None,
        })
        .collect()
}

#[test]
fn f3_election_the_tab_that_gets_the_lock_calls_and_holds_it_past_its_broadcast() {
    let mut s = elector(Coordination::Locks);
    let id = s.request_refresh(T0 + 1);
    assert_eq!(
        drain(&mut s),
        vec![Action::RequestLock { id, wait: false }],
        "no call before the election"
    );
    s.handle_lock(T0 + 2, id, LockOutcome::Granted);
    assert_eq!(drain(&mut s), vec![Action::StartRefresh { id }]);
    s.refresh_call_started(T0 + 3, id);
    let body = ok_body(&token(T0 + 3, 300));
    s.handle_refresh_response(T0 + 4, id, ok(&body), 0.5);
    let a = drain(&mut s);
    let told = a
        .iter()
        .position(|x| matches!(x, Action::Broadcast(Message::Token { .. })));
    let released = a
        .iter()
        .position(|x| matches!(x, Action::ReleaseLock { .. }));
    assert!(
        told.is_some() && released > told,
        "the lock goes after the broadcast: {a:?}"
    );
    assert_eq!(releases(&a), vec![(id, HOLD_LOCK_MS)]);
    assert!(drain(&mut s).is_empty(), "released once");
}

#[test]
fn f3_election_a_follower_waits_bounded_and_adopts_the_leaders_token() {
    let mut s = elector(Coordination::Locks);
    let id = s.request_refresh(T0 + 1);
    drain(&mut s);
    s.handle_lock(T0 + 2, id, LockOutcome::Unavailable);
    assert_eq!(drain(&mut s), vec![Action::RequestLock { id, wait: true }]);
    assert_eq!(
        s.poll_timeout(),
        Some(T0 + 11_002),
        "the wait is bounded by election_ms"
    );
    let m = Message::decode(&token_msg(s.epoch(), &token(T0 + 5_000, 300), "refresh")).unwrap();
    assert!(s.handle_message(T0 + 500, m));
    let a = drain(&mut s);
    assert!(
        a.contains(&Action::RefreshSettled { id }),
        "the settle also ends the lock wait: {a:?}"
    );
    assert!(common::starts(&a).is_empty(), "the follower called too");
    // The lock granted once the leader let it go is not kept.
    s.handle_lock(T0 + 600, id, LockOutcome::Granted);
    assert_eq!(drain(&mut s), vec![Action::ReleaseLock { id, delay_ms: 0 }]);
}

#[test]
fn f3_election_a_follower_granted_the_lock_double_checks_before_calling() {
    // A token queued before the grant: no call, the lock goes at once.
    let mut s = elector(Coordination::Locks);
    let id = s.request_refresh(T0 + 1);
    s.handle_lock(T0 + 2, id, LockOutcome::Unavailable);
    s.handle_lock(T0 + 3, id, LockOutcome::Granted);
    assert_eq!(
        drain(&mut s),
        vec![
            Action::RequestLock { id, wait: false },
            Action::RequestLock { id, wait: true },
            Action::YieldToMessages { id }
        ]
    );
    let m = Message::decode(&token_msg(s.epoch(), &token(T0 + 5_000, 300), "refresh")).unwrap();
    assert!(s.handle_message(T0 + 4, m));
    s.handle_yielded(T0 + 5, id);
    let a = drain(&mut s);
    assert!(
        common::starts(&a).is_empty(),
        "called despite the token: {a:?}"
    );
    assert_eq!(releases(&a), vec![(id, 0)]);
    // Nothing came: the follower calls while holding the lock, and holds it past its broadcast.
    let id = s.request_refresh(T0 + 10);
    s.handle_lock(T0 + 11, id, LockOutcome::Unavailable);
    s.handle_lock(T0 + 12, id, LockOutcome::Granted);
    drain(&mut s);
    s.handle_yielded(T0 + 13, id);
    assert_eq!(drain(&mut s), vec![Action::StartRefresh { id }]);
    s.refresh_call_started(T0 + 13, id);
    let body = ok_body(&token(T0 + 9_000, 300));
    s.handle_refresh_response(T0 + 14, id, ok(&body), 0.5);
    assert_eq!(releases(&drain(&mut s)), vec![(id, HOLD_LOCK_MS)]);
}

#[test]
fn f3_election_a_wait_that_times_out_calls_by_itself() {
    let mut s = elector(Coordination::Locks);
    let id = s.request_refresh(T0 + 1);
    s.handle_lock(T0 + 2, id, LockOutcome::Unavailable);
    drain(&mut s);
    s.handle_timeout(T0 + 11_001);
    assert!(
        drain(&mut s).is_empty(),
        "a timer that fires early changes nothing"
    );
    s.handle_timeout(T0 + 11_002);
    assert_eq!(
        drain(&mut s),
        vec![Action::CancelLockWait { id }, Action::StartRefresh { id }]
    );
    // The aborted request reports its failure late: dropped.
    s.handle_lock(T0 + 11_003, id, LockOutcome::Failed);
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.refresh_in_flight(), Some(id));
}

#[test]
fn election_without_a_usable_lock_api_calls_at_once() {
    let mut s = elector(Coordination::Locks);
    let id = s.request_refresh(T0 + 1);
    drain(&mut s);
    s.handle_lock(T0 + 2, id, LockOutcome::Failed);
    assert_eq!(drain(&mut s), vec![Action::StartRefresh { id }]);
    s.refresh_call_started(T0 + 2, id);
    let body = ok_body(&token(T0 + 2, 300));
    s.handle_refresh_response(T0 + 3, id, ok(&body), 0.5);
    assert!(
        releases(&drain(&mut s)).is_empty(),
        "released a lock it never held"
    );
}

#[test]
fn election_a_logout_during_the_lock_wait_releases_a_late_grant() {
    let mut s = elector(Coordination::Locks);
    let id = s.request_refresh(T0 + 1);
    s.handle_lock(T0 + 2, id, LockOutcome::Unavailable);
    drain(&mut s);
    s.logout(T0 + 3, LogoutReason::User);
    assert!(drain(&mut s).contains(&Action::RefreshSettled { id }));
    s.handle_lock(T0 + 4, id, LockOutcome::Granted);
    s.handle_yielded(T0 + 5, id);
    let a = drain(&mut s);
    assert_eq!(a, vec![Action::ReleaseLock { id, delay_ms: 0 }]);
}

#[test]
fn f4_election_without_locks_announces_its_call_or_waits_for_the_announced_one() {
    // Nobody announced: announce, then call.
    let mut s = elector(Coordination::Announce);
    let id = s.request_refresh(T0 + 1);
    assert_eq!(
        drain(&mut s),
        vec![
            Action::Broadcast(Message::Refreshing { epoch: s.epoch() }),
            Action::StartRefresh { id }
        ]
    );
    s.refresh_call_started(T0 + 1, id);
    let body = ok_body(&token(T0 + 2_000, 300));
    s.handle_refresh_response(T0 + 2, id, ok(&body), 0.5);
    drain(&mut s);
    // Another tab announced: wait for its token, bounded.
    assert!(s.handle_message(T0 + 100, Message::Refreshing { epoch: s.epoch() }));
    let id = s.request_refresh(T0 + 200);
    assert!(
        drain(&mut s).is_empty(),
        "called or announced while another tab's call runs"
    );
    assert_eq!(s.poll_timeout(), Some(T0 + 11_200));
    let m = Message::decode(&token_msg(s.epoch(), &token(T0 + 5_000, 300), "refresh")).unwrap();
    assert!(s.handle_message(T0 + 300, m));
    let a = drain(&mut s);
    assert!(
        a.contains(&Action::RefreshSettled { id }) && common::starts(&a).is_empty(),
        "{a:?}"
    );
    // The announced token never comes: after the bound, announce and call.
    assert!(s.handle_message(T0 + 400, Message::Refreshing { epoch: s.epoch() }));
    let id = s.request_refresh(T0 + 500);
    drain(&mut s);
    s.handle_timeout(T0 + 11_500);
    assert_eq!(
        drain(&mut s),
        vec![
            Action::Broadcast(Message::Refreshing { epoch: s.epoch() }),
            Action::StartRefresh { id }
        ]
    );
}

#[test]
fn election_alone_calls_at_once_and_tells_nobody() {
    let mut s = elector(Coordination::Alone);
    let id = s.request_refresh(T0 + 1);
    assert_eq!(drain(&mut s), vec![Action::StartRefresh { id }]);
}

/// A DPoP-bound token travels with `tokenType: "DPoP"`, so that the other tabs send it with a proof of the
/// shared key; a tab without the `dpop` option ignores it (it could not send it); a malformed type drops the
/// message.
#[test]
fn dpop_tokens_reach_other_tabs_marked() {
    let t = token(T0, 300);
    let (tok, claims) = AccessToken::parse(&t).unwrap();
    let m = Message::Token {
        epoch: 7,
        source: TokenSource::Refresh,
        token: tok.bound_to_dpop_key(),
        claims,
    };
    let wire = m.encode();
    assert!(wire.ends_with(r#","tokenType":"DPoP"}"#), "{wire}");
    let back = Message::decode(&wire).unwrap();
    assert_eq!(back, m);
    let Message::Token { token, .. } = &back else {
        panic!("{back:?}")
    };
    assert!(token.is_dpop());
    for bad in ["Bearer", "dpop", ""] {
        let raw = wire.replace(r#""tokenType":"DPoP""#, &format!(r#""tokenType":"{bad}""#));
        assert_eq!(Message::decode(&raw), None, "{raw}");
    }
    assert_eq!(
        Message::decode(&wire.replace(r#""tokenType":"DPoP""#, r#""tokenType":1"#)),
        None
    );

    let mut off = Session::new(SessionConfig::default());
    assert!(!off.handle_message(T0, back.clone()));
    assert!(off.current_token().0.is_none());
    let mut on = Session::new(SessionConfig {
        dpop: true,
        ..SessionConfig::default()
    });
    assert!(on.handle_message(T0, back));
    assert!(on.current_token().0.unwrap().is_dpop());
}
