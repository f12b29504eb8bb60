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
//!     // 400/401 with `WWW-Authenticate: Bearer …` or `DPoP …`, or 503 with `Retry-After`.
//!     Err(e) => println!("{} {:?} {e}", e.status(), e.www_authenticate_for("api", &parts.headers)),
//! }
//! # }
//! ```
//!
//! What a request goes through, in order (each step's failure is a [`VerifyError`]):
//! 1. `Authorization: Bearer <b64token>` or `Authorization: DPoP <token>`, exactly one header
//!    (RFC 6750 §2.1, RFC 9449 §7.1; [`token::credentials`]);
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
//! 7. under `Bearer`, a token bound to a DPoP key (`cnf`, RFC 9449 §7.2) is refused; under `DPoP`
//!    (RFC 9449 §7.1) the token must be bound (`cnf.jkt`) and come with exactly one `DPoP` header
//!    holding a proof that [`dpop::verify`] accepts for this request (`typ: dpop+jwt`, ES256, a
//!    public P-256 `jwk`, its signature, `htm` = the method, `htu` = [`DpopConfig::htu_base`] or
//!    `http://` + `Host`, then the path, `iat` within [`DpopConfig::proof_window`], `ath` = the
//!    token's hash), whose key's thumbprint is `cnf.jkt`, and whose `jti` this verifier has not
//!    seen within the window ([`dpop::ReplayCache`], bounded: when full, 503 rather than forget);
//! 8. optionally ([`RevocationCheck`]), the auth server's RFC 7662 introspection answer, cached
//!    for a short time: a token whose session was logged out or revoked is refused.
//!
//! Server nonces (RFC 9449 §8, §9) are not issued here: they are optional at a resource server,
//! and without them a fleet of API instances needs no shared state beyond each one's replay
//! cache. A proof's `nonce` claim, if any, is ignored. The replay cache is per process, like the
//! auth server's: behind a load balancer, a proof replayed to another instance within the window
//! is not caught (keep [`DpopConfig::proof_window`] short).

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

pub use error::{Scheme, VerifyError};
pub use jwks::CachePolicy;
pub use revocation::RevocationCheck;
pub use token::Claims;

use dpop::{ProofError, ReplayCache, ReplayError};
use jwks::{KeyCache, Lookup, PinnedKey};
use revocation::AnswerCache;

/// The request header carrying a DPoP proof (RFC 9449 §4.1).
pub const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");
/// The response header carrying a DPoP server nonce (RFC 9449 §8.1); this verifier issues none,
/// the name is for CORS lists.
pub const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

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

/// DPoP at this resource server (RFC 9449 §7): how proofs are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopConfig {
    /// A proof's `iat` may be this many seconds before or after now, and its `jti` is remembered
    /// this long (default [`dpop::DEFAULT_PROOF_WINDOW_SECS`], as the auth server's
    /// `--dpop-proof-window`).
    pub proof_window: u64,
    /// The scheme, host and path prefix clients address this API with (behind TLS or a
    /// prefix-stripping proxy: `https://api.example.com/v1`), as [`dpop::parse_htu_base`] accepts
    /// it; a proof's `htu` must be this + the request path. `None` (default): `http://` + the
    /// request's `Host` + path.
    pub htu_base: Option<String>,
    /// Most `jti`s remembered at once (default [`dpop::REPLAY_CACHE_MAX`]); beyond it proofs get
    /// [`VerifyError::DpopReplayCacheFull`] (503).
    pub replay_cache_max: usize,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            proof_window: dpop::DEFAULT_PROOF_WINDOW_SECS,
            htu_base: None,
            replay_cache_max: dpop::REPLAY_CACHE_MAX,
        }
    }
}

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
    /// How DPoP-bound tokens and their proofs are checked (default [`DpopConfig::default`]).
    pub dpop: DpopConfig,
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
            .field("dpop", &self.dpop)
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
            dpop: DpopConfig::default(),
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
    /// The `jti`s of the DPoP proofs accepted lately.
    replay: Mutex<ReplayCache>,
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
    /// cannot be built (e.g. the TLS backend fails to initialise) or [`DpopConfig::htu_base`] is
    /// not an absolute http(s) URL without query, fragment or credentials.
    pub fn new(mut cfg: VerifierConfig) -> Result<Self, String> {
        if let Some(base) = &cfg.dpop.htu_base {
            cfg.dpop.htu_base = Some(dpop::parse_htu_base(base)?);
        }
        let replay_cache_max = cfg.dpop.replay_cache_max;
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
            replay: Mutex::new(ReplayCache::new(replay_cache_max)),
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

    /// Authenticate a request by its head (the steps in the crate documentation): the token of
    /// its `Authorization` header ([`token::credentials`]), then [`Verifier::verify_bearer`] under
    /// `Bearer` or [`Verifier::verify_dpop`] under `DPoP`.
    pub async fn authenticate(&self, req: &http::request::Parts) -> Result<Claims, VerifyError> {
        match token::credentials(&req.headers)? {
            (Scheme::Bearer, token) => self.verify_bearer(token).await,
            (Scheme::Dpop, token) => self.verify_dpop(token, req).await,
        }
    }

    /// Verify a bearer access token (the steps in the crate documentation); a DPoP-bound one is
    /// refused ([`VerifyError::DpopBoundAsBearer`]). May wait for one JWKS fetch and one
    /// introspection request, each bounded by [`VerifierConfig::fetch_timeout`].
    pub async fn verify_bearer(&self, token: &str) -> Result<Claims, VerifyError> {
        let claims = self.verify_signed(token).await?;
        if claims.cnf.is_some() {
            return Err(VerifyError::DpopBoundAsBearer);
        }
        self.check_live(token, claims).await
    }

    /// Verify a DPoP-bound access token presented under `Authorization: DPoP` with the proof in
    /// `req`'s single `DPoP` header (RFC 9449 §7.1; the steps in the crate documentation): the
    /// token as [`Verifier::verify_bearer`] does, then its binding ([`VerifyError::NotDpopBound`]),
    /// the proof ([`VerifyError::DpopProof`]), the key ([`VerifyError::DpopKeyMismatch`]), the
    /// `jti` ([`ProofError::Replayed`], or [`VerifyError::DpopReplayCacheFull`]), then the
    /// revocation check. A proof's `jti` is remembered only once everything before it passed.
    pub async fn verify_dpop(
        &self,
        token: &str,
        req: &http::request::Parts,
    ) -> Result<Claims, VerifyError> {
        let claims = self.verify_signed(token).await?;
        let jkt = claims.jkt().ok_or(VerifyError::NotDpopBound)?;
        let mut proofs = req.headers.get_all(DPOP).iter();
        let proof = match (proofs.next(), proofs.next()) {
            (None, _) => return Err(VerifyError::DpopProof(ProofError::Missing)),
            (Some(p), None) => p
                .to_str()
                .map_err(|_| VerifyError::DpopProof(ProofError::Malformed))?,
            (Some(_), Some(_)) => return Err(VerifyError::DpopProof(ProofError::Malformed)),
        };
        let window = self.cfg.dpop.proof_window;
        let htu = dpop::request_htu(
            self.cfg.dpop.htu_base.as_deref(),
            &req.headers,
            req.uri.path(),
        )
        .ok_or(VerifyError::DpopProof(ProofError::HtuMismatch))?;
        let now = (self.cfg.clock)();
        let proof = dpop::verify(
            proof,
            &dpop::Request {
                method: req.method.as_str(),
                uri: &htu,
                now,
                window,
                access_token: Some(token),
            },
        )
        .map_err(VerifyError::DpopProof)?;
        if proof.jkt != jkt {
            tracing::warn!(sub = %claims.sub, sid = ?claims.sid, "dpop_key_mismatch: access token presented with another key");
            return Err(VerifyError::DpopKeyMismatch);
        }
        lock(&self.replay)
            .admit(&proof, window, now)
            .map_err(|e| match e {
                ReplayError::Replayed => {
                    tracing::warn!(sub = %claims.sub, "dpop_proof_replayed");
                    VerifyError::DpopProof(ProofError::Replayed)
                }
                ReplayError::Full => VerifyError::DpopReplayCacheFull,
            })?;
        self.check_live(token, claims).await
    }

    /// The DPoP proof `jti`s remembered now (expired ones included until the next proof).
    pub fn remembered_proofs(&self) -> usize {
        lock(&self.replay).len()
    }

    /// Steps 2 to 6: header, key, algorithm, signature, issuer, audience and time claims.
    async fn verify_signed(&self, token: &str) -> Result<Claims, VerifyError> {
        let header = token::check_header(token, &self.cfg.typ)?;
        let key = self.key_for(&header.kid).await?;
        if header.alg != jwks::alg_name(key.alg) {
            return Err(VerifyError::AlgorithmMismatch);
        }
        let claims = decode(token, &key)?;
        token::check_issuer_audience(&claims, &self.cfg.issuer, &self.cfg.audience)?;
        token::check_times(&claims, self.cfg.leeway, (self.cfg.clock)())?;
        Ok(claims)
    }

    /// Step 8: the revocation check, if configured.
    async fn check_live(&self, token: &str, claims: Claims) -> Result<Claims, VerifyError> {
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

/// DPoP at the resource server (RFC 9449 §7), natively: a verifier whose key cache is filled
/// directly (no JWKS fetch), tokens signed here, a real client key, a manual clock.
#[cfg(test)]
mod dpop_tests {
    use super::*;
    use dpop::tests::{random_id, TestKey};
    use serde_json::{json, Value};

    const NOW: u64 = 1_900_000_000;
    const ISS: &str = "urn:test:issuer";
    const AUD: &str = "urn:test:api";

    struct Fixture {
        verifier: Verifier,
        issuer: TestKey,
        client: TestKey,
        now: Arc<AtomicU64>,
    }

    impl Fixture {
        fn new(dpop: DpopConfig) -> Self {
            let issuer = TestKey::new();
            let mut jwk = issuer.jwk.clone();
            jwk["kid"] = "k1".into();
            let now = Arc::new(AtomicU64::new(NOW));
            let mut cfg = VerifierConfig::new("http://127.0.0.1:9/jwks", ISS, AUD);
            let clock = now.clone();
            cfg.clock = Arc::new(move || clock.load(Ordering::SeqCst));
            cfg.dpop = dpop;
            let verifier = Verifier::new(cfg).expect("verifier");
            let keys =
                jwks::parse_jwks(json!({ "keys": [jwk] }).to_string().as_bytes()).expect("jwks");
            let policy = verifier.cfg.cache;
            lock(&verifier.keys).fetched(keys, Some(3600), NOW, &policy);
            Self {
                verifier,
                issuer,
                client: TestKey::new(),
                now,
            }
        }

        fn now(&self) -> u64 {
            self.now.load(Ordering::SeqCst)
        }

        /// An access token for `sub`, bound to `jkt` when given.
        fn token(&self, jkt: Option<&str>) -> String {
            let mut c = json!({
                "iss": ISS, "aud": AUD, "sub": "alice", "sid": "s1", "jti": random_id(),
                "iat": self.now(), "exp": self.now() + 300,
            });
            if let Some(jkt) = jkt {
                c["cnf"] = json!({ "jkt": jkt });
            }
            self.issuer
                .sign_jws(&json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}), &c)
        }

        fn bound_token(&self) -> String {
            self.token(Some(&self.client.jkt()))
        }

        /// Proof claims for `GET http://api.test/api/me` now, with the `ath` of `token`.
        fn claims(&self, token: &str) -> Value {
            json!({
                "jti": random_id(), "htm": "GET", "htu": "http://api.test/api/me",
                "iat": self.now(), "ath": dpop::ath(token),
            })
        }

        async fn call(
            &self,
            scheme: &str,
            token: &str,
            proofs: &[&str],
        ) -> Result<Claims, VerifyError> {
            self.verifier
                .authenticate(&parts(scheme, token, proofs))
                .await
        }
    }

    /// `GET /api/me` to host `api.test` with `Authorization: <scheme> <token>` and these proofs.
    fn parts(scheme: &str, token: &str, proofs: &[&str]) -> http::request::Parts {
        let mut b = http::Request::builder()
            .method("GET")
            .uri("/api/me?q=1")
            .header(http::header::HOST, "api.test")
            .header(http::header::AUTHORIZATION, format!("{scheme} {token}"));
        for p in proofs {
            b = b.header(DPOP, *p);
        }
        b.body(()).expect("request").into_parts().0
    }

    fn refused(p: ProofError) -> Result<Claims, VerifyError> {
        Err(VerifyError::DpopProof(p))
    }

    #[tokio::test]
    async fn a_bound_token_with_a_proof_of_its_key_is_accepted_once() {
        let f = Fixture::new(DpopConfig::default());
        let at = f.bound_token();
        let proof = f.client.sign(f.claims(&at));
        let claims = f.call("DPoP", &at, &[&proof]).await.expect("accepted");
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.jkt(), Some(f.client.jkt().as_str()));
        assert_eq!(f.verifier.remembered_proofs(), 1);
        // The scheme is case-insensitive; every request needs a fresh proof.
        let fresh = f.client.sign(f.claims(&at));
        assert!(f.call("dpop", &at, &[&fresh]).await.is_ok());
        assert_eq!(
            f.call("DPoP", &at, &[&proof]).await,
            refused(ProofError::Replayed)
        );
    }

    #[tokio::test]
    async fn a_proof_for_another_method_uri_or_token_is_refused() {
        let f = Fixture::new(DpopConfig::default());
        let at = f.bound_token();
        let with = |k: &str, v: Value| {
            let mut c = f.claims(&at);
            c[k] = v;
            f.client.sign(c)
        };
        for (proof, want) in [
            (with("htm", "POST".into()), ProofError::HtmMismatch),
            (
                with("htu", "http://api.test/api/echo".into()),
                ProofError::HtuMismatch,
            ),
            (
                with("htu", "https://api.test/api/me".into()),
                ProofError::HtuMismatch,
            ),
            (
                with("htu", "http://other.test/api/me".into()),
                ProofError::HtuMismatch,
            ),
            (
                with("ath", dpop::ath("another token").into()),
                ProofError::AthMismatch,
            ),
        ] {
            assert_eq!(
                f.call("DPoP", &at, &[&proof]).await,
                refused(want),
                "{want:?}"
            );
        }
        // The query and fragment of the request and of htu do not count.
        let proof = with("htu", "http://API.test:80/api/me?other#f".into());
        assert!(f.call("DPoP", &at, &[&proof]).await.is_ok());
        // Nothing refused was remembered.
        assert_eq!(f.verifier.remembered_proofs(), 1);
    }

    #[tokio::test]
    async fn the_configured_external_base_replaces_the_host() {
        let f = Fixture::new(DpopConfig {
            htu_base: Some("https://api.example.com/v1/".into()),
            ..DpopConfig::default()
        });
        assert_eq!(
            f.verifier.config().dpop.htu_base.as_deref(),
            Some("https://api.example.com/v1")
        );
        let at = f.bound_token();
        let mut c = f.claims(&at);
        assert_eq!(
            f.call("DPoP", &at, &[&f.client.sign(c.clone())]).await,
            refused(ProofError::HtuMismatch),
            "the Host the proxy forwarded to is not what the client addressed"
        );
        c["htu"] = "https://api.example.com/v1/api/me".into();
        assert!(f.call("DPoP", &at, &[&f.client.sign(c)]).await.is_ok());
        let mut bad = VerifierConfig::new("http://127.0.0.1:9/jwks", ISS, AUD);
        bad.dpop.htu_base = Some("https://api.example.com/?x=1".into());
        assert!(Verifier::new(bad).is_err());
    }

    #[tokio::test]
    async fn a_proof_of_another_key_than_cnf_jkt_is_refused() {
        let f = Fixture::new(DpopConfig::default());
        let at = f.bound_token();
        let thief = TestKey::new();
        let proof = thief.sign(f.claims(&at));
        assert_eq!(
            f.call("DPoP", &at, &[&proof]).await,
            Err(VerifyError::DpopKeyMismatch)
        );
        // A proof under the thief's key but naming the client's jwk does not verify.
        let forged = thief.sign_with(
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": f.client.jwk}),
            f.claims(&at),
        );
        assert_eq!(
            f.call("DPoP", &at, &[&forged]).await,
            refused(ProofError::BadSignature)
        );
    }

    #[tokio::test]
    async fn a_stale_or_future_iat_is_refused_and_a_replay_stays_refused() {
        let f = Fixture::new(DpopConfig {
            proof_window: 30,
            ..DpopConfig::default()
        });
        let at = f.bound_token();
        for iat in [NOW - 31, NOW + 31] {
            let mut c = f.claims(&at);
            c["iat"] = iat.into();
            assert_eq!(
                f.call("DPoP", &at, &[&f.client.sign(c)]).await,
                refused(ProofError::IatOutOfWindow),
                "iat {iat}"
            );
        }
        let mut c = f.claims(&at);
        c["iat"] = (NOW - 30).into();
        let proof = f.client.sign(c);
        assert!(f.call("DPoP", &at, &[&proof]).await.is_ok());
        // Replayed within the window: the cache; after it: the iat check.
        f.now.store(NOW, Ordering::SeqCst);
        assert_eq!(
            f.call("DPoP", &at, &[&proof]).await,
            refused(ProofError::Replayed)
        );
        f.now.store(NOW + 1, Ordering::SeqCst);
        assert_eq!(
            f.call("DPoP", &at, &[&proof]).await,
            refused(ProofError::IatOutOfWindow)
        );
    }

    #[tokio::test]
    async fn proofs_with_none_hs256_or_a_private_key_are_refused() {
        let f = Fixture::new(DpopConfig::default());
        let at = f.bound_token();
        let c = f.claims(&at);
        let b64 = |v: &Value| {
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                v.to_string(),
            )
        };
        for alg in ["none", "HS256"] {
            let h = json!({"typ": "dpop+jwt", "alg": alg, "jwk": f.client.jwk});
            let unsigned = format!("{}.{}.c2ln", b64(&h), b64(&c));
            assert_eq!(
                f.call("DPoP", &at, &[&unsigned]).await,
                refused(ProofError::BadAlg),
                "{alg}"
            );
        }
        let mut private = f.client.jwk.clone();
        private["d"] = "AAAA".into();
        let proof = f.client.sign_with(
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
            c.clone(),
        );
        assert_eq!(
            f.call("DPoP", &at, &[&proof]).await,
            refused(ProofError::BadKey)
        );
        let proof = f.client.sign_with(json!({"typ": "JWT", "alg": "ES256"}), c);
        assert_eq!(
            f.call("DPoP", &at, &[&proof]).await,
            refused(ProofError::BadType)
        );
    }

    #[tokio::test]
    async fn schemes_and_bindings_must_agree() {
        let f = Fixture::new(DpopConfig::default());
        let bound = f.bound_token();
        let bearer = f.token(None);
        // A bound token as a bearer token: refused, even with a valid proof beside it.
        let proof = f.client.sign(f.claims(&bound));
        assert_eq!(
            f.call("Bearer", &bound, &[&proof]).await,
            Err(VerifyError::DpopBoundAsBearer)
        );
        // A bearer token under DPoP, even with a valid proof of some key: refused.
        let proof = f.client.sign(f.claims(&bearer));
        assert_eq!(
            f.call("DPoP", &bearer, &[&proof]).await,
            Err(VerifyError::NotDpopBound)
        );
        // The bearer token as a bearer still works; a proof beside it is ignored.
        assert!(f.call("Bearer", &bearer, &[]).await.is_ok());
        // A bound token under DPoP with no proof, or two.
        assert_eq!(
            f.call("DPoP", &bound, &[]).await,
            refused(ProofError::Missing)
        );
        let (p1, p2) = (
            f.client.sign(f.claims(&bound)),
            f.client.sign(f.claims(&bound)),
        );
        assert_eq!(
            f.call("DPoP", &bound, &[&p1, &p2]).await,
            refused(ProofError::Malformed)
        );
        // Token problems come first and stay invalid_token.
        let mut tampered = bound.clone();
        tampered.push('A');
        let proof = f.client.sign(f.claims(&tampered));
        assert_eq!(
            f.call("DPoP", &tampered, &[&proof]).await,
            Err(VerifyError::BadSignature)
        );
    }

    #[tokio::test]
    async fn a_full_replay_cache_refuses_with_503_rather_than_forget() {
        let f = Fixture::new(DpopConfig {
            replay_cache_max: 1,
            ..DpopConfig::default()
        });
        let at = f.bound_token();
        assert!(f
            .call("DPoP", &at, &[&f.client.sign(f.claims(&at))])
            .await
            .is_ok());
        let e = f
            .call("DPoP", &at, &[&f.client.sign(f.claims(&at))])
            .await
            .expect_err("full");
        assert_eq!(e, VerifyError::DpopReplayCacheFull);
        assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after(), Some(error::RETRY_AFTER_SECS));
        // Once the first entry's window is over, there is room again.
        f.now
            .store(NOW + dpop::DEFAULT_PROOF_WINDOW_SECS + 1, Ordering::SeqCst);
        let at = f.bound_token();
        assert!(f
            .call("DPoP", &at, &[&f.client.sign(f.claims(&at))])
            .await
            .is_ok());
    }

    #[test]
    fn refusals_map_to_dpop_challenges() {
        let text = |v: Option<http::HeaderValue>| v.map(|v| v.to_str().expect("ascii").to_string());
        let dpop_req = parts("DPoP", "t", &[]).headers;
        let bearer_req = parts("Bearer", "t", &[]).headers;
        assert_eq!(
            text(VerifyError::DpopProof(ProofError::AthMismatch).www_authenticate_for("api", &bearer_req)),
            Some("DPoP realm=\"api\", error=\"invalid_dpop_proof\", error_description=\"the DPoP proof's ath is not the hash of the access token\", algs=\"ES256\"".into())
        );
        assert_eq!(
            text(VerifyError::DpopKeyMismatch.www_authenticate("api")),
            Some("DPoP realm=\"api\", error=\"invalid_token\", error_description=\"the DPoP proof's key is not the one the token is bound to\", algs=\"ES256\"".into())
        );
        // A token problem: the scheme of the request.
        assert_eq!(
            text(VerifyError::Expired.www_authenticate_for("api", &dpop_req)),
            Some("DPoP realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\", algs=\"ES256\"".into())
        );
        assert_eq!(
            text(VerifyError::Expired.www_authenticate_for("api", &bearer_req)),
            Some("Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\"".into())
        );
        assert_eq!(
            VerifyError::DpopBoundAsBearer
                .www_authenticate_for("api", &bearer_req)
                .map(|v| v.as_bytes().starts_with(b"DPoP ")),
            Some(true)
        );
        assert_eq!(
            VerifyError::DpopReplayCacheFull.www_authenticate("api"),
            None
        );
        assert_eq!(
            VerifyError::DpopProof(ProofError::Replayed).error_code(),
            Some("invalid_dpop_proof")
        );
        assert_eq!(
            VerifyError::NotDpopBound.error_code(),
            Some("invalid_token")
        );
    }
}
