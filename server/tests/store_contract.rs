//! The session-store contract, run against both stores: the in-memory default and Redis (a
//! `redis-server` started per test on a loopback port, tests/common/redis.rs). Each case is one
//! function over `&dyn SessionStore`; `both!` runs it on each store. Redis-only cases follow:
//! what is at rest (hashes, sealed grace value, expiring keys), instances racing, outages.

mod common;

use std::sync::Arc;
use std::time::Duration;

use auth_server::kek::Kek;
use auth_server::redis_store::{RedisConn, RedisStore};
use auth_server::store::{
    MemoryStore, NewSession, RefreshOutcome, RefreshPolicy, Rejection, Retention, SessionStore,
    StoreError,
};
use auth_server::tokens::RefreshToken;
use common::redis::{command, RedisServer};

const GRACE: u64 = 10;
const IDLE: u64 = 100;
const MAX: u64 = 1000;
/// A start instant (Unix seconds) far from the real clock, as the server tests use.
const T0: u64 = 1_900_000_000;

fn retention() -> Retention {
    Retention {
        access_lifetime: 40,
        grace: GRACE,
        max_sessions_per_user: 3,
        ..Retention::default()
    }
}

fn kek() -> Kek {
    Kek::from_bytes(&[42; 32])
}

async fn redis_store(r: &RedisServer) -> RedisStore {
    let conn = RedisConn::connect(&r.url(), Duration::from_millis(500), Duration::from_secs(5))
        .await
        .expect("connects");
    RedisStore::new(conn, kek(), retention())
}

fn ok(_: &str) -> Result<(), u64> {
    Ok(())
}

fn policy(t: u64) -> RefreshPolicy {
    RefreshPolicy {
        now: T0 + t,
        grace: GRACE,
        idle_ttl: IDLE,
        jkt: None,
    }
}

/// Session `sid` of user `u`, logged in at `T0 + t`; its first refresh token.
async fn login(s: &dyn SessionStore, sid: &str, t: u64) -> RefreshToken {
    let t0 = RefreshToken::generate();
    let info = s
        .create(NewSession {
            sid: sid.into(),
            sub: "u".into(),
            token: t0.clone(),
            now: T0 + t,
            idle_ttl: IDLE,
            session_max: MAX,
            jkt: None,
        })
        .await
        .expect("created");
    assert_eq!(info.expires_at, T0 + t + IDLE);
    assert_eq!(info.absolute_expires_at, T0 + t + MAX);
    t0
}

async fn present(s: &dyn SessionStore, t: &RefreshToken, at: u64) -> RefreshOutcome {
    s.refresh(&t.hash(), RefreshToken::generate(), policy(at), &ok)
        .await
        .expect("store answers")
}

/// Rotate `t` at `at`; the child.
async fn rotate(s: &dyn SessionStore, t: &RefreshToken, at: u64) -> RefreshToken {
    let child = RefreshToken::generate();
    let out = s
        .refresh(&t.hash(), child.clone(), policy(at), &ok)
        .await
        .expect("store answers");
    assert!(matches!(out, RefreshOutcome::Rotated(_)), "{out:?}");
    child
}

// ---- the contract ---------------------------------------------------------------------------

async fn rotation_grace_and_reuse_revoke_the_session(s: &dyn SessionStore) {
    let t0 = login(s, "s1", 0).await;
    let t1 = rotate(s, &t0, 1).await;
    match present(s, &t0, 5).await {
        RefreshOutcome::Grace(info, cur) => {
            assert_eq!(cur, t1, "the current child again");
            assert_eq!(info.sid, "s1");
        }
        other => panic!("expected grace, got {other:?}"),
    }
    assert_eq!(s.generation("s1").await, Ok(Some(1)), "grace mints nothing");
    assert_eq!(s.session_rejected("s1").await, Ok(false));
    let t2 = rotate(s, &t1, 6).await;
    // The grandparent: reuse, the family and its session are revoked.
    assert!(matches!(
        present(s, &t0, 7).await,
        RefreshOutcome::Reused(_)
    ));
    assert_eq!(s.session_rejected("s1").await, Ok(true));
    assert_eq!(
        present(s, &t2, 8).await,
        RefreshOutcome::Invalid(Rejection::Revoked)
    );
}

async fn the_parent_after_the_grace_window_is_reuse(s: &dyn SessionStore) {
    let t0 = login(s, "s2", 0).await;
    let _t1 = rotate(s, &t0, 1).await;
    assert!(matches!(
        present(s, &t0, 1 + GRACE).await,
        RefreshOutcome::Reused(_)
    ));
    assert_eq!(s.session_rejected("s2").await, Ok(true));
}

async fn idle_and_absolute_expiry_refuse_without_revoking(s: &dyn SessionStore) {
    let t0 = login(s, "s3", 0).await;
    assert_eq!(
        present(s, &t0, IDLE).await,
        RefreshOutcome::Invalid(Rejection::IdleExpired)
    );
    assert_eq!(
        s.session_rejected("s3").await,
        Ok(false),
        "expiry is not revocation"
    );
    let u0 = login(s, "s4", 0).await;
    let mut cur = u0;
    for t in [90, 180, 270, 360, 450, 540, 630, 720, 810, 900, 990] {
        cur = rotate(s, &cur, t).await;
    }
    assert_eq!(
        present(s, &cur, MAX).await,
        RefreshOutcome::Invalid(Rejection::Expired)
    );
}

async fn refused_admission_changes_nothing(s: &dyn SessionStore) {
    let t0 = login(s, "s5", 0).await;
    let deny = |_: &str| Err(7);
    assert_eq!(
        s.refresh(&t0.hash(), RefreshToken::generate(), policy(1), &deny)
            .await,
        Ok(RefreshOutcome::Limited(7))
    );
    assert_eq!(s.generation("s5").await, Ok(Some(0)));
    rotate(s, &t0, 2).await;
}

async fn unknown_tokens_and_sessions_are_refused(s: &dyn SessionStore) {
    assert_eq!(
        present(s, &RefreshToken::generate(), 0).await,
        RefreshOutcome::Invalid(Rejection::Unknown)
    );
    assert_eq!(s.session_rejected("nobody").await, Ok(true));
    assert_eq!(s.generation("nobody").await, Ok(None));
    assert_eq!(s.revoke_session("nobody", T0).await, Ok(false));
}

async fn logout_revokes_once_by_token_or_by_session(s: &dyn SessionStore) {
    let t0 = login(s, "s6", 0).await;
    let t1 = rotate(s, &t0, 1).await;
    let info = s
        .revoke_by_token(&t1.hash(), T0 + 2)
        .await
        .expect("answers")
        .expect("was live");
    assert_eq!((info.sid.as_str(), info.sub.as_str()), ("s6", "u"));
    assert_eq!(
        s.revoke_by_token(&t0.hash(), T0 + 3).await,
        Ok(None),
        "once"
    );
    assert_eq!(s.session_rejected("s6").await, Ok(true));
    assert_eq!(
        present(s, &t1, 4).await,
        RefreshOutcome::Invalid(Rejection::Revoked),
        "no grace answer after logout"
    );
    let _ = login(s, "s7", 0).await;
    assert_eq!(s.revoke_session("s7", T0 + 1).await, Ok(true));
    assert_eq!(s.revoke_session("s7", T0 + 2).await, Ok(false));
    assert_eq!(s.session_rejected("s7").await, Ok(true));
}

async fn blocklist_entries_live_until_their_deadline_per_issuer_and_jti(s: &dyn SessionStore) {
    assert_eq!(
        s.block_jti("i", "old", T0, T0).await,
        Ok(false),
        "already expired"
    );
    assert_eq!(s.jti_blocked("i", "old", T0 - 1).await, Ok(false));
    assert_eq!(s.block_jti("i", "j", T0 + 20, T0).await, Ok(true));
    assert_eq!(s.jti_blocked("i", "j", T0 + 19).await, Ok(true));
    assert_eq!(s.jti_blocked("i", "j", T0 + 20).await, Ok(false));
    assert_eq!(s.jti_blocked("other", "j", T0 + 1).await, Ok(false));
    // A shorter deadline later does not shorten the entry.
    assert_eq!(s.block_jti("i", "j", T0 + 5, T0).await, Ok(true));
    assert_eq!(s.jti_blocked("i", "j", T0 + 19).await, Ok(true));
    // (iss, jti) pairs that would collide if simply joined with ':'.
    assert_eq!(s.block_jti("a:b", "c", T0 + 20, T0).await, Ok(true));
    assert_eq!(s.jti_blocked("a", "b:c", T0 + 1).await, Ok(false));
}

async fn stats_count_live_and_blocked(s: &dyn SessionStore) {
    let a = login(s, "c1", 0).await;
    let _ = login(s, "c2", 0).await;
    s.revoke_by_token(&a.hash(), T0).await.expect("answers");
    s.block_jti("i", "j", T0 + 20, T0).await.expect("answers");
    let st = s.stats(T0 + 1).await.expect("answers");
    assert_eq!((st.live_sessions, st.sessions, st.blocked_jtis), (1, 2, 1));
}

async fn a_login_beyond_the_per_user_maximum_revokes_the_oldest_session(s: &dyn SessionStore) {
    // retention(): at most 3 sessions per user.
    let _ = login(s, "m1", 0).await;
    let _ = login(s, "m2", 1).await;
    let _ = login(s, "m3", 2).await;
    assert_eq!(s.session_rejected("m1").await, Ok(false));
    let _ = login(s, "m4", 3).await;
    assert_eq!(s.session_rejected("m1").await, Ok(true), "the oldest goes");
    for sid in ["m2", "m3", "m4"] {
        assert_eq!(s.session_rejected(sid).await, Ok(false), "{sid}");
    }
    // A session logged out in between frees its place.
    assert_eq!(s.revoke_session("m3", T0 + 4).await, Ok(true));
    let _ = login(s, "m5", 5).await;
    for sid in ["m2", "m4", "m5"] {
        assert_eq!(s.session_rejected(sid).await, Ok(false), "{sid}");
    }
}

/// A family bound at login to a DPoP key (RFC 9449) keeps that binding in the store, across rotations:
/// the cookie presented with another key's thumbprint, or none, is refused and changes nothing; with
/// the key it rotates.
async fn a_dpop_bound_family_keeps_its_key_across_rotations(s: &dyn SessionStore) {
    let key = auth_server::tokens::sha256(b"jkt of the login key");
    let other = auth_server::tokens::sha256(b"jkt of another key");
    let t0 = RefreshToken::generate();
    s.create(NewSession {
        sid: "d1".into(),
        sub: "u".into(),
        token: t0.clone(),
        now: T0,
        idle_ttl: IDLE,
        session_max: MAX,
        jkt: Some(key),
    })
    .await
    .expect("created");
    let with = |t: u64, jkt| RefreshPolicy { jkt, ..policy(t) };
    let child = RefreshToken::generate();
    let out = s
        .refresh(&t0.hash(), child.clone(), with(1, Some(key)), &ok)
        .await;
    assert!(matches!(out, Ok(RefreshOutcome::Rotated(_))), "{out:?}");
    for (at, jkt) in [(2, Some(other)), (3, None)] {
        let out = s
            .refresh(&child.hash(), RefreshToken::generate(), with(at, jkt), &ok)
            .await;
        assert_eq!(
            out,
            Ok(RefreshOutcome::Invalid(Rejection::KeyMismatch)),
            "{jkt:?}"
        );
    }
    assert_eq!(
        s.generation("d1").await,
        Ok(Some(1)),
        "a refused key mints nothing"
    );
    assert_eq!(
        s.session_rejected("d1").await,
        Ok(false),
        "nor revokes the session"
    );
    let out = s
        .refresh(
            &child.hash(),
            RefreshToken::generate(),
            with(4, Some(key)),
            &ok,
        )
        .await;
    assert!(matches!(out, Ok(RefreshOutcome::Rotated(_))), "{out:?}");
}

/// Runs a contract case on a fresh in-memory store and on a fresh Redis store.
macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    let s = super::MemoryStore::with_retention(super::retention());
                    super::$case(&s).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let r = super::RedisServer::start();
                    let s = super::redis_store(&r).await;
                    super::$case(&s).await;
                }
            )*
        }
    };
}

both!(
    rotation_grace_and_reuse_revoke_the_session,
    the_parent_after_the_grace_window_is_reuse,
    idle_and_absolute_expiry_refuse_without_revoking,
    refused_admission_changes_nothing,
    unknown_tokens_and_sessions_are_refused,
    logout_revokes_once_by_token_or_by_session,
    blocklist_entries_live_until_their_deadline_per_issuer_and_jti,
    stats_count_live_and_blocked,
    a_login_beyond_the_per_user_maximum_revokes_the_oldest_session,
    a_dpop_bound_family_keeps_its_key_across_rotations,
);

// ---- Redis only -----------------------------------------------------------------------------

/// Every key and value in the Redis, as text (`KEYS *` is fine on a test instance).
fn dump(r: &RedisServer) -> String {
    let mut out = String::new();
    let keys = command(r.port, &["KEYS", "*"]).expect("keys");
    for k in keys.lines().filter(|l| !l.starts_with(['*', '$'])) {
        out.push_str(k);
        out.push('\n');
        for cmd in [["GET", k], ["HGETALL", k]] {
            if let Ok(v) = command(r.port, &cmd) {
                out.push_str(&v);
            }
        }
    }
    out
}

fn pttl(r: &RedisServer, key: &str) -> i64 {
    let v = command(r.port, &["PTTL", key]).expect("pttl");
    v.trim().trim_start_matches(':').parse().expect("integer")
}

#[tokio::test]
async fn refresh_tokens_are_hashed_and_the_grace_child_sealed_and_expiring() {
    let r = RedisServer::start();
    let s = redis_store(&r).await;
    let t0 = login(&s, "h1", 0).await;
    let t1 = rotate(&s, &t0, 1).await;
    let all = dump(&r);
    for raw in [&t0, &t1] {
        assert!(
            !all.contains(raw.expose()),
            "a raw refresh token at rest:\n{all}"
        );
    }
    assert!(
        all.contains("wtm:grace:h1"),
        "the grace value is kept:\n{all}"
    );
    let ttl = pttl(&r, "wtm:grace:h1");
    assert!(
        ttl > 0 && ttl <= i64::try_from(GRACE * 1000).expect("ms"),
        "expires with the window: {ttl} ms"
    );
    // It opens only under the key-encryption key: another key gives no grace answer.
    let conn = RedisConn::connect(&r.url(), Duration::from_millis(500), Duration::from_secs(5))
        .await
        .expect("connects");
    let other = RedisStore::new(conn, Kek::from_bytes(&[7; 32]), retention());
    assert!(
        matches!(present(&other, &t0, 2).await, RefreshOutcome::Reused(_)),
        "without the grace value the parent is reuse"
    );
}

#[tokio::test]
async fn records_and_blocklist_entries_expire_with_their_deadlines() {
    let r = RedisServer::start();
    let s = redis_store(&r).await;
    let _ = login(&s, "e1", 0).await;
    // keep_until: the idle expiry (100 s) outlives its tokens (0 + 10 + 40 s).
    let ttl = pttl(&r, "wtm:fam:e1");
    assert!(ttl > 90_000 && ttl <= 100_000, "{ttl}");
    s.block_jti("iss", "jti1", T0 + 70, T0)
        .await
        .expect("answers");
    let key = format!(
        "wtm:bl:{}:jti1",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, "iss")
    );
    let ttl = pttl(&r, &key);
    assert!(ttl > 60_000 && ttl <= 70_000, "{ttl}");
}

#[tokio::test]
async fn fifty_racing_refreshes_from_two_instances_mint_exactly_one_child() {
    let r = RedisServer::start();
    let a = Arc::new(redis_store(&r).await);
    let b = Arc::new(redis_store(&r).await);
    let t0 = login(a.as_ref(), "race", 0).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let h = t0.hash();
        tasks.push(tokio::spawn(async move {
            let child = RefreshToken::generate();
            let out = s
                .refresh(&h, child.clone(), policy(1), &ok)
                .await
                .expect("answers");
            (out, child)
        }));
    }
    let mut minted = Vec::new();
    let mut graced = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            (RefreshOutcome::Rotated(_), child) => minted.push(child),
            (RefreshOutcome::Grace(_, cur), _) => graced.push(cur),
            (other, _) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(minted.len(), 1, "exactly one child");
    assert_eq!(graced.len(), 49);
    assert!(graced.iter().all(|c| *c == minted[0]), "all got that child");
    assert_eq!(a.generation("race").await, Ok(Some(1)));
}

#[tokio::test]
async fn f15_an_outage_fails_closed_and_loses_nothing_acknowledged() {
    let mut r = RedisServer::start();
    let s = redis_store(&r).await;
    let t0 = login(&s, "o1", 0).await;
    r.freeze();
    let unavailable = |e: &Result<RefreshOutcome, StoreError>| matches!(e, Err(StoreError::Unavailable { retry_after }) if *retry_after > 0);
    let out = s
        .refresh(&t0.hash(), RefreshToken::generate(), policy(1), &ok)
        .await;
    assert!(unavailable(&out), "{out:?}");
    assert!(
        matches!(
            s.session_rejected("o1").await,
            Err(StoreError::Unavailable { .. })
        ),
        "a bearer check fails closed, never open"
    );
    r.thaw();
    let mut t1 = None;
    for _ in 0..50 {
        let child = RefreshToken::generate();
        match s.refresh(&t0.hash(), child.clone(), policy(2), &ok).await {
            Ok(RefreshOutcome::Rotated(_)) => {
                t1 = Some(child);
                break;
            }
            // The timed-out write may have landed: then the parent gets the child back.
            Ok(RefreshOutcome::Grace(_, cur)) => {
                t1 = Some(cur);
                break;
            }
            Ok(other) => panic!("{other:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(
        t1.is_some(),
        "recovers after Redis answers again, the session acknowledged before intact"
    );
    // Killed and restarted empty (no persistence in the test instance): the error is an error.
    r.kill();
    assert!(s.session_rejected("o1").await.is_err());
    r.resume();
    let mut answered = false;
    for _ in 0..50 {
        if s.session_rejected("o1").await.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "reconnects by itself");
}
