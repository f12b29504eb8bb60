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

use std::collections::HashMap;
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

/// How long a store keeps what it holds, from the server's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Longest life of an access token, seconds: its TTL plus the verifiers' leeway.
    pub access_lifetime: u64,
    /// Reuse grace window, seconds (access tokens may be minted that long after a rotation).
    pub grace: u64,
}

impl Default for Retention {
    fn default() -> Self {
        let c = crate::config::Config::default();
        Self::from_config(&c)
    }
}

impl Retention {
    /// From the server's configuration.
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            access_lifetime: c.access_ttl.saturating_add(c.leeway),
            grace: c.reuse_grace,
        }
    }
}

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
}

#[derive(Debug, Default)]
struct Inner {
    families: HashMap<String, Family>,
    /// token hash → sid, for every token ever issued (so replays of old tokens are recognised).
    index: HashMap<TokenHash, String>,
    blocklist: HashMap<(String, String), u64>,
}

/// The default store: everything in process memory, one mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    retention: Retention,
}

impl MemoryStore {
    /// An empty store with the default configuration's retention.
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
        let hash = s.token.hash();
        let record = FamilyRecord::start(s.sid, s.sub, hash, s.now, s.idle_ttl, s.session_max);
        let info = record.info();
        let mut g = self.lock();
        g.index.insert(hash, record.sid.clone());
        g.families.insert(
            record.sid.clone(),
            Family {
                record,
                hashes: vec![hash],
            },
        );
        Ok(info)
    }

    async fn refresh(
        &self,
        presented: &TokenHash,
        child: RefreshToken,
        policy: RefreshPolicy,
        admit: Admission<'_>,
    ) -> Result<RefreshOutcome, StoreError> {
        let mut guard = self.lock();
        let g = &mut *guard;
        let fam = g
            .index
            .get(presented)
            .and_then(|sid| g.families.get_mut(sid));
        let decided = family::decide(
            fam.as_ref().map(|f| &f.record),
            presented,
            &child,
            policy,
            admit,
        );
        if let (Some(fam), Some(record)) = (fam, decided.record) {
            if record.current != fam.record.current {
                fam.hashes.push(record.current);
                g.index.insert(record.current, record.sid.clone());
            }
            fam.record = record;
        }
        Ok(decided.outcome)
    }

    async fn revoke_by_token(
        &self,
        presented: &TokenHash,
        _now: u64,
    ) -> Result<Option<SessionInfo>, StoreError> {
        let mut guard = self.lock();
        let g = &mut *guard;
        let Some(fam) = g
            .index
            .get(presented)
            .and_then(|sid| g.families.get_mut(sid))
        else {
            return Ok(None);
        };
        Ok(fam.record.revoke().then(|| fam.record.info()))
    }

    async fn revoke_session(&self, sid: &str, _now: u64) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .families
            .get_mut(sid)
            .is_some_and(|f| f.record.revoke()))
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
        let mut g = self.lock();
        let e = g
            .blocklist
            .entry((iss.to_string(), jti.to_string()))
            .or_insert(until);
        *e = (*e).max(until);
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
        let retain = self.retention.access_lifetime;
        let mut report = SweepReport::default();
        let mut guard = self.lock();
        let g = &mut *guard;
        report.examined = g.families.len() + g.blocklist.len();
        let dead: Vec<String> = g
            .families
            .iter()
            .filter(|(_, f)| now >= f.record.absolute_expires_at.saturating_add(retain))
            .map(|(sid, _)| sid.clone())
            .collect();
        for sid in dead {
            if let Some(f) = g.families.remove(&sid) {
                report.removed += 1;
                for h in &f.hashes {
                    g.index.remove(h);
                }
            }
        }
        for f in g.families.values_mut() {
            if now >= f.record.grace_until && f.record.grace_child.take().is_some() {
                report.removed += 1;
            }
        }
        let before = g.blocklist.len();
        g.blocklist.retain(|_, until| now < *until);
        report.removed += before - g.blocklist.len();
        Ok(report)
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
        }
    }

    /// A store holding one session `s` of user `u`, created at 0 with its first refresh token.
    async fn store_with_session() -> (MemoryStore, RefreshToken) {
        let s = MemoryStore::new();
        let t0 = RefreshToken::generate();
        s.create(NewSession {
            sid: "s".into(),
            sub: "u".into(),
            token: t0.clone(),
            now: 0,
            idle_ttl: 100,
            session_max: 1000,
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
}
