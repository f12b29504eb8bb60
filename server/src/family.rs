//! The refresh-token rotation rules as a pure function of one family record.
//!
//! A session is a refresh-token *family* (RFC 9700 §4.14.2): the chain of tokens produced by
//! rotation from one login. [`decide`] says what presenting a refresh token does to a family:
//! rotate it, answer the immediate parent within the grace window with the current child again,
//! treat anything older as reuse (the family and its session are revoked), or refuse (unknown,
//! revoked, expired, idle-expired, or the per-family admission said no). It reads no clock and
//! touches no store: a store loads the record, calls [`decide`], and writes the record it returns,
//! atomically (one lock in memory; a script or `WATCH`/`MULTI` in a network store). So every store
//! applies the same security rules, and the rules are tested here without one.

use crate::tokens::{RefreshToken, TokenHash};

/// What the caller needs to answer for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Session id (the access tokens' `sid` claim).
    pub sid: String,
    /// User (the access tokens' `sub` claim).
    pub sub: String,
    /// The current refresh token stops working at this instant (idle or absolute expiry,
    /// whichever comes first), in Unix seconds: the cookie's `Max-Age` is counted to it.
    pub expires_at: u64,
    /// Absolute expiry of the family, Unix seconds; rotation never moves it.
    pub absolute_expires_at: u64,
}

/// The rules that [`decide`] applies besides the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Current time, Unix seconds.
    pub now: u64,
    /// Window, in seconds after a rotation, in which the immediate parent gets the current child
    /// back (0 = strict rotation: any replay is reuse).
    pub grace: u64,
    /// Idle expiry in seconds, slid forward on each rotation but capped by the absolute expiry.
    pub idle_ttl: u64,
    /// SHA-256 of the RFC 7638 thumbprint (`jkt`) of the key whose DPoP proof came with the
    /// request (RFC 9449), if one did. A family bound to a key ([`FamilyRecord::jkt`]) answers
    /// only a request proving that key.
    pub jkt: Option<TokenHash>,
}

/// Why a presented refresh token was refused without any change to its family.
/// Clients see one answer for all of them (`invalid_grant`, S39); only logs tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No family holds this token (never issued, or its record is gone).
    Unknown,
    /// The family was revoked (logout, reuse, eviction).
    Revoked,
    /// The family is past its absolute expiry.
    Expired,
    /// The family was not refreshed within its idle expiry.
    IdleExpired,
    /// The family is bound to a DPoP key and the request proved another key, or none: a stolen
    /// cookie presented without its key. A security event, like reuse, but nothing changes (the
    /// cookie is useless without the key, and the legitimate client keeps its session).
    KeyMismatch,
}

impl Rejection {
    /// The logged reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown refresh token",
            Self::Revoked => "revoked refresh token",
            Self::Expired => "expired refresh token (absolute)",
            Self::IdleExpired => "expired refresh token (idle)",
            Self::KeyMismatch => "refresh token presented without the DPoP key it is bound to",
        }
    }
}

/// The result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The presented token was current: it is consumed and the child is now current.
    Rotated(SessionInfo),
    /// The immediate parent, within the grace window: here is the current child again.
    Grace(SessionInfo, RefreshToken),
    /// A rotated token was replayed outside the rules: the family and its session are revoked.
    Reused(SessionInfo),
    /// The rotation admission (per-family rate limit) refused: nothing changed. Seconds to wait.
    Limited(u64),
    /// Unknown, revoked or expired: nothing changed.
    Invalid(Rejection),
}

/// One family's state: everything [`decide`] reads and writes. Refresh tokens appear only as
/// SHA-256 hashes, except the current child while its grace window is open (see
/// [`FamilyRecord::grace_child`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRecord {
    /// Session id.
    pub sid: String,
    /// User.
    pub sub: String,
    /// Login time, Unix seconds.
    pub created_at: u64,
    /// Absolute expiry, Unix seconds.
    pub absolute_expires_at: u64,
    /// Idle expiry of the current token, Unix seconds (never after the absolute expiry).
    pub idle_expires_at: u64,
    /// Revoked: logout, reuse or eviction. Final.
    pub revoked: bool,
    /// Hash of the current refresh token.
    pub current: TokenHash,
    /// Hash of the immediate parent, after the first rotation.
    pub parent: Option<TokenHash>,
    /// The raw current token, kept only while `now < grace_until` so that a replay of the parent
    /// can be answered with it (S02). A persistent store keeps it encrypted under a server key.
    pub grace_child: Option<RefreshToken>,
    /// End (exclusive) of the grace window of the last rotation, Unix seconds.
    pub grace_until: u64,
    /// Rotations so far.
    pub generation: u32,
    /// Time of the last rotation (or the login), Unix seconds: access tokens of this session
    /// were minted at most a grace window later, which bounds how long they can live.
    pub rotated_at: u64,
    /// SHA-256 of the `jkt` of the DPoP key the family is bound to since login (RFC 9449 §5:
    /// refresh tokens of public clients are bound to the key of the proof), or `None`: a bearer
    /// family. Never changes.
    pub jkt: Option<TokenHash>,
}

impl FamilyRecord {
    /// A new family at login: `first` is the hash of its first refresh token; `idle_ttl` and
    /// `session_max` are in seconds.
    pub fn start(
        sid: String,
        sub: String,
        first: TokenHash,
        now: u64,
        idle_ttl: u64,
        session_max: u64,
    ) -> Self {
        let absolute = now.saturating_add(session_max);
        Self {
            sid,
            sub,
            created_at: now,
            absolute_expires_at: absolute,
            idle_expires_at: now.saturating_add(idle_ttl).min(absolute),
            revoked: false,
            current: first,
            parent: None,
            grace_child: None,
            grace_until: 0,
            generation: 0,
            rotated_at: now,
            jkt: None,
        }
    }

    /// What the caller needs to answer for this session.
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            sid: self.sid.clone(),
            sub: self.sub.clone(),
            expires_at: self.refresh_until(),
            absolute_expires_at: self.absolute_expires_at,
        }
    }

    /// The instant (exclusive) until which the current token can refresh, if not revoked.
    pub fn refresh_until(&self) -> u64 {
        self.idle_expires_at.min(self.absolute_expires_at)
    }

    /// Whether the current token can still refresh at `now`.
    pub fn is_live(&self, now: u64) -> bool {
        !self.revoked && now < self.refresh_until()
    }

    /// Revoke the family (logout, eviction). Returns whether it was not revoked before.
    pub fn revoke(&mut self) -> bool {
        let was = !self.revoked;
        self.revoked = true;
        self.grace_child = None;
        was
    }

    /// The instant after which nothing can need this record any more, given that an access token
    /// lives `access_lifetime` seconds (its TTL plus the verifiers' leeway) and is minted at most
    /// `grace` seconds after the last rotation: its access tokens have all expired, and (unless
    /// revoked) its refresh token has expired too. A store may drop the record then: an unknown
    /// session is rejected like a revoked one.
    pub fn keep_until(&self, access_lifetime: u64, grace: u64) -> u64 {
        let tokens_until = self
            .rotated_at
            .saturating_add(grace)
            .saturating_add(access_lifetime);
        if self.revoked {
            tokens_until
        } else {
            tokens_until.max(self.refresh_until())
        }
    }
}

/// The per-family admission check, asked only when a rotation would happen (so replays and
/// refusals do not spend the family's budget): `Err(retry_after_secs)` refuses without change.
pub trait Admit: FnOnce(&str) -> Result<(), u64> {}
impl<F: FnOnce(&str) -> Result<(), u64>> Admit for F {}

/// What [`decide`] returns: the outcome, and the record to write back (`None`: unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The answer.
    pub outcome: RefreshOutcome,
    /// The new state of the family, when it changed.
    pub record: Option<FamilyRecord>,
}

/// Present the refresh token whose hash is `presented` to `record` (the family holding that hash,
/// or `None` when no family does). `child` becomes current on a rotation; `admit` is asked only
/// then. Pure: the same inputs always give the same [`Decided`].
///
/// Rules (S01–S03, S05): a revoked or absolutely expired family refuses everything; the current
/// token rotates unless idle-expired or refused admission; the immediate parent within
/// `[rotation, rotation + grace)` gets the current child again (unless idle-expired); any other
/// token of the family is reuse and revokes it.
pub fn decide(
    record: Option<&FamilyRecord>,
    presented: &TokenHash,
    child: &RefreshToken,
    policy: RefreshPolicy,
    admit: impl Admit,
) -> Decided {
    let unchanged = |outcome| Decided {
        outcome,
        record: None,
    };
    let Some(rec) = record else {
        return unchanged(RefreshOutcome::Invalid(Rejection::Unknown));
    };
    if rec.revoked {
        return unchanged(RefreshOutcome::Invalid(Rejection::Revoked));
    }
    let now = policy.now;
    if now >= rec.absolute_expires_at {
        return unchanged(RefreshOutcome::Invalid(Rejection::Expired));
    }
    // Bound to a key: the current token and the parent in grace answer only its proof. Older
    // tokens are reuse whatever the key (below).
    let answerable = *presented == rec.current
        || (rec.parent.as_ref() == Some(presented) && now < rec.grace_until);
    if answerable && rec.jkt.is_some() && rec.jkt != policy.jkt {
        return unchanged(RefreshOutcome::Invalid(Rejection::KeyMismatch));
    }
    let mut next = rec.clone();
    // The raw child is wiped on the first access after its window (and by the store's sweep).
    let wiped = now >= next.grace_until && next.grace_child.take().is_some();
    let keep = |outcome, next: FamilyRecord| Decided {
        outcome,
        record: wiped.then_some(next),
    };
    if *presented == next.current {
        if now >= next.idle_expires_at {
            return keep(RefreshOutcome::Invalid(Rejection::IdleExpired), next);
        }
        if let Err(retry) = admit(&next.sid) {
            return keep(RefreshOutcome::Limited(retry), next);
        }
        next.parent = Some(next.current);
        next.current = child.hash();
        next.grace_until = now.saturating_add(policy.grace);
        next.grace_child = (policy.grace > 0).then(|| child.clone());
        next.idle_expires_at = now
            .saturating_add(policy.idle_ttl)
            .min(next.absolute_expires_at);
        next.generation = next.generation.saturating_add(1);
        next.rotated_at = now;
        return Decided {
            outcome: RefreshOutcome::Rotated(next.info()),
            record: Some(next),
        };
    }
    if next.parent.as_ref() == Some(presented) && now < next.grace_until {
        if now >= next.idle_expires_at {
            return keep(RefreshOutcome::Invalid(Rejection::IdleExpired), next);
        }
        if let Some(raw) = next.grace_child.clone() {
            return keep(RefreshOutcome::Grace(next.info(), raw), next);
        }
    }
    // An older token, or the parent after the grace window: reuse. Revoke everything.
    next.revoke();
    Decided {
        outcome: RefreshOutcome::Reused(next.info()),
        record: Some(next),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: u64 = 10;
    const IDLE: u64 = 100;
    const MAX: u64 = 1000;

    fn ok(_: &str) -> Result<(), u64> {
        Ok(())
    }

    fn never(_: &str) -> Result<(), u64> {
        panic!("admission must not be asked")
    }

    fn policy(now: u64) -> RefreshPolicy {
        RefreshPolicy {
            now,
            grace: GRACE,
            idle_ttl: IDLE,
            jkt: None,
        }
    }

    fn fresh() -> (FamilyRecord, RefreshToken) {
        fresh_at(0)
    }

    /// A family logged into at `t`, absolutely expiring at `MAX`.
    fn fresh_at(t: u64) -> (FamilyRecord, RefreshToken) {
        let t0 = RefreshToken::generate();
        let rec = FamilyRecord::start("s".into(), "u".into(), t0.hash(), t, IDLE, MAX - t);
        (rec, t0)
    }

    /// Rotate `rec` at `now` with a new child; returns the new record and the child.
    fn rotated(
        rec: &FamilyRecord,
        presented: &RefreshToken,
        now: u64,
    ) -> (FamilyRecord, RefreshToken) {
        let child = RefreshToken::generate();
        let d = decide(Some(rec), &presented.hash(), &child, policy(now), ok);
        assert!(matches!(d.outcome, RefreshOutcome::Rotated(_)), "{d:?}");
        (d.record.expect("a rotation writes"), child)
    }

    #[test]
    fn the_current_token_rotates_and_slides_the_idle_expiry() {
        let (rec, t0) = fresh();
        let child = RefreshToken::generate();
        let d = decide(Some(&rec), &t0.hash(), &child, policy(5), ok);
        let next = d.record.expect("written");
        assert_eq!(
            d.outcome,
            RefreshOutcome::Rotated(SessionInfo {
                sid: "s".into(),
                sub: "u".into(),
                expires_at: 5 + IDLE,
                absolute_expires_at: MAX,
            })
        );
        assert_eq!(next.current, child.hash());
        assert_eq!(next.parent, Some(t0.hash()));
        assert_eq!(next.generation, 1);
        assert_eq!(next.grace_until, 5 + GRACE);
        assert_eq!(next.grace_child.as_ref(), Some(&child));
        assert_eq!(next.rotated_at, 5);
    }

    #[test]
    fn the_idle_expiry_never_passes_the_absolute_expiry() {
        let (rec, t0) = fresh_at(MAX - 50);
        let (next, _) = rotated(&rec, &t0, MAX - 1);
        assert_eq!(next.idle_expires_at, MAX);
        assert_eq!(next.info().expires_at, MAX);
    }

    #[test]
    fn the_immediate_parent_within_grace_gets_the_current_child_without_a_write() {
        let (rec, t0) = fresh();
        let (rec, t1) = rotated(&rec, &t0, 1);
        let d = decide(
            Some(&rec),
            &t0.hash(),
            &RefreshToken::generate(),
            policy(10),
            never,
        );
        match d.outcome {
            RefreshOutcome::Grace(info, cur) => {
                assert_eq!(cur, t1);
                assert_eq!(info.sid, "s");
            }
            other => panic!("expected grace, got {other:?}"),
        }
        assert_eq!(d.record, None, "a grace answer changes nothing");
    }

    #[test]
    fn the_parent_at_the_end_of_grace_is_reuse_and_revokes_the_family() {
        let (rec, t0) = fresh();
        let (rec, _) = rotated(&rec, &t0, 1);
        let d = decide(
            Some(&rec),
            &t0.hash(),
            &RefreshToken::generate(),
            policy(1 + GRACE),
            never,
        );
        assert!(matches!(d.outcome, RefreshOutcome::Reused(_)), "{d:?}");
        let next = d.record.expect("revocation writes");
        assert!(next.revoked);
        assert_eq!(next.grace_child, None, "raw child wiped");
    }

    #[test]
    fn a_grandparent_within_grace_is_reuse() {
        let (rec, t0) = fresh();
        let (rec, t1) = rotated(&rec, &t0, 1);
        let (rec, _) = rotated(&rec, &t1, 2);
        let d = decide(
            Some(&rec),
            &t0.hash(),
            &RefreshToken::generate(),
            policy(3),
            never,
        );
        assert!(matches!(d.outcome, RefreshOutcome::Reused(_)), "{d:?}");
        assert!(d.record.is_some_and(|r| r.revoked));
    }

    #[test]
    fn strict_rotation_has_no_grace() {
        let (rec, t0) = fresh();
        let strict = RefreshPolicy {
            grace: 0,
            ..policy(1)
        };
        let child = RefreshToken::generate();
        let rec = decide(Some(&rec), &t0.hash(), &child, strict, ok)
            .record
            .expect("rotated");
        assert_eq!(rec.grace_child, None, "no raw child kept without grace");
        let d = decide(
            Some(&rec),
            &t0.hash(),
            &RefreshToken::generate(),
            strict,
            never,
        );
        assert!(matches!(d.outcome, RefreshOutcome::Reused(_)));
    }

    #[test]
    fn a_revoked_family_refuses_everything_without_a_write() {
        let (mut rec, t0) = fresh();
        assert!(rec.revoke());
        assert!(
            !rec.revoke(),
            "revoking twice reports it was already revoked"
        );
        let d = decide(
            Some(&rec),
            &t0.hash(),
            &RefreshToken::generate(),
            policy(1),
            never,
        );
        assert_eq!(d.outcome, RefreshOutcome::Invalid(Rejection::Revoked));
        assert_eq!(d.record, None);
    }

    #[test]
    fn absolute_expiry_refuses_current_and_old_tokens_alike() {
        let (rec, t0) = fresh_at(900);
        let (rec, t1) = rotated(&rec, &t0, 950);
        for t in [&t0, &t1] {
            let d = decide(
                Some(&rec),
                &t.hash(),
                &RefreshToken::generate(),
                policy(MAX),
                never,
            );
            assert_eq!(d.outcome, RefreshOutcome::Invalid(Rejection::Expired));
            assert_eq!(
                d.record, None,
                "an expired family is not revoked by a replay"
            );
        }
    }

    #[test]
    fn idle_expiry_refuses_the_current_token_and_the_parent_in_grace() {
        let (rec, t0) = fresh();
        let d = decide(
            Some(&rec),
            &t0.hash(),
            &RefreshToken::generate(),
            policy(IDLE),
            never,
        );
        assert_eq!(d.outcome, RefreshOutcome::Invalid(Rejection::IdleExpired));
        assert_eq!(d.record, None);
        // A parent within grace after the idle expiry (only when grace outlasts the idle TTL).
        let long_grace = RefreshPolicy {
            now: 1,
            grace: IDLE * 2,
            idle_ttl: IDLE,
            jkt: None,
        };
        let rec = decide(
            Some(&rec),
            &t0.hash(),
            &RefreshToken::generate(),
            long_grace,
            ok,
        )
        .record
        .expect("rotated");
        let late = RefreshPolicy {
            now: 1 + IDLE,
            ..long_grace
        };
        let d = decide(
            Some(&rec),
            &t0.hash(),
            &RefreshToken::generate(),
            late,
            never,
        );
        assert_eq!(d.outcome, RefreshOutcome::Invalid(Rejection::IdleExpired));
    }

    #[test]
    fn refused_admission_changes_nothing_and_passes_the_delay_on() {
        let (rec, t0) = fresh();
        let mut asked = None;
        let d = decide(
            Some(&rec),
            &t0.hash(),
            &RefreshToken::generate(),
            policy(1),
            |sid: &str| {
                asked = Some(sid.to_string());
                Err(7)
            },
        );
        assert_eq!(d.outcome, RefreshOutcome::Limited(7));
        assert_eq!(d.record, None);
        assert_eq!(
            asked.as_deref(),
            Some("s"),
            "admission is asked for this family"
        );
    }

    #[test]
    fn an_unknown_token_is_refused() {
        let d = decide(
            None,
            &RefreshToken::generate().hash(),
            &RefreshToken::generate(),
            policy(1),
            never,
        );
        assert_eq!(d.outcome, RefreshOutcome::Invalid(Rejection::Unknown));
        assert_eq!(d.record, None);
    }

    #[test]
    fn the_raw_child_is_wiped_on_the_first_access_after_its_window() {
        let (rec, t0) = fresh();
        let (rec, t1) = rotated(&rec, &t0, 1);
        // The current token, refused admission after the window: the wipe is still written.
        let d = decide(
            Some(&rec),
            &t1.hash(),
            &RefreshToken::generate(),
            policy(1 + GRACE),
            |_: &str| Err(3),
        );
        assert_eq!(d.outcome, RefreshOutcome::Limited(3));
        let wiped = d.record.expect("the wipe is a change");
        assert_eq!(wiped.grace_child, None);
        assert_eq!(wiped.current, rec.current, "nothing else changed");
    }

    #[test]
    fn a_record_is_kept_until_its_last_access_token_or_its_refresh_token_expires() {
        let (rec, _) = fresh();
        // Live: until the idle expiry (100) when that is later than the tokens (0 + 10 + 40).
        assert_eq!(rec.keep_until(40, GRACE), IDLE);
        // Tokens outliving the idle expiry keep it longer.
        assert_eq!(rec.keep_until(400, GRACE), 410);
        let mut revoked = rec.clone();
        revoked.revoke();
        assert_eq!(
            revoked.keep_until(40, GRACE),
            50,
            "revoked: only as long as its tokens"
        );
    }

    #[test]
    fn a_family_bound_to_a_key_answers_only_that_key() {
        let (mut rec, t0) = fresh();
        let key = crate::tokens::sha256(b"jkt of the login key");
        rec.jkt = Some(key);
        let with = |jkt| RefreshPolicy { jkt, ..policy(1) };
        for other in [None, Some(crate::tokens::sha256(b"another key"))] {
            let d = decide(
                Some(&rec),
                &t0.hash(),
                &RefreshToken::generate(),
                with(other),
                never,
            );
            assert_eq!(d.outcome, RefreshOutcome::Invalid(Rejection::KeyMismatch));
            assert_eq!(
                d.record, None,
                "nothing changes: the legitimate client keeps its session"
            );
        }
        let child = RefreshToken::generate();
        let d = decide(Some(&rec), &t0.hash(), &child, with(Some(key)), ok);
        assert!(matches!(d.outcome, RefreshOutcome::Rotated(_)), "{d:?}");
        let rec = d.record.expect("rotated");
        assert_eq!(rec.jkt, Some(key), "the binding survives rotation");
        // The parent within grace: also only with the key.
        let d = decide(
            Some(&rec),
            &t0.hash(),
            &RefreshToken::generate(),
            with(None),
            never,
        );
        assert_eq!(d.outcome, RefreshOutcome::Invalid(Rejection::KeyMismatch));
        let d = decide(
            Some(&rec),
            &t0.hash(),
            &RefreshToken::generate(),
            with(Some(key)),
            never,
        );
        assert_eq!(d.outcome, RefreshOutcome::Grace(rec.info(), child.clone()));
        // Outside grace the parent is reuse, whoever presents it: the family is revoked.
        let late = RefreshPolicy {
            jkt: None,
            ..policy(1 + GRACE)
        };
        let d = decide(
            Some(&rec),
            &t0.hash(),
            &RefreshToken::generate(),
            late,
            never,
        );
        assert!(matches!(d.outcome, RefreshOutcome::Reused(_)), "{d:?}");
        // An unbound family takes any proof, or none (`--dpop allowed`).
        let (plain, t0) = fresh();
        let d = decide(
            Some(&plain),
            &t0.hash(),
            &RefreshToken::generate(),
            with(Some(key)),
            ok,
        );
        assert!(matches!(d.outcome, RefreshOutcome::Rotated(_)), "{d:?}");
    }
}
