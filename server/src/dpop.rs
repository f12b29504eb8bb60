//! DPoP (RFC 9449) state of the auth server: its mode (`--dpop`), its nonces and its replay cache.
//!
//! The proof rules themselves (verification, thumbprint, `ath`, `htu` normalisation, the bounded
//! replay cache) are the resource-server library's [`token_verifier::dpop`], re-exported here: one
//! implementation for the auth server and the APIs that verify its tokens. What only the auth
//! server has is here: [`DpopMode`], the server nonces ([`Nonces`], RFC 9449 §8) and
//! [`DpopState`]. The HTTP glue (which header, which status, which challenge) is in
//! `routes/dpop.rs`.

pub use token_verifier::dpop::{
    ath, iat_in_window, normalise_htu, parse_htu_base, request_htu, thumbprint, verify,
    verify_except_iat, Proof, ProofError, ReplayCache, ReplayError, Request, ALGS,
    DEFAULT_PROOF_WINDOW_SECS, MAX_JTI_LEN, MAX_PROOF_LEN, PROOF_TYP, REPLAY_CACHE_MAX,
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
        self.accepted_until(nonce, now).is_some()
    }

    /// When `nonce` is accepted at `now` (the current or the previous value): the time from which
    /// it will never be accepted again (exclusive bound), else `None`. Rotation is lazy (at the
    /// first call at or after `rotated_at + every`), so: the previous value is accepted until
    /// that rotation, before `rotated_at + every`; the current one becomes previous at a rotation
    /// before `rotated_at + 2 * every` (later, it is dropped) and is then accepted for less than one
    /// more period, so before `rotated_at + 3 * every`.
    pub fn accepted_until(&mut self, nonce: &str, now: u64) -> Option<u64> {
        self.catch_up(now);
        if nonce == self.current {
            Some(self.rotated_at.saturating_add(self.every.saturating_mul(3)))
        } else if self.previous.as_deref() == Some(nonce) {
            Some(self.rotated_at.saturating_add(self.every))
        } else {
            None
        }
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

    /// If `nonce` was issued lately, when it stops being accepted ([`Nonces::accepted_until`]).
    pub fn nonce_accepted_until(&self, nonce: &str, now: u64) -> Option<u64> {
        self.nonces().accepted_until(nonce, now)
    }

    /// Remember the proof's `jti` until `deadline`, the end of its nonce's acceptance (see
    /// [`ReplayCache::admit_until`]).
    pub fn admit_until(&self, proof: &Proof, deadline: u64, now: u64) -> Result<(), ReplayError> {
        self.replay().admit_until(proof, deadline, now)
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

    #[test]
    fn a_nonce_is_never_accepted_at_or_after_the_bound_it_was_given() {
        // Whatever the requests' times, every later acceptance falls before the bound given
        // at any earlier one: the replay cache keeps an entry that long.
        for step in [1, 7, 50, 99, 100, 101, 150, 199, 250] {
            let mut n = Nonces::new(0, 100);
            let mut bounds: Vec<(String, u64)> = Vec::new();
            let mut now = 0;
            while now < 2000 {
                let current = n.current(now);
                for (nonce, until) in &bounds {
                    if n.accepts(nonce, now) {
                        assert!(
                            now < *until,
                            "step {step}: accepted at {now}, bound {until}"
                        );
                    }
                }
                let until = n
                    .accepted_until(&current, now)
                    .expect("current is accepted");
                bounds.push((current, until));
                now += step;
            }
        }
        let mut n = Nonces::new(1000, 300);
        let first = n.current(1000);
        assert_eq!(n.accepted_until(&first, 1000), Some(1900));
        n.current(1300);
        assert_eq!(n.accepted_until(&first, 1300), Some(1600));
        assert_eq!(n.accepted_until("made-up", 1300), None);
    }
}
