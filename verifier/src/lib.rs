//! Verification of the auth server's access tokens by the APIs that consume them, through its
//! published JWKS (the "API gateway authorizer" of the design documents).
//!
//! ```no_run
//! # async fn demo(parts: http::request::Parts) {
//! use token_verifier::{Verifier, VerifierConfig};
//! let verifier = Verifier::new(VerifierConfig::new(
//!     "http://127.0.0.1:8080/.well-known/jwks.json",
//!     "urn:wasm-token-manager:auth-server", // iss
//!     "urn:wasm-token-manager:api",         // aud
//! ))
//! .expect("an HTTP client");
//! match verifier.authenticate(&parts).await {
//!     Ok(claims) => println!("{} in session {:?}", claims.sub, claims.sid),
//!     // 400/401 with `WWW-Authenticate: Bearer …`, or 503 with `Retry-After`.
//!     Err(e) => println!("{} {:?} {e}", e.status(), e.www_authenticate("api")),
//! }
//! # }
//! ```
//!
//! What a request goes through, in order (each step's failure is a [`VerifyError`]):
//! 1. `Authorization: Bearer <b64token>`, exactly one header (RFC 6750 §2.1);
//! 2. shape and header: at most 8 KiB, compact JWS, `typ` the access-token type (`at+jwt`,
//!    RFC 9068), an asymmetric `alg`, a `kid`, no `crit` ([`token::check_header`]);
//! 3. the key for the `kid` from the cached JWKS ([`jwks::KeyCache`]): the set is fetched over
//!    HTTP and used for as long as its `Cache-Control: max-age` says (less `Age`), clamped to
//!    [`CachePolicy`]'s floor and ceiling; an unknown `kid` refetches at most once per
//!    [`CachePolicy::refetch_interval`], so forged `kid`s cannot cause a fetch storm; once the set's
//!    lifetime is over and the endpoint does not answer, every request fails closed (503);
//! 4. the header's `alg` must be the algorithm pinned for that key (from the JWK's
//!    `kty`/`crv`/`alg`, [`jwks::pin_algorithm`]): `none`, HS256 keyed with the public key, or any
//!    other mismatch is refused (RFC 8725 §3.1);
//! 5. the signature, by `jsonwebtoken` (RustCrypto backend);
//! 6. the claims ([`Claims`]): `iss`, `aud`, then `exp`/`nbf`/`iat` with the leeway, on the
//!    injected clock;
//! 7. a token bound to a DPoP key (`cnf`, RFC 9449) is refused as a bearer token;
//! 8. optionally ([`RevocationCheck`]), the auth server's RFC 7662 introspection answer, cached
//!    for a short time: a token whose session was logged out or revoked is refused.
//!
//! DPoP (RFC 9449) is not verified yet: `Authorization: DPoP …` counts as no bearer credentials
//! and a DPoP-bound token presented as a bearer is refused. [`Verifier::authenticate`] takes the
//! whole request head so that a proof (`DPoP` header, `htm`, `htu`) can be checked there later
//! without changing its signature.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod dpop;
pub mod error;
pub mod jwks;
pub mod revocation;
pub mod token;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::Validation;

pub use error::VerifyError;
pub use jwks::CachePolicy;
pub use revocation::RevocationCheck;
pub use token::Claims;

use jwks::{KeyCache, Lookup, PinnedKey};
use revocation::AnswerCache;

/// The current time in whole seconds since the Unix epoch (JWT NumericDate). Injected so tests
/// can share the auth server's manual clock.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

/// Default leeway on `exp`/`nbf`/`iat`, seconds (the auth server's own default).
pub const DEFAULT_LEEWAY: u64 = 30;
/// Default [`CachePolicy::refetch_interval`], seconds.
pub const DEFAULT_REFETCH_INTERVAL: u64 = 10;
/// Default [`CachePolicy::max_lifetime`], seconds (one day).
pub const DEFAULT_MAX_LIFETIME: u64 = 86_400;
/// Default timeout of one JWKS or introspection request.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The access-token `typ` the auth server sets (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Everything a [`Verifier`] needs.
#[derive(Clone)]
pub struct VerifierConfig {
    /// The auth server's JWKS URL (`GET`, e.g. `http://127.0.0.1:8080/.well-known/jwks.json`).
    /// `https://` needs the crate's `rustls` feature. Proxies from the environment are not used.
    pub jwks_url: String,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// A value `aud` must contain: this API's audience.
    pub audience: String,
    /// The header `typ` every token must carry (default [`ACCESS_TOKEN_TYP`]).
    pub typ: String,
    /// Leeway on the time claims, seconds (default [`DEFAULT_LEEWAY`]).
    pub leeway: u64,
    /// The JWKS cache's lifetime floor and ceiling and the refetch interval (defaults: floor 0,
    /// so the refetch interval, ceiling [`DEFAULT_MAX_LIFETIME`], interval [`DEFAULT_REFETCH_INTERVAL`]).
    pub cache: CachePolicy,
    /// Timeout of each JWKS or introspection request (default [`DEFAULT_FETCH_TIMEOUT`]).
    pub fetch_timeout: Duration,
    /// The optional revocation check (default none).
    pub revocation: Option<RevocationCheck>,
    /// The clock (default [`system_clock`]).
    pub clock: Clock,
}

impl std::fmt::Debug for VerifierConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierConfig")
            .field("jwks_url", &self.jwks_url)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("typ", &self.typ)
            .field("leeway", &self.leeway)
            .field("cache", &self.cache)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("revocation", &self.revocation)
            .finish_non_exhaustive()
    }
}

impl VerifierConfig {
    /// A configuration with the defaults above.
    pub fn new(
        jwks_url: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            jwks_url: jwks_url.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            typ: ACCESS_TOKEN_TYP.into(),
            leeway: DEFAULT_LEEWAY,
            cache: CachePolicy {
                min_lifetime: 0,
                max_lifetime: DEFAULT_MAX_LIFETIME,
                refetch_interval: DEFAULT_REFETCH_INTERVAL,
            },
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            revocation: None,
            clock: system_clock(),
        }
    }
}

/// Counters since the verifier was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// JWKS requests started.
    pub jwks_fetches: u64,
    /// JWKS requests that failed (network, status, size, not a JWKS).
    pub jwks_fetch_failures: u64,
    /// Introspection requests started.
    pub introspections: u64,
}

/// Verifies access tokens against the auth server's JWKS. Share one per process (`Arc`): it holds
/// the key cache, the fetch schedule and the HTTP client. Concurrent requests that need a fetch
/// share one.
pub struct Verifier {
    cfg: VerifierConfig,
    http: reqwest::Client,
    keys: Mutex<KeyCache>,
    /// Held while a JWKS fetch is in flight (single flight).
    fetching: tokio::sync::Mutex<()>,
    answers: Mutex<AnswerCache>,
    jwks_fetches: AtomicU64,
    jwks_fetch_failures: AtomicU64,
    introspections: AtomicU64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.cfg)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Verifier {
    /// A verifier; nothing is fetched until the first token arrives. Errors when the HTTP client
    /// cannot be built (e.g. the TLS backend fails to initialise).
    pub fn new(cfg: VerifierConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(cfg.fetch_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            cfg,
            http,
            keys: Mutex::new(KeyCache::default()),
            fetching: tokio::sync::Mutex::new(()),
            answers: Mutex::new(AnswerCache::default()),
            jwks_fetches: AtomicU64::new(0),
            jwks_fetch_failures: AtomicU64::new(0),
            introspections: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.cfg
    }

    /// Counters since the verifier was built.
    pub fn stats(&self) -> Stats {
        Stats {
            jwks_fetches: self.jwks_fetches.load(Ordering::Relaxed),
            jwks_fetch_failures: self.jwks_fetch_failures.load(Ordering::Relaxed),
            introspections: self.introspections.load(Ordering::Relaxed),
        }
    }

    /// The `kid`s of the key set held now (none before the first fetch).
    pub fn cached_kids(&self) -> Vec<String> {
        lock(&self.keys).kids()
    }

    /// Authenticate a request by its head: the bearer token of its `Authorization` header
    /// ([`token::bearer_token`]), then [`Verifier::verify_bearer`]. The method and URI are not
    /// read yet (they will be for DPoP proofs).
    pub async fn authenticate(&self, req: &http::request::Parts) -> Result<Claims, VerifyError> {
        let token = token::bearer_token(&req.headers)?;
        self.verify_bearer(token).await
    }

    /// Verify a bearer access token (the steps in the crate documentation). May wait for one JWKS
    /// fetch and one introspection request, each bounded by [`VerifierConfig::fetch_timeout`].
    pub async fn verify_bearer(&self, token: &str) -> Result<Claims, VerifyError> {
        let header = token::check_header(token, &self.cfg.typ)?;
        let key = self.key_for(&header.kid).await?;
        if header.alg != jwks::alg_name(key.alg) {
            return Err(VerifyError::AlgorithmMismatch);
        }
        let claims = decode(token, &key)?;
        token::check_issuer_audience(&claims, &self.cfg.issuer, &self.cfg.audience)?;
        token::check_times(&claims, self.cfg.leeway, (self.cfg.clock)())?;
        if claims.cnf.is_some() {
            return Err(VerifyError::DpopBoundAsBearer);
        }
        if let Some(check) = &self.cfg.revocation {
            self.check_revocation(check, token, &claims).await?;
        }
        Ok(claims)
    }

    async fn key_for(&self, kid: &str) -> Result<Arc<PinnedKey>, VerifyError> {
        let policy = self.cfg.cache;
        let decide = |may_fetch: bool| {
            let now = (self.cfg.clock)();
            lock(&self.keys).lookup(kid, now, &policy, may_fetch)
        };
        let answer = |l: Lookup| match l {
            Lookup::Key(k) => Some(Ok(k)),
            Lookup::Unknown => Some(Err(VerifyError::UnknownKey)),
            Lookup::Unavailable => Some(Err(VerifyError::KeysUnavailable)),
            Lookup::Fetch => None,
        };
        if let Some(a) = answer(decide(true)) {
            return a;
        }
        let _single_flight = self.fetching.lock().await;
        // Another request may have fetched while this one waited: ask again.
        if let Some(a) = answer(decide(true)) {
            return a;
        }
        let started = (self.cfg.clock)();
        self.jwks_fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetch_jwks().await {
            Ok((keys, fresh)) => {
                tracing::debug!(keys = keys.len(), max_age = ?fresh, "JWKS fetched");
                lock(&self.keys).fetched(keys, fresh, started, &policy);
            }
            Err(why) => {
                self.jwks_fetch_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(reason = why, "JWKS fetch failed");
                lock(&self.keys).failed(started);
            }
        }
        answer(decide(false)).unwrap_or(Err(VerifyError::KeysUnavailable))
    }

    async fn fetch_jwks(
        &self,
    ) -> Result<(HashMap<String, Arc<PinnedKey>>, Option<u64>), &'static str> {
        let resp = self
            .http
            .get(&self.cfg.jwks_url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|_| "JWKS endpoint unreachable or timed out")?;
        if resp.status() != http::StatusCode::OK {
            return Err("JWKS endpoint answered a status other than 200");
        }
        let fresh = jwks::freshness(resp.headers());
        let body = read_limited(resp, jwks::MAX_JWKS_BYTES).await?;
        Ok((jwks::parse_jwks(&body)?, fresh))
    }

    async fn check_revocation(
        &self,
        check: &RevocationCheck,
        token: &str,
        claims: &Claims,
    ) -> Result<(), VerifyError> {
        let cached = lock(&self.answers).get(&claims.jti, (self.cfg.clock)());
        let active = match cached {
            Some(a) => a,
            None => {
                self.introspections.fetch_add(1, Ordering::Relaxed);
                let active = self.introspect(check, token).await.map_err(|why| {
                    tracing::warn!(reason = why, "revocation check failed");
                    VerifyError::RevocationUnavailable
                })?;
                let now = (self.cfg.clock)();
                let until = if active {
                    now.saturating_add(check.cache_ttl)
                } else {
                    claims.exp.saturating_add(self.cfg.leeway)
                };
                lock(&self.answers).put(&claims.jti, active, until, now);
                active
            }
        };
        if active {
            Ok(())
        } else {
            Err(VerifyError::Revoked)
        }
    }

    /// RFC 7662 §2.1: `POST token=…&token_type_hint=access_token`; `Ok(active)` from a 200 JSON
    /// object with a boolean `active`.
    async fn introspect(&self, check: &RevocationCheck, token: &str) -> Result<bool, &'static str> {
        // The token passed the compact-JWS shape check: base64url and dots, nothing to escape.
        let body = format!("token={token}&token_type_hint=access_token");
        let resp = self
            .http
            .post(&check.introspection_url)
            .bearer_auth(&check.secret)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|_| "introspection endpoint unreachable or timed out")?;
        if resp.status() != http::StatusCode::OK {
            return Err("introspection endpoint answered a status other than 200");
        }
        let body = read_limited(resp, 64 * 1024).await?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| "introspection answer is not JSON")?;
        v.get("active")
            .and_then(serde_json::Value::as_bool)
            .ok_or("introspection answer without a boolean active")
    }
}

/// Signature (and claim decoding) by `jsonwebtoken`, with the key's pinned algorithm only. Its
/// own time and audience checks are off: ours use the injected clock ([`token::check_times`]).
fn decode(token: &str, key: &PinnedKey) -> Result<Claims, VerifyError> {
    let mut v = Validation::new(key.alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v.leeway = 0;
    jsonwebtoken::decode::<Claims>(token, &key.key, &v)
        .map(|d| d.claims)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidRsaKey(_) => {
                    VerifyError::BadSignature
                }
                K::InvalidAlgorithm | K::InvalidAlgorithmName => VerifyError::AlgorithmMismatch,
                K::Base64(_) | K::InvalidToken | K::Utf8(_) => VerifyError::Malformed,
                _ => VerifyError::BadClaims,
            }
        })
}

async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, &'static str> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err("answer too large");
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|_| "answer cut off")? {
        if body.len() + chunk.len() > limit {
            return Err("answer too large");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
