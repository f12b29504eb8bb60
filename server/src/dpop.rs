//! DPoP (RFC 9449) state of the auth server: its mode (`--dpop`), its nonces and its replay cache.
//!
//! The proof rules themselves (verification, thumbprint, `ath`, `htu` normalisation, the bounded
//! replay cache) are the resource-server library's [`token_verifier::dpop`], re-exported here: one
//! implementation for the auth server and the APIs that verify its tokens. What only the auth
//! server has is here: [`DpopMode`], the server nonces ([`Nonces`], RFC 9449 §8) and
//! [`DpopState`]. The HTTP glue (which header, which status, which challenge) is in
//! `routes/dpop.rs`.

pub use token_verifier::dpop::{
    ath, normalise_htu, parse_htu_base, request_htu, thumbprint, verify, Proof, ProofError,
    ReplayCache, ReplayError, Request, ALGS, DEFAULT_PROOF_WINDOW_SECS, MAX_JTI_LEN, MAX_PROOF_LEN,
    PROOF_TYP, REPLAY_CACHE_MAX,
};

/// Default `--dpop-nonce-rotate`: a server nonce is current this many seconds, then accepted for as
/// long again as the previous one.
pub const DEFAULT_NONCE_ROTATE_SECS: u64 = 300;

/// `--dpop`: whether DPoP proofs are ignored, accepted or demanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DpopMode {
    /// No DPoP: the `DPoP` header is ignored and every token is a bearer token (as before DPoP).
    #[default]
    Off,
    /// A valid proof at login binds the session to its key; requests without one get bearer tokens.
    Allowed,
    /// Login and refresh without a valid proof are refused: every token is DPoP-bound.
    Required,
}

/// Server-issued nonces (RFC 9449 §8): one current value, replaced every `every` seconds; the
/// one it replaced stays accepted until the next replacement, so a client that fetched a nonce
/// just before a rotation is not refused. Values are 128 random bits, base64url.
#[derive(Debug, Clone)]
pub struct Nonces {
    every: u64,
    current: String,
    previous: Option<String>,
    rotated_at: u64,
}

impl Nonces {
    /// Nonces starting at `now`, rotating every `every` seconds (at least 1).
    pub fn new(now: u64, every: u64) -> Self {
        Self {
            every: every.max(1),
            current: crate::tokens::random_id(),
            previous: None,
            rotated_at: now,
        }
    }

    fn catch_up(&mut self, now: u64) {
        if now >= self.rotated_at.saturating_add(self.every) {
            let fresh = crate::tokens::random_id();
            // After two periods or more without a request, the old current one is stale as well.
            self.previous = (now < self.rotated_at.saturating_add(2 * self.every))
                .then(|| std::mem::replace(&mut self.current, fresh.clone()));
            self.current = fresh;
            self.rotated_at = now;
        }
    }

    /// The nonce to hand out at `now` (rotating first if one is due).
    pub fn current(&mut self, now: u64) -> String {
        self.catch_up(now);
        self.current.clone()
    }

    /// Whether `nonce` is the current or the previous value at `now`.
    pub fn accepts(&mut self, nonce: &str, now: u64) -> bool {
        self.catch_up(now);
        nonce == self.current || self.previous.as_deref() == Some(nonce)
    }
}

/// The server's DPoP state: its nonces and its replay cache, each behind a lock held only for a
/// map operation (never across an `.await`). Per process: instances behind one load balancer each
/// issue their own nonces and remember their own `jti`s.
#[derive(Debug)]
pub struct DpopState {
    nonces: std::sync::Mutex<Nonces>,
    replay: std::sync::Mutex<ReplayCache>,
}

impl DpopState {
    /// Fresh nonces (rotating every `nonce_every` seconds) and an empty cache of
    /// [`REPLAY_CACHE_MAX`] entries.
    pub fn new(now: u64, nonce_every: u64) -> Self {
        Self::with_capacity(now, nonce_every, REPLAY_CACHE_MAX)
    }

    /// As [`DpopState::new`] with a cache of at most `max` entries.
    pub fn with_capacity(now: u64, nonce_every: u64, max: usize) -> Self {
        Self {
            nonces: std::sync::Mutex::new(Nonces::new(now, nonce_every)),
            replay: std::sync::Mutex::new(ReplayCache::new(max)),
        }
    }

    fn nonces(&self) -> std::sync::MutexGuard<'_, Nonces> {
        self.nonces.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn replay(&self) -> std::sync::MutexGuard<'_, ReplayCache> {
        self.replay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The nonce to send in `DPoP-Nonce` at `now`.
    pub fn nonce(&self, now: u64) -> String {
        self.nonces().current(now)
    }

    /// Whether `nonce` was issued lately (current or previous value).
    pub fn nonce_accepted(&self, nonce: &str, now: u64) -> bool {
        self.nonces().accepts(nonce, now)
    }

    /// Remember the proof's `jti` (see [`ReplayCache::admit`]).
    pub fn admit(&self, proof: &Proof, window: u64, now: u64) -> Result<(), ReplayError> {
        self.replay().admit(proof, window, now)
    }

    /// `jti`s remembered now.
    pub fn remembered(&self) -> usize {
        self.replay().len()
    }

    /// Drop expired `jti`s (the maintenance task, every second).
    pub fn sweep(&self, now: u64) {
        self.replay().sweep(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_rotate_and_the_previous_one_stays_valid_for_one_period() {
        let mut n = Nonces::new(1000, 300);
        let first = n.current(1000);
        assert!(n.accepts(&first, 1299));
        assert_eq!(n.current(1299), first);
        let second = n.current(1300);
        assert_ne!(second, first);
        assert!(
            n.accepts(&first, 1300),
            "the previous nonce is still accepted"
        );
        assert!(n.accepts(&second, 1599));
        let third = n.current(1600);
        assert!(!n.accepts(&first, 1600), "two rotations later it is stale");
        assert!(n.accepts(&second, 1600));
        assert!(!n.accepts("made-up", 1600));
        // A long quiet period: both old values are stale at once.
        assert!(!n.accepts(&third, 1600 + 600));
        assert!(!n.accepts(&second, 1600 + 600));
    }
}
