//! Session (refresh-family) storage behind a trait, with an in-memory default.
//!
//! A session is a refresh-token *family*: the chain of tokens produced by rotation from one login.
//! Refresh tokens are stored only as SHA-256 hashes. Every state transition of a family happens
//! under one mutex (the in-memory analogue of `SELECT … FOR UPDATE`), so K parallel refreshes of the
//! same token mint exactly one child (S03).
//!
//! **Reuse grace and the raw child value.** To answer a replay of the immediate parent within the
//! grace window with the *current* child (S02), the server must re-send the child's cookie value.
//! This store keeps the raw child value in memory only until the grace window closes (it is wiped
//! on the next access after that, and by [`SessionStore::sweep`]); long-lived refresh tokens are
//! never stored raw. A persistent store would keep that value encrypted under a server key instead.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::tokens::{RefreshToken, TokenHash};

/// A new session at login.
#[derive(Debug)]
pub struct NewSession {
    /// Session id.
    pub sid: String,
    /// User.
    pub sub: String,
    /// First refresh token.
    pub token: RefreshToken,
    /// Login time.
    pub now: u64,
    /// Idle expiry duration.
    pub idle_ttl: u64,
    /// Absolute lifetime.
    pub session_max: u64,
}

/// What the caller needs to answer a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Session id.
    pub sid: String,
    /// User.
    pub sub: String,
    /// The current refresh token stops working at this instant (idle or absolute, whichever first).
    pub expires_at: u64,
    /// Absolute expiry of the family.
    pub absolute_expires_at: u64,
}

/// Rules applied inside the atomic refresh.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    /// Current time.
    pub now: u64,
    /// Grace window for the immediate parent (0 = strict).
    pub grace: u64,
    /// Idle expiry, slid forward on each rotation but capped by the absolute expiry.
    pub idle_ttl: u64,
}

/// The result of presenting a refresh token.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The presented token was current: it is consumed and `child` is now current.
    Rotated(SessionInfo),
    /// The immediate parent, within the grace window: here is the current child again.
    Grace(SessionInfo, RefreshToken),
    /// A rotated token was replayed outside the rules: the family and its session are revoked.
    Reused(SessionInfo),
    /// The rotation admission (per-family rate limit) refused: nothing changed.
    Limited(u64),
    /// Unknown, expired, or revoked: nothing changed.
    Invalid,
}

/// Admission check run inside the critical section just before a rotation would happen
/// (the per-family rate limit). `Err(retry_after_secs)` refuses without touching the token.
pub type Admission<'a> = &'a (dyn Fn(&str) -> Result<(), u64> + Sync);

/// Counts for tests and stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Families not revoked and not expired.
    pub live_sessions: usize,
    /// Families stored (live, revoked or expired, until swept).
    pub sessions: usize,
    /// Jti blocklist entries.
    pub blocked_jtis: usize,
}

/// Storage of refresh families, session revocation and the access-token blocklist.
pub trait SessionStore: Send + Sync + 'static {
    /// Record a new family.
    fn create(&self, s: NewSession);
    /// Atomically present a refresh token and install `child` if it is current.
    fn refresh(
        &self,
        presented: &TokenHash,
        child: RefreshToken,
        policy: RefreshPolicy,
        admit: Admission<'_>,
    ) -> RefreshOutcome;
    /// Revoke the family holding this token (logout). Returns the session it belonged to.
    fn revoke_by_token(&self, presented: &TokenHash, now: u64) -> Option<SessionInfo>;
    /// Revoke a session by id (logout with a bearer token only). Returns whether it was live.
    fn revoke_session(&self, sid: &str, now: u64) -> bool;
    /// True when the session is unknown, or revoked. (Expiry of access tokens is checked separately.)
    fn session_rejected(&self, sid: &str) -> bool;
    /// Block an access token's `(iss, jti)` until `until` (exclusive). A no-op when `until <= now`.
    fn block_jti(&self, iss: &str, jti: &str, until: u64, now: u64) -> bool;
    /// Whether `(iss, jti)` is blocked at `now`.
    fn jti_blocked(&self, iss: &str, jti: &str, now: u64) -> bool;
    /// Record a one-time legacy-token use; false if it was already used.
    fn consume_once(&self, key: &str, until: u64, now: u64) -> bool;
    /// Number of rotations a family has gone through.
    fn generation(&self, sid: &str) -> Option<u32>;
    /// Counts.
    fn stats(&self, now: u64) -> StoreStats;
    /// Drop what can no longer matter: families past absolute expiry plus `retain`, expired
    /// blocklist entries, raw grace values past their window.
    fn sweep(&self, now: u64, retain: u64);
}

#[derive(Debug)]
struct Family {
    sub: String,
    absolute_expires_at: u64,
    idle_expires_at: u64,
    revoked: bool,
    current: TokenHash,
    parent: Option<TokenHash>,
    /// Raw current token, kept only while `now < grace_until`.
    grace_raw: Option<RefreshToken>,
    grace_until: u64,
    generation: u32,
    /// Every hash this family ever issued (for the index cleanup).
    hashes: Vec<TokenHash>,
}

impl Family {
    fn info(&self, sid: &str) -> SessionInfo {
        SessionInfo {
            sid: sid.to_string(),
            sub: self.sub.clone(),
            expires_at: self.idle_expires_at.min(self.absolute_expires_at),
            absolute_expires_at: self.absolute_expires_at,
        }
    }

    fn revoke(&mut self) {
        self.revoked = true;
        self.grace_raw = None;
    }
}

#[derive(Debug, Default)]
struct Inner {
    families: HashMap<String, Family>,
    /// token hash → sid, for every token ever issued (so replays of old tokens are recognised).
    index: HashMap<TokenHash, String>,
    blocklist: HashMap<(String, String), u64>,
    once: HashMap<String, u64>,
}

/// The default store: everything in process memory, one mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a family half-rotated (each transition is a
        // few field writes), so recover the guard rather than take the server down.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SessionStore for MemoryStore {
    fn create(&self, s: NewSession) {
        let hash = s.token.hash();
        let absolute = s.now.saturating_add(s.session_max);
        let fam = Family {
            sub: s.sub,
            absolute_expires_at: absolute,
            idle_expires_at: s.now.saturating_add(s.idle_ttl).min(absolute),
            revoked: false,
            current: hash,
            parent: None,
            grace_raw: None,
            grace_until: 0,
            generation: 0,
            hashes: vec![hash],
        };
        let mut g = self.lock();
        g.index.insert(hash, s.sid.clone());
        g.families.insert(s.sid, fam);
    }

    fn refresh(
        &self,
        presented: &TokenHash,
        child: RefreshToken,
        p: RefreshPolicy,
        admit: Admission<'_>,
    ) -> RefreshOutcome {
        let mut guard = self.lock();
        let g = &mut *guard;
        let Some(sid) = g.index.get(presented).cloned() else {
            return RefreshOutcome::Invalid;
        };
        let child_hash = child.hash();
        let Some(fam) = g.families.get_mut(&sid) else {
            return RefreshOutcome::Invalid;
        };
        if fam.revoked || p.now >= fam.absolute_expires_at {
            return RefreshOutcome::Invalid;
        }
        if p.now >= fam.grace_until {
            fam.grace_raw = None;
        }
        if *presented == fam.current {
            if p.now >= fam.idle_expires_at {
                return RefreshOutcome::Invalid;
            }
            if let Err(retry) = admit(&sid) {
                return RefreshOutcome::Limited(retry);
            }
            fam.parent = Some(fam.current);
            fam.current = child_hash;
            fam.grace_until = p.now.saturating_add(p.grace);
            fam.grace_raw = (p.grace > 0).then_some(child);
            fam.idle_expires_at = p
                .now
                .saturating_add(p.idle_ttl)
                .min(fam.absolute_expires_at);
            fam.generation = fam.generation.saturating_add(1);
            fam.hashes.push(child_hash);
            let info = fam.info(&sid);
            g.index.insert(child_hash, sid);
            return RefreshOutcome::Rotated(info);
        }
        if fam.parent.as_ref() == Some(presented) && p.now < fam.grace_until {
            if p.now >= fam.idle_expires_at {
                return RefreshOutcome::Invalid;
            }
            if let Some(raw) = fam.grace_raw.clone() {
                return RefreshOutcome::Grace(fam.info(&sid), raw);
            }
        }
        // An older token, or the parent after the grace window: reuse. Revoke everything.
        fam.revoke();
        RefreshOutcome::Reused(fam.info(&sid))
    }

    fn revoke_by_token(&self, presented: &TokenHash, _now: u64) -> Option<SessionInfo> {
        let mut guard = self.lock();
        let g = &mut *guard;
        let sid = g.index.get(presented).cloned()?;
        let fam = g.families.get_mut(&sid)?;
        let was_live = !fam.revoked;
        fam.revoke();
        was_live.then(|| fam.info(&sid))
    }

    fn revoke_session(&self, sid: &str, _now: u64) -> bool {
        let mut g = self.lock();
        match g.families.get_mut(sid) {
            Some(f) if !f.revoked => {
                f.revoke();
                true
            }
            _ => false,
        }
    }

    fn session_rejected(&self, sid: &str) -> bool {
        self.lock().families.get(sid).is_none_or(|f| f.revoked)
    }

    fn block_jti(&self, iss: &str, jti: &str, until: u64, now: u64) -> bool {
        if until <= now {
            return false;
        }
        let mut g = self.lock();
        let e = g
            .blocklist
            .entry((iss.to_string(), jti.to_string()))
            .or_insert(until);
        *e = (*e).max(until);
        true
    }

    fn jti_blocked(&self, iss: &str, jti: &str, now: u64) -> bool {
        self.lock()
            .blocklist
            .get(&(iss.to_string(), jti.to_string()))
            .is_some_and(|until| now < *until)
    }

    fn consume_once(&self, key: &str, until: u64, now: u64) -> bool {
        let mut g = self.lock();
        match g.once.get(key) {
            Some(u) if now < *u => false,
            _ => {
                g.once.insert(key.to_string(), until);
                true
            }
        }
    }

    fn generation(&self, sid: &str) -> Option<u32> {
        self.lock().families.get(sid).map(|f| f.generation)
    }

    fn stats(&self, now: u64) -> StoreStats {
        let g = self.lock();
        StoreStats {
            live_sessions: g
                .families
                .values()
                .filter(|f| !f.revoked && now < f.absolute_expires_at && now < f.idle_expires_at)
                .count(),
            sessions: g.families.len(),
            blocked_jtis: g.blocklist.values().filter(|u| now < **u).count(),
        }
    }

    fn sweep(&self, now: u64, retain: u64) {
        let mut guard = self.lock();
        let g = &mut *guard;
        let dead: Vec<String> = g
            .families
            .iter()
            .filter(|(_, f)| now >= f.absolute_expires_at.saturating_add(retain))
            .map(|(sid, _)| sid.clone())
            .collect();
        for sid in dead {
            if let Some(f) = g.families.remove(&sid) {
                for h in &f.hashes {
                    g.index.remove(h);
                }
            }
        }
        for f in g.families.values_mut() {
            if now >= f.grace_until {
                f.grace_raw = None;
            }
        }
        g.blocklist.retain(|_, until| now < *until);
        g.once.retain(|_, until| now < *until);
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
    fn store_with_session() -> (MemoryStore, RefreshToken) {
        let s = MemoryStore::new();
        let t0 = RefreshToken::generate();
        s.create(NewSession {
            sid: "s".into(),
            sub: "u".into(),
            token: t0.clone(),
            now: 0,
            idle_ttl: 100,
            session_max: 1000,
        });
        (s, t0)
    }

    #[test]
    fn rotation_grace_and_reuse() {
        let (s, t0) = store_with_session();
        let t1 = RefreshToken::generate();
        assert!(matches!(
            s.refresh(&t0.hash(), t1.clone(), policy(1), &ok),
            RefreshOutcome::Rotated(_)
        ));
        match s.refresh(&t0.hash(), RefreshToken::generate(), policy(5), &ok) {
            RefreshOutcome::Grace(_, cur) => assert_eq!(cur, t1),
            other => panic!("expected grace, got {other:?}"),
        }
        assert_eq!(s.generation("s"), Some(1));
        assert!(matches!(
            s.refresh(&t0.hash(), RefreshToken::generate(), policy(11), &ok),
            RefreshOutcome::Reused(_)
        ));
        assert!(s.session_rejected("s"));
        assert!(matches!(
            s.refresh(&t1.hash(), RefreshToken::generate(), policy(12), &ok),
            RefreshOutcome::Invalid
        ));
    }

    #[test]
    fn raw_child_is_kept_only_for_the_grace_window() {
        let (s, t0) = store_with_session();
        let raw_held = |s: &MemoryStore| {
            s.lock()
                .families
                .get("s")
                .is_some_and(|f| f.grace_raw.is_some())
        };
        assert!(!raw_held(&s), "nothing raw at login");
        assert!(matches!(
            s.refresh(&t0.hash(), RefreshToken::generate(), policy(1), &ok),
            RefreshOutcome::Rotated(_)
        ));
        assert!(raw_held(&s), "held during the window");
        s.sweep(10, 0);
        assert!(raw_held(&s), "window is [1, 11)");
        s.sweep(11, 0);
        assert!(!raw_held(&s), "wiped once the window closes");
    }

    #[test]
    fn limited_rotation_changes_nothing() {
        let (s, t0) = store_with_session();
        let deny = |_: &str| Err(7);
        assert!(matches!(
            s.refresh(&t0.hash(), RefreshToken::generate(), policy(1), &deny),
            RefreshOutcome::Limited(7)
        ));
        assert_eq!(s.generation("s"), Some(0));
        assert!(matches!(
            s.refresh(&t0.hash(), RefreshToken::generate(), policy(2), &ok),
            RefreshOutcome::Rotated(_)
        ));
    }

    #[test]
    fn blocklist_entries_live_exactly_until_their_deadline() {
        let s = MemoryStore::new();
        assert!(
            !s.block_jti("i", "old", 10, 10),
            "already expired is a no-op"
        );
        assert!(!s.jti_blocked("i", "old", 9));
        assert!(s.block_jti("i", "j", 20, 10));
        assert!(s.jti_blocked("i", "j", 19));
        assert!(!s.jti_blocked("i", "j", 20));
        assert!(!s.jti_blocked("other-issuer", "j", 19));
    }
}
