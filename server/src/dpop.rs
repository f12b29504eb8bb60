//! DPoP (RFC 9449) state of the auth server: its mode (`--dpop`), its nonces and its replay cache.
//!
//! The proof rules themselves (verification, thumbprint, `ath`, `htu` normalisation, the bounded
//! replay cache) are the resource-server library's [`token_verifier::dpop`], re-exported here: one
//! implementation for the auth server and the APIs that verify its tokens. What only the auth
//! server has is here: [`DpopMode`], the server nonces ([`NonceIssuer`], RFC 9449 §8) and
//! [`DpopState`]. The HTTP glue (which header, which status, which challenge) is in
//! `routes/dpop.rs`.

pub use crate::dpop_nonce::NonceIssuer;
pub use token_verifier::dpop::{
    ath, iat_in_window, normalise_htu, parse_htu_base, request_htu, thumbprint, verify,
    verify_except_iat, Proof, ProofError, ReplayCache, ReplayError, Request, ALGS,
    DEFAULT_PROOF_WINDOW_SECS, MAX_JTI_LEN, MAX_PROOF_LEN, PROOF_TYP, REPLAY_CACHE_MAX,
};

/// Default `--dpop-nonce-rotate`: a server nonce is current this many seconds, then accepted for as
/// long again as the previous one. A proof's `jti` is remembered while its nonce is accepted (at
/// most three periods), so this bounds the replay cache's churn: with [`REPLAY_CACHE_MAX`] entries,
/// about 555 proofs/s per instance at 60 s.
pub const DEFAULT_NONCE_ROTATE_SECS: u64 = 60;

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

/// The server's DPoP state: its nonces ([`NonceIssuer`], stateless: instances sharing the
/// key-encryption key issue and accept the same ones) and its replay cache, behind a lock held only
/// for a map operation (never across an `.await`). The replay cache is per process.
#[derive(Debug)]
pub struct DpopState {
    nonces: NonceIssuer,
    replay: std::sync::Mutex<ReplayCache>,
}

impl DpopState {
    /// Nonces from `nonces` and an empty cache of [`REPLAY_CACHE_MAX`] entries.
    pub fn new(nonces: NonceIssuer) -> Self {
        Self::with_capacity(nonces, REPLAY_CACHE_MAX)
    }

    /// As [`DpopState::new`] with a cache of at most `max` entries.
    pub fn with_capacity(nonces: NonceIssuer, max: usize) -> Self {
        Self {
            nonces,
            replay: std::sync::Mutex::new(ReplayCache::new(max)),
        }
    }

    fn replay(&self) -> std::sync::MutexGuard<'_, ReplayCache> {
        self.replay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The nonce to send in `DPoP-Nonce` at `now`.
    pub fn nonce(&self, now: u64) -> String {
        self.nonces.current(now)
    }

    /// If `nonce` was issued lately, when it stops being accepted ([`NonceIssuer::accepted_until`]).
    pub fn nonce_accepted_until(&self, nonce: &str, now: u64) -> Option<u64> {
        self.nonces.accepted_until(nonce, now)
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
