//! Session (refresh-family) storage behind a trait, with an in-memory default.
//!
//! The rotation rules live in [`crate::family`] as a pure function of one family record; a store
//! supplies only atomicity and persistence: load the record holding the presented hash, call
//! [`family::decide`], write the record it returns, all as one step (the in-memory store holds one
//! mutex for it, the analogue of `SELECT … FOR UPDATE`), so K parallel refreshes of the same token
//! mint exactly one child (S03). Refresh tokens are stored only as SHA-256 hashes.
//!
//! The trait is asynchronous so that a network store fits behind it; a store that cannot answer
//! returns [`StoreError::Unavailable`] and the handlers fail closed (503 with `Retry-After`).
//!
//! **Reuse grace and the raw child value.** To answer a replay of the immediate parent within the
//! grace window with the *current* child (S02), the server must re-send the child's cookie value.
//! This store keeps the raw child value in memory only until the grace window closes (it is wiped
//! on the next access after that, and by [`SessionStore::sweep`]); long-lived refresh tokens are
//! never stored raw. A persistent store would keep that value encrypted under a server key instead.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::family::{self, FamilyRecord};
use crate::tokens::{RefreshToken, TokenHash};

pub use crate::family::{RefreshOutcome, RefreshPolicy, Rejection, SessionInfo};

/// A new session at login.
#[derive(Debug)]
pub struct NewSession {
    /// Session id.
    pub sid: String,
    /// User.
    pub sub: String,
    /// First refresh token.
    pub token: RefreshToken,
    /// Login time, Unix seconds.
    pub now: u64,
    /// Idle expiry, seconds.
    pub idle_ttl: u64,
    /// Absolute lifetime, seconds.
    pub session_max: u64,
    /// SHA-256 of the `jkt` of the DPoP key the family is bound to, if the login proved one
    /// (see [`crate::family::FamilyRecord::jkt`]). A store must keep it with the record.
    pub jkt: Option<TokenHash>,
}

/// Admission check run inside the atomic step just before a rotation would happen (the
/// per-family rate limit), given the session id. `Err(retry_after_secs)` refuses without
/// touching the token.
pub type Admission<'a> = &'a (dyn Fn(&str) -> Result<(), u64> + Sync);

/// Why a store could not do what was asked. Handlers answer 503 with `Retry-After` for both:
/// a store that cannot answer fails closed, never open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The store did not answer (unreachable, timed out): retry after this many seconds.
    Unavailable {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// The store is full (`--max-sessions`): no new session now; retry after this many seconds.
    Full {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable { .. } => f.write_str("session store unavailable"),
            Self::Full { .. } => f.write_str("session store full (--max-sessions)"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Counts for tests and stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Families not revoked and not expired.
    pub live_sessions: usize,
    /// Families stored (live, or kept until their access tokens have expired).
    pub sessions: usize,
    /// Jti blocklist entries in force.
    pub blocked_jtis: usize,
}

/// What one [`SessionStore::sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Entries looked at (the sweep's work).
    pub examined: usize,
    /// Entries removed or wiped.
    pub removed: usize,
}

/// How long a store keeps what it holds, and how much it may hold, from the server's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Longest life of an access token, seconds: its TTL plus the verifiers' leeway.
    pub access_lifetime: u64,
    /// Reuse grace window, seconds (access tokens may be minted that long after a rotation).
    pub grace: u64,
    /// Most sessions one user may hold (`--max-sessions-per-user`); a login beyond it revokes the
    /// user's oldest session. 0 = no limit.
    pub max_sessions_per_user: usize,
    /// Most session records held at once (`--max-sessions`), live or kept until their access
    /// tokens expire; a login beyond it is refused with [`StoreError::Full`]. 0 = no limit.
    pub max_sessions: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self::from_config(&crate::config::Config::default())
    }
}

impl Retention {
    /// From the server's configuration.
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            access_lifetime: c.access_ttl.saturating_add(c.leeway),
            grace: c.reuse_grace,
            max_sessions_per_user: c.max_sessions_per_user,
            max_sessions: c.max_sessions,
        }
    }
}

/// Longest `Retry-After` of a [`StoreError::Full`] answer, seconds.
pub const MAX_FULL_RETRY_AFTER_SECS: u64 = 60;

/// Storage of refresh families, session revocation and the access-token blocklist.
/// Every method is one atomic step; `now` is Unix seconds from the server's clock.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Record a new family; returns the session as the caller answers it.
    async fn create(&self, s: NewSession) -> Result<SessionInfo, StoreError>;
    /// Present a refresh token: load its family, apply [`family::decide`] (which installs `child`
    /// if the token is current) and write the result, atomically.
    async fn refresh(
        &self,
        presented: &TokenHash,
        child: RefreshToken,
        policy: RefreshPolicy,
        admit: Admission<'_>,
    ) -> Result<RefreshOutcome, StoreError>;
    /// Revoke the family holding this token (logout). Returns the session if it was not revoked yet.
    async fn revoke_by_token(
        &self,
        presented: &TokenHash,
        now: u64,
    ) -> Result<Option<SessionInfo>, StoreError>;
    /// Revoke a session by id (logout with a bearer token only). Returns whether it was not revoked yet.
    async fn revoke_session(&self, sid: &str, now: u64) -> Result<bool, StoreError>;
    /// True when the session is unknown or revoked. (Expiry of access tokens is checked separately.)
    async fn session_rejected(&self, sid: &str) -> Result<bool, StoreError>;
    /// Block an access token's `(iss, jti)` until `until` (exclusive). `Ok(false)` and nothing
    /// stored when `until <= now`.
    async fn block_jti(
        &self,
        iss: &str,
        jti: &str,
        until: u64,
        now: u64,
    ) -> Result<bool, StoreError>;
    /// Whether `(iss, jti)` is blocked at `now`.
    async fn jti_blocked(&self, iss: &str, jti: &str, now: u64) -> Result<bool, StoreError>;
    /// Number of rotations a family has gone through (`None`: unknown session).
    async fn generation(&self, sid: &str) -> Result<Option<u32>, StoreError>;
    /// Remember a DPoP proof (`id`: the SHA-256 of its key's thumbprint, a NUL and its `jti`)
    /// until `until` (seconds since the epoch), so that no instance sharing this store accepts it
    /// again (RFC 9449 §11.1): `Ok(true)` when it was new, `Ok(false)` when it was seen. The
    /// default, for a store of one process, is `Ok(true)`: the process's own replay cache
    /// ([`crate::dpop::DpopState`]) has decided already.
    async fn admit_dpop_proof(
        &self,
        _id: &[u8; 32],
        _until: u64,
        _now: u64,
    ) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// Counts at `now`.
    async fn stats(&self, now: u64) -> Result<StoreStats, StoreError>;
    /// Drop what nothing can need any more at `now` (see [`FamilyRecord::keep_until`]), expired
    /// blocklist entries and raw grace values past their window. A store whose entries expire by
    /// themselves may do nothing.
    async fn sweep(&self, now: u64) -> Result<SweepReport, StoreError>;
}

#[derive(Debug)]
struct Family {
    record: FamilyRecord,
    /// Every hash this family ever issued (for the index cleanup).
    hashes: Vec<TokenHash>,
    /// Its key in [`Inner::deadlines`]: [`FamilyRecord::keep_until`].
    keep_until: u64,
}

/// A blocklist key: `(iss, jti)`.
type Jti = (String, String);

/// Everything behind the one lock. Each expiring thing is also queued under its deadline, so a
/// sweep takes what is due from the front of a queue and never walks the rest.
#[derive(Debug, Default)]
struct Inner {
    families: HashMap<String, Family>,
    /// token hash → sid, for every token a stored family ever issued (so replays of old tokens
    /// are recognised as long as the family is kept).
    index: HashMap<TokenHash, String>,
    /// `(keep_until, sid)` of every family.
    deadlines: BTreeSet<(u64, String)>,
    /// `(grace_until, sid)` of every family holding a raw child.
    graces: BTreeSet<(u64, String)>,
    /// user → `(created_at, sid)` of the user's sessions not revoked, oldest first.
    by_user: HashMap<String, BTreeSet<(u64, String)>>,
    blocklist: HashMap<Jti, u64>,
    /// `(until, (iss, jti))` of every blocklist entry.
    block_deadlines: BTreeSet<(u64, Jti)>,
}

impl Inner {
    fn family_of(&self, presented: &TokenHash) -> Option<&Family> {
        self.index
            .get(presented)
            .and_then(|sid| self.families.get(sid))
    }

    /// Store a new family, queued under its deadlines.
    fn insert(&mut self, record: FamilyRecord, hash: TokenHash, r: &Retention) {
        let sid = record.sid.clone();
        let keep_until = record.keep_until(r.access_lifetime, r.grace);
        self.deadlines.insert((keep_until, sid.clone()));
        self.by_user
            .entry(record.sub.clone())
            .or_default()
            .insert((record.created_at, sid.clone()));
        self.index.insert(hash, sid.clone());
        self.families.insert(
            sid,
            Family {
                record,
                hashes: vec![hash],
                keep_until,
            },
        );
    }

    /// Replace the record of `sid` and move it in every queue and index it is in.
    fn update(&mut self, sid: &str, record: FamilyRecord, r: &Retention) {
        let Some(fam) = self.families.get_mut(sid) else {
            return;
        };
        let old = std::mem::replace(&mut fam.record, record);
        let new = &fam.record;
        if new.current != old.current {
            fam.hashes.push(new.current);
            self.index.insert(new.current, sid.to_string());
        }
        let keep_until = new.keep_until(r.access_lifetime, r.grace);
        if keep_until != fam.keep_until {
            self.deadlines.remove(&(fam.keep_until, sid.to_string()));
            self.deadlines.insert((keep_until, sid.to_string()));
            fam.keep_until = keep_until;
        }
        let old_grace = old.grace_child.is_some().then_some(old.grace_until);
        let new_grace = new.grace_child.is_some().then_some(new.grace_until);
        if old_grace != new_grace {
            if let Some(g) = old_grace {
                self.graces.remove(&(g, sid.to_string()));
            }
            if let Some(g) = new_grace {
                self.graces.insert((g, sid.to_string()));
            }
        }
        if new.revoked && !old.revoked {
            Self::forget_user_session(&mut self.by_user, &old);
        }
    }

    fn forget_user_session(
        by_user: &mut HashMap<String, BTreeSet<(u64, String)>>,
        rec: &FamilyRecord,
    ) {
        if let Some(set) = by_user.get_mut(&rec.sub) {
            set.remove(&(rec.created_at, rec.sid.clone()));
            if set.is_empty() {
                by_user.remove(&rec.sub);
            }
        }
    }

    /// Revoke `sid` if it is not revoked yet; returns its info then.
    fn revoke(&mut self, sid: &str, r: &Retention) -> Option<SessionInfo> {
        let mut rec = self.families.get(sid)?.record.clone();
        if !rec.revoke() {
            return None;
        }
        let info = rec.info();
        self.update(sid, rec, r);
        Some(info)
    }

    /// Drop a family and everything that points at it.
    fn remove(&mut self, sid: &str) {
        let Some(fam) = self.families.remove(sid) else {
            return;
        };
        for h in &fam.hashes {
            self.index.remove(h);
        }
        self.deadlines.remove(&(fam.keep_until, sid.to_string()));
        if fam.record.grace_child.is_some() {
            self.graces
                .remove(&(fam.record.grace_until, sid.to_string()));
        }
        if !fam.record.revoked {
            Self::forget_user_session(&mut self.by_user, &fam.record);
        }
    }

    /// Remove the families whose deadline has passed, oldest deadline first.
    fn expire_families(&mut self, now: u64, work: &mut SweepReport) {
        while let Some((deadline, sid)) = self.deadlines.first().cloned() {
            work.examined += 1;
            if deadline > now {
                break;
            }
            self.remove(&sid);
            work.removed += 1;
        }
    }
}

/// The default store: everything in process memory, one mutex. Bounded: each family is removed
/// as soon as nothing can need it ([`FamilyRecord::keep_until`]), a user holds at most
/// [`Retention::max_sessions_per_user`] sessions (a login beyond revokes the oldest), and the store
/// at most [`Retention::max_sessions`] (a login beyond is refused: [`StoreError::Full`]).
/// Expiry is in deadline order: [`SessionStore::sweep`] does work in proportion to what expired.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    retention: Retention,
}

impl MemoryStore {
    /// An empty store with the default configuration's retention and caps.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping records as `retention` says.
    pub fn with_retention(retention: Retention) -> Self {
        Self {
            inner: Mutex::default(),
            retention,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a family half-rotated (a record is replaced
        // whole), so recover the guard rather than take the server down.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, s: NewSession) -> Result<SessionInfo, StoreError> {
        let r = &self.retention;
        let hash = s.token.hash();
        let mut record = FamilyRecord::start(s.sid, s.sub, hash, s.now, s.idle_ttl, s.session_max);
        record.jkt = s.jkt;
        let info = record.info();
        let mut g = self.lock();
        if r.max_sessions > 0 && g.families.len() >= r.max_sessions {
            // What is due goes first (the periodic sweep may not have run yet this second).
            g.expire_families(s.now, &mut SweepReport::default());
            if g.families.len() >= r.max_sessions {
                let next = g
                    .deadlines
                    .first()
                    .map_or(1, |(d, _)| d.saturating_sub(s.now));
                tracing::warn!(
                    sessions = g.families.len(),
                    "login refused: --max-sessions session records held"
                );
                return Err(StoreError::Full {
                    retry_after: next.clamp(1, MAX_FULL_RETRY_AFTER_SECS),
                });
            }
        }
        if r.max_sessions_per_user > 0 {
            let held = g.by_user.get(&record.sub).map_or(0, BTreeSet::len);
            let excess = (held + 1).saturating_sub(r.max_sessions_per_user);
            let oldest: Vec<String> = g
                .by_user
                .get(&record.sub)
                .into_iter()
                .flatten()
                .take(excess)
                .map(|(_, sid)| sid.clone())
                .collect();
            for sid in oldest {
                if g.revoke(&sid, r).is_some() {
                    tracing::info!(sid = %sid, "session evicted: --max-sessions-per-user reached");
                }
            }
            // An evicted session whose access tokens have all expired goes at once.
            g.expire_families(s.now, &mut SweepReport::default());
        }
        g.insert(record, hash, r);
        Ok(info)
    }

    async fn refresh(
        &self,
        presented: &TokenHash,
        child: RefreshToken,
        policy: RefreshPolicy,
        admit: Admission<'_>,
    ) -> Result<RefreshOutcome, StoreError> {
        let mut g = self.lock();
        let fam = g.family_of(presented).map(|f| &f.record);
        let decided = family::decide(fam, presented, &child, policy, admit);
        if let Some(record) = decided.record {
            let sid = record.sid.clone();
            g.update(&sid, record, &self.retention);
        }
        Ok(decided.outcome)
    }

    async fn revoke_by_token(
        &self,
        presented: &TokenHash,
        _now: u64,
    ) -> Result<Option<SessionInfo>, StoreError> {
        let mut g = self.lock();
        let Some(sid) = g.index.get(presented).cloned() else {
            return Ok(None);
        };
        Ok(g.revoke(&sid, &self.retention))
    }

    async fn revoke_session(&self, sid: &str, _now: u64) -> Result<bool, StoreError> {
        Ok(self.lock().revoke(sid, &self.retention).is_some())
    }

    async fn session_rejected(&self, sid: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .families
            .get(sid)
            .is_none_or(|f| f.record.revoked))
    }

    async fn block_jti(
        &self,
        iss: &str,
        jti: &str,
        until: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        if until <= now {
            return Ok(false);
        }
        let key = (iss.to_string(), jti.to_string());
        let mut g = self.lock();
        let old = g.blocklist.get(&key).copied();
        if old.is_none_or(|o| o < until) {
            if let Some(o) = old {
                g.block_deadlines.remove(&(o, key.clone()));
            }
            g.block_deadlines.insert((until, key.clone()));
            g.blocklist.insert(key, until);
        }
        Ok(true)
    }

    async fn jti_blocked(&self, iss: &str, jti: &str, now: u64) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .blocklist
            .get(&(iss.to_string(), jti.to_string()))
            .is_some_and(|until| now < *until))
    }

    async fn generation(&self, sid: &str) -> Result<Option<u32>, StoreError> {
        Ok(self.lock().families.get(sid).map(|f| f.record.generation))
    }

    /// Walks every family: for tests and `/demo/stats`, never called periodically.
    async fn stats(&self, now: u64) -> Result<StoreStats, StoreError> {
        let g = self.lock();
        Ok(StoreStats {
            live_sessions: g
                .families
                .values()
                .filter(|f| f.record.is_live(now))
                .count(),
            sessions: g.families.len(),
            blocked_jtis: g.blocklist.values().filter(|u| now < **u).count(),
        })
    }

    async fn sweep(&self, now: u64) -> Result<SweepReport, StoreError> {
        let mut work = SweepReport::default();
        let mut g = self.lock();
        g.expire_families(now, &mut work);
        while let Some((until, sid)) = g.graces.first().cloned() {
            work.examined += 1;
            if until > now {
                break;
            }
            g.graces.pop_first();
            if let Some(f) = g.families.get_mut(&sid) {
                f.record.grace_child = None;
            }
            work.removed += 1;
        }
        while let Some((until, key)) = g.block_deadlines.first().cloned() {
            work.examined += 1;
            if until > now {
                break;
            }
            g.block_deadlines.pop_first();
            g.blocklist.remove(&key);
            work.removed += 1;
        }
        Ok(work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: &str) -> Result<(), u64> {
        Ok(())
    }

    fn policy(now: u64) -> RefreshPolicy {
        RefreshPolicy {
            now,
            grace: 10,
            idle_ttl: 100,
            jkt: None,
        }
    }

    /// A store holding one session `s` of user `u`, created at 0 with its first refresh token.
    async fn store_with_session() -> (MemoryStore, RefreshToken) {
        store_with_bound_session(None).await
    }

    /// As [`store_with_session`], the family bound to the DPoP key of thumbprint hash `jkt`.
    async fn store_with_bound_session(jkt: Option<TokenHash>) -> (MemoryStore, RefreshToken) {
        let s = MemoryStore::new();
        let t0 = RefreshToken::generate();
        s.create(NewSession {
            sid: "s".into(),
            sub: "u".into(),
            token: t0.clone(),
            now: 0,
            idle_ttl: 100,
            session_max: 1000,
            jkt,
        })
        .await
        .expect("created");
        (s, t0)
    }

    async fn refresh(s: &MemoryStore, t: &RefreshToken, now: u64) -> RefreshOutcome {
        s.refresh(&t.hash(), RefreshToken::generate(), policy(now), &ok)
            .await
            .expect("store answers")
    }

    #[tokio::test]
    async fn the_store_applies_the_rules_and_indexes_children() {
        let (s, t0) = store_with_session().await;
        let t1 = RefreshToken::generate();
        assert!(matches!(
            s.refresh(&t0.hash(), t1.clone(), policy(1), &ok).await,
            Ok(RefreshOutcome::Rotated(_))
        ));
        match refresh(&s, &t0, 5).await {
            RefreshOutcome::Grace(_, cur) => assert_eq!(cur, t1),
            other => panic!("expected grace, got {other:?}"),
        }
        assert_eq!(s.generation("s").await, Ok(Some(1)));
        assert!(matches!(
            refresh(&s, &t0, 11).await,
            RefreshOutcome::Reused(_)
        ));
        assert_eq!(s.session_rejected("s").await, Ok(true));
        assert_eq!(
            refresh(&s, &t1, 12).await,
            RefreshOutcome::Invalid(Rejection::Revoked)
        );
    }

    #[tokio::test]
    async fn raw_child_is_kept_only_for_the_grace_window() {
        let (s, t0) = store_with_session().await;
        let raw_held = |s: &MemoryStore| {
            s.lock()
                .families
                .get("s")
                .is_some_and(|f| f.record.grace_child.is_some())
        };
        assert!(!raw_held(&s), "nothing raw at login");
        assert!(matches!(
            refresh(&s, &t0, 1).await,
            RefreshOutcome::Rotated(_)
        ));
        assert!(raw_held(&s), "held during the window");
        s.sweep(10).await.expect("sweep");
        assert!(raw_held(&s), "window is [1, 11)");
        s.sweep(11).await.expect("sweep");
        assert!(!raw_held(&s), "wiped once the window closes");
    }

    #[tokio::test]
    async fn limited_rotation_changes_nothing() {
        let (s, t0) = store_with_session().await;
        let deny = |_: &str| Err(7);
        assert_eq!(
            s.refresh(&t0.hash(), RefreshToken::generate(), policy(1), &deny)
                .await,
            Ok(RefreshOutcome::Limited(7))
        );
        assert_eq!(s.generation("s").await, Ok(Some(0)));
        assert!(matches!(
            refresh(&s, &t0, 2).await,
            RefreshOutcome::Rotated(_)
        ));
    }

    fn new_session(sid: &str, sub: &str, now: u64, idle_ttl: u64) -> NewSession {
        NewSession {
            sid: sid.into(),
            sub: sub.into(),
            token: RefreshToken::generate(),
            now,
            idle_ttl,
            session_max: 1000,
            jkt: None,
        }
    }

    const SMALL: Retention = Retention {
        access_lifetime: 20,
        grace: 10,
        max_sessions_per_user: 0,
        max_sessions: 0,
    };

    #[tokio::test]
    async fn s43_the_sweep_works_in_proportion_to_what_expired_not_to_the_store_size() {
        let s = MemoryStore::with_retention(SMALL);
        for i in 0..10_000 {
            s.create(new_session(&format!("live{i}"), &format!("u{i}"), 0, 500))
                .await
                .expect("created");
        }
        for i in 0..5 {
            s.create(new_session(&format!("short{i}"), "v", 0, 40))
                .await
                .expect("created");
        }
        for i in 0..3 {
            s.block_jti("i", &format!("j{i}"), 40, 0)
                .await
                .expect("blocked");
        }
        let idle = s.sweep(39).await.expect("sweep");
        assert_eq!(idle.removed, 0);
        assert!(
            idle.examined <= 3,
            "nothing due: one look per queue, got {idle:?}"
        );
        let due = s.sweep(40).await.expect("sweep");
        assert_eq!(
            due.removed,
            5 + 3,
            "five sessions and three blocklist entries"
        );
        assert!(
            due.examined <= 5 + 3 + 3,
            "work in proportion to what expired, not to 10,005 sessions: {due:?}"
        );
        assert_eq!(s.stats(40).await.expect("stats").sessions, 10_000);
        assert_eq!(s.session_rejected("short0").await, Ok(true));
        assert_eq!(s.session_rejected("live0").await, Ok(false));
    }

    #[tokio::test]
    async fn a_revoked_record_goes_when_its_access_tokens_are_dead_and_its_hashes_with_it() {
        let s = MemoryStore::with_retention(SMALL);
        let ns = new_session("s", "u", 0, 500);
        let t0 = ns.token.clone();
        s.create(ns).await.expect("created");
        assert!(matches!(
            refresh(&s, &t0, 5).await,
            RefreshOutcome::Rotated(_)
        ));
        assert_eq!(s.revoke_session("s", 6).await, Ok(true));
        // Rotated at 5: tokens minted until 15 live until 35.
        assert_eq!(
            s.sweep(34).await.map(|r| r.removed),
            Ok(0),
            "the revocation wiped the raw child"
        );
        assert_eq!(s.stats(34).await.map(|r| r.sessions), Ok(1));
        assert_eq!(s.sweep(35).await.map(|r| r.removed), Ok(1));
        let g = s.lock();
        assert!(g.families.is_empty() && g.index.is_empty() && g.deadlines.is_empty());
        assert!(g.graces.is_empty() && g.by_user.is_empty());
    }

    #[tokio::test]
    async fn the_per_user_cap_revokes_the_oldest_and_the_total_cap_refuses() {
        let s = MemoryStore::with_retention(Retention {
            max_sessions_per_user: 2,
            max_sessions: 4,
            ..SMALL
        });
        for (i, sid) in ["a", "b", "c"].into_iter().enumerate() {
            s.create(new_session(sid, "u", i as u64, 500))
                .await
                .expect("created");
        }
        assert_eq!(s.session_rejected("a").await, Ok(true), "oldest evicted");
        assert_eq!(s.session_rejected("b").await, Ok(false));
        assert_eq!(s.session_rejected("c").await, Ok(false));
        s.create(new_session("d", "w", 3, 500))
            .await
            .expect("created");
        // Four records (a is kept until its access tokens are dead at 0 + 10 + 20 = 30).
        assert_eq!(
            s.create(new_session("e", "x", 4, 500)).await,
            Err(StoreError::Full { retry_after: 26 }),
            "Retry-After: until the next record goes"
        );
        assert_eq!(s.session_rejected("e").await, Ok(true), "not created");
        // At 30 the evicted record is due, and the login makes room by itself.
        assert!(s.create(new_session("e", "x", 30, 500)).await.is_ok());
        assert_eq!(s.generation("a").await, Ok(None), "a is gone");
    }

    #[tokio::test]
    async fn blocklist_entries_live_exactly_until_their_deadline() {
        let s = MemoryStore::new();
        assert_eq!(
            s.block_jti("i", "old", 10, 10).await,
            Ok(false),
            "already expired is a no-op"
        );
        assert_eq!(s.jti_blocked("i", "old", 9).await, Ok(false));
        assert_eq!(s.block_jti("i", "j", 20, 10).await, Ok(true));
        assert_eq!(s.jti_blocked("i", "j", 19).await, Ok(true));
        assert_eq!(s.jti_blocked("i", "j", 20).await, Ok(false));
        assert_eq!(s.jti_blocked("other-issuer", "j", 19).await, Ok(false));
    }

    #[tokio::test]
    async fn a_bound_session_keeps_its_key_through_the_store() {
        let key = crate::tokens::sha256(b"jkt");
        let (s, t0) = store_with_bound_session(Some(key)).await;
        let out = s
            .refresh(&t0.hash(), RefreshToken::generate(), policy(1), &ok)
            .await
            .expect("answers");
        assert_eq!(out, RefreshOutcome::Invalid(Rejection::KeyMismatch));
        let bound = RefreshPolicy {
            jkt: Some(key),
            ..policy(1)
        };
        let out = s
            .refresh(&t0.hash(), RefreshToken::generate(), bound, &ok)
            .await
            .expect("answers");
        assert!(matches!(out, RefreshOutcome::Rotated(_)), "{out:?}");
    }
}
