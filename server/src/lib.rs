//! Reference auth server for wasm-token-manager.
//!
//! ES256 access tokens (`typ: at+jwt`, short-lived, verified against a rotating key ring) and opaque
//! 256-bit refresh tokens in an `HttpOnly; Secure; SameSite=Strict; Path=/auth` cookie, rotated on
//! every use with reuse detection, a reuse grace window for the immediate parent, idle and absolute
//! session expiry, logout with session-wide revocation, CSRF checks, rate limits and metrics.
//! See `server/README.md` for the HTTP contract and the design choices.
//!
//! The binary is a thin shell over [`start`]; tests start the same server in-process on
//! `127.0.0.1:0` with a [`clock::ManualClock`].

#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod clientip;
pub mod clock;
pub mod config;
pub mod dpop;
pub mod dpop_nonce;
pub mod family;
pub mod kek;
pub mod keys;
pub mod legacy;
pub mod metrics;
mod middleware;
pub mod ratelimit;
pub mod redis_store;
mod routes;
mod serve;
pub mod store;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::Config;
use crate::keys::KeyError;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::ratelimit::Limits;
use crate::store::{MemoryStore, Retention, SessionStore, StoreError};
use crate::tokens::{AccessClaims, VerifyError};

/// Everything the handlers share.
pub struct AppState {
    /// Resolved configuration.
    pub config: Config,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    /// Signing and verification keys.
    pub keys: RwLock<KeyRing>,
    /// The legacy-token migration: key, phase, counters (never in the JWKS).
    pub migration: legacy::Migration,
    /// Sessions, revocations, blocklist.
    pub store: Arc<dyn SessionStore>,
    /// Counters.
    pub metrics: Metrics,
    /// Rate limiters.
    pub limits: Limits,
    /// Server start (clock time); legacy tokens must be issued before it.
    pub started_at: u64,
    /// Request-body bytes that may still be buffered (`--max-buffered-bytes`), one permit a byte.
    pub body_budget: Arc<tokio::sync::Semaphore>,
    /// DPoP server nonces and `jti` replay cache (`--dpop`).
    pub dpop: dpop::DpopState,
    /// SHA-256 of the `--introspection-secret-file` secret; `None`: no `/auth/introspect`.
    pub introspection_secret: Option<[u8; 32]>,
    fail_refresh_until: AtomicU64,
    /// The key ring shared through Redis (`--store redis://…`); `None`: this process's own ring.
    shared_keys: Option<redis_store::SharedKeys>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why the server could not be built from its configuration.
#[derive(Debug)]
pub enum StartError {
    /// A flag's value is invalid (the message names it).
    Config(String),
    /// No signing key could be generated.
    Keys(KeyError),
    /// The legacy-migration settings are invalid.
    Legacy(legacy::LegacyError),
    /// The key-encryption key file cannot be used (`--key-encryption-key-file`).
    Kek(kek::KekError),
    /// The shared store (`--store redis://…`) cannot be used: unreachable, an evicting
    /// `maxmemory-policy`, or a key ring that does not open (the message says which).
    Store(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(m) => f.write_str(m),
            Self::Legacy(e) => write!(f, "{e}"),
            Self::Keys(e) => write!(f, "signing key: {e}"),
            Self::Kek(e) => write!(f, "--key-encryption-key-file: {e}"),
            Self::Store(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StartError {}

/// Why an access token could not be minted.
#[derive(Debug)]
pub enum MintError {
    /// No key signs at this instant (cannot happen with a ring built by [`KeyRing::new`]).
    NoSigningKey,
    /// The JWT library refused to sign.
    Sign(jsonwebtoken::errors::Error),
}

impl std::fmt::Display for MintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSigningKey => f.write_str("no signing key"),
            Self::Sign(e) => write!(f, "signing failed: {e}"),
        }
    }
}

impl std::error::Error for MintError {}

/// Why [`AppState::authenticate`] refused a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// The token's fault: invalid, expired or revoked (answer 401 `invalid_token`).
    Rejected(VerifyError),
    /// The session store could not answer (answer 503: fail closed).
    Store(StoreError),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Shared handle to the state.
pub type SharedState = Arc<AppState>;

impl AppState {
    /// Build the state: a fresh key ring, a legacy key, limiters.
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        store: Arc<dyn SessionStore>,
    ) -> Result<Self, StartError> {
        config::parse_cookie_path(&config.cookie_path).map_err(StartError::Config)?;
        config::parse_cookie_name(&config.cookie_name).map_err(StartError::Config)?;
        config::check_cookie_prefix(
            &config.cookie_name,
            !config.insecure_cookie,
            &config.cookie_path,
        )
        .map_err(StartError::Config)?;
        let now = clock.now();
        let keys = KeyRing::new(now).map_err(StartError::Keys)?;
        let migration = legacy::Migration::new(
            &config.legacy,
            config.demo,
            config.legacy_cohort_percent,
            now.saturating_add(config.legacy_sunset),
            now,
        )
        .map_err(StartError::Legacy)?;
        let limits = Limits::new(
            config.login_rate_per_min,
            config.refresh_rate_per_min,
            config.refresh_ip_rate_per_5min,
        );
        let introspection_secret = match &config.introspection_secret_file {
            Some(p) => Some(tokens::sha256(&legacy::read_secret_file(p).map_err(
                |e| StartError::Config(format!("--introspection-secret-file: {e}")),
            )?)),
            None => None,
        };
        let budget = usize::try_from(config.max_buffered_bytes)
            .unwrap_or(usize::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        if let Some(base) = &config.dpop_htu_base {
            config::parse_htu_base(base).map_err(StartError::Config)?;
        }
        Ok(Self {
            dpop: dpop::DpopState::new(dpop::NonceIssuer::random(config.dpop_nonce_rotate)),
            body_budget: Arc::new(tokio::sync::Semaphore::new(budget)),
            introspection_secret,
            config,
            clock,
            keys: RwLock::new(keys),
            migration,
            store,
            metrics: Metrics::default(),
            limits,
            started_at: now,
            fail_refresh_until: AtomicU64::new(0),
            shared_keys: None,
        })
    }

    /// Current time from the injected clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// How long after a key stops signing it must still verify: access-token lifetime + leeway.
    pub fn retire_after(&self) -> u64 {
        self.config.access_ttl.saturating_add(self.config.leeway)
    }

    fn keys_read(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    fn keys_write(&self) -> std::sync::RwLockWriteGuard<'_, KeyRing> {
        self.keys.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a key rotation now (see [`KeyRing::rotate`]). Returns the new kid.
    pub fn rotate_keys(&self) -> Result<String, KeyError> {
        let now = self.now();
        let lead = self.config.jwks_max_age;
        let retire = self.retire_after();
        self.keys_write().rotate(now, lead, retire)
    }

    /// With the shared ring: start a rotation now if this instance holds the rotation lease
    /// (see [`redis_store::SharedKeys::tick`]), and reload the ring. Returns the new kid, or
    /// `None` without a shared ring, without the lease, or with a rotation already pending.
    pub async fn rotate_shared_keys(&self) -> Result<Option<String>, redis_store::SharedKeysError> {
        let Some(shared) = &self.shared_keys else {
            return Ok(None);
        };
        let schedule = redis_store::Schedule {
            rotate_every: self.config.key_rotate_every,
            publish_lead: self.config.jwks_max_age,
            retire_after: self.retire_after(),
        };
        let (ring, started) = shared.tick(self.now(), schedule, true).await?;
        *self.keys_write() = ring;
        Ok(started)
    }

    /// Retire a key immediately (compromise). Returns false if unknown or the only signer.
    pub fn retire_key_now(&self, kid: &str) -> bool {
        let now = self.now();
        self.keys_write().retire_now(kid, now)
    }

    /// The kid that signs tokens minted now.
    pub fn signing_kid(&self) -> Option<String> {
        self.keys_read()
            .signing_key(self.now())
            .map(|k| k.kid.clone())
    }

    /// Periodic upkeep: scheduled key rotation, dropping retired keys, store and limiter sweeps.
    pub async fn maintain(&self) {
        let now = self.now();
        let (lead, retire, every) = (
            self.config.jwks_max_age,
            self.retire_after(),
            self.config.key_rotate_every,
        );
        if let Some(shared) = &self.shared_keys {
            let schedule = redis_store::Schedule {
                rotate_every: every,
                publish_lead: lead,
                retire_after: retire,
            };
            match shared.tick(now, schedule, false).await {
                Ok((ring, _)) => *self.keys_write() = ring,
                Err(e) => {
                    tracing::warn!(error = %e, "shared key ring not reloaded: keeping the last one")
                }
            }
        } else if let Some(kid) = self.keys_write().maintain(now, every, lead, retire) {
            tracing::info!(kid = %kid, "signing key rotation started");
        }
        if let Err(e) = self.store.sweep(now).await {
            tracing::warn!(error = %e, "session store sweep failed");
        }
        self.migration.sweep(now);
        self.dpop.sweep(now);
        self.limits.shrink();
    }

    /// Mint an access token for a session.
    pub fn mint_access(&self, sub: &str, sid: &str) -> Result<(String, AccessClaims), MintError> {
        self.mint_access_bound(sub, sid, None)
    }

    /// Mint an access token for a session, bound to the DPoP key of thumbprint `jkt` (its
    /// `cnf.jkt`, RFC 9449 §6.1) when given.
    pub fn mint_access_bound(
        &self,
        sub: &str,
        sid: &str,
        jkt: Option<&str>,
    ) -> Result<(String, AccessClaims), MintError> {
        let now = self.now();
        let key = self
            .keys_read()
            .signing_key(now)
            .ok_or(MintError::NoSigningKey)?;
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: sub.to_string(),
            sid: sid.to_string(),
            jti: tokens::random_id(),
            iat: now,
            exp: now.saturating_add(self.config.access_ttl),
            nbf: None,
            cnf: jkt.map(|j| tokens::Confirmation { jkt: j.to_string() }),
        };
        let token = tokens::mint_access_token(&key, &claims).map_err(MintError::Sign)?;
        Ok((token, claims))
    }

    /// The client IP that per-IP limits are keyed on: the TCP peer, or what a `--trusted-proxy`
    /// says it forwarded for (see [`clientip`]).
    pub fn client_ip(&self, peer: SocketAddr, headers: &axum::http::HeaderMap) -> std::net::IpAddr {
        clientip::client_ip(
            peer.ip(),
            headers,
            &self.config.trusted_proxies,
            self.config.client_ip_header,
        )
    }

    /// Verify a bearer access token: signature, claims, time, session and jti revocation.
    /// Errors: the token's fault ([`AuthError::Rejected`]), or a store that cannot answer
    /// ([`AuthError::Store`]: the caller fails closed).
    pub async fn authenticate(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let now = self.now();
        let claims = {
            let keys = self.keys_read();
            tokens::verify_access_token(
                token,
                &keys,
                &self.config.issuer,
                &self.config.audience,
                self.config.leeway,
                now,
            )
            .map_err(AuthError::Rejected)?
        };
        if self.store.session_rejected(&claims.sid).await?
            || self
                .store
                .jti_blocked(&claims.iss, &claims.jti, now)
                .await?
        {
            return Err(AuthError::Rejected(VerifyError::Revoked));
        }
        Ok(claims)
    }

    /// Block exactly this access token (its `(iss, jti)`) until it would stop verifying anyway
    /// (`exp` + leeway). Returns whether an entry was stored (false: already expired).
    pub async fn revoke_access_token(&self, claims: &AccessClaims) -> Result<bool, StoreError> {
        let until = claims.exp.saturating_add(self.config.leeway);
        self.store
            .block_jti(&claims.iss, &claims.jti, until, self.now())
            .await
    }

    /// Mint a legacy never-expiring token, as the old system did (demo and tests; HMAC key only).
    pub fn mint_legacy_token(
        &self,
        sub: &str,
        with_jti: bool,
    ) -> Result<String, legacy::LegacyError> {
        let v = self
            .migration
            .verifier
            .as_ref()
            .ok_or(legacy::LegacyError::NoKey)?;
        v.mint(sub, self.now().saturating_sub(86_400), with_jti)
    }

    /// Verify a legacy token (never an access token: see [`legacy`]).
    pub fn verify_legacy(&self, token: &str) -> Result<legacy::LegacyIdentity, VerifyError> {
        let v = self
            .migration
            .verifier
            .as_ref()
            .ok_or(VerifyError::UnknownKey)?;
        let now = self.now();
        let keys = self.keys_read();
        v.verify(token, now, self.config.leeway, &|kid| {
            keys.verification_key(kid, now).is_some()
        })
    }

    /// Make `/auth/refresh` answer 503 for `secs` seconds (0 stops it).
    pub fn fail_refresh_for(&self, secs: u64) {
        let until = if secs == 0 {
            0
        } else {
            self.now().saturating_add(secs)
        };
        self.fail_refresh_until.store(until, Ordering::SeqCst);
    }

    /// Seconds left of a demo refresh outage.
    pub fn refresh_outage_left(&self) -> Option<u64> {
        let until = self.fail_refresh_until.load(Ordering::SeqCst);
        let now = self.now();
        (until > now).then(|| until - now)
    }
}

/// The router and its state.
#[derive(Debug, Clone)]
pub struct App {
    /// The HTTP routes.
    pub router: Router,
    /// The shared state (for tests and the maintenance task).
    pub state: SharedState,
}

/// Build the app with the in-memory store.
pub fn app(config: Config, clock: Arc<dyn Clock>) -> Result<App, StartError> {
    let store = MemoryStore::with_retention(Retention::from_config(&config));
    app_with_store(config, clock, Arc::new(store))
}

/// Build the app with a given store.
pub fn app_with_store(
    config: Config,
    clock: Arc<dyn Clock>,
    store: Arc<dyn SessionStore>,
) -> Result<App, StartError> {
    let state = Arc::new(AppState::new(config, clock, store)?);
    Ok(App {
        router: routes::router(state.clone()),
        state,
    })
}

/// A server running in the background.
#[derive(Debug)]
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The state, for tests.
    pub state: SharedState,
    /// The serving task; it ends after a [`Running::shutdown`] has drained.
    pub handle: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Running {
    /// Start the drain: stop accepting, let requests in flight finish within
    /// `config.shutdown_grace` seconds, then end [`Running::handle`]. Idempotent.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// `http://addr` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// Build the app on the store `config.store` names: in memory, or on Redis with the shared key
/// ring (connecting, checking Redis's eviction policy and loading or creating the ring first).
/// Errors are sentences for the operator.
pub async fn app_for_config(config: Config, clock: Arc<dyn Clock>) -> Result<App, StartError> {
    let config::StoreChoice::Redis(url) = config.store.clone() else {
        return app(config, clock);
    };
    let kek_file = config.key_encryption_key_file.clone().ok_or_else(|| {
        StartError::Config(
            "--store redis://… needs --key-encryption-key-file PATH (32 random bytes in base64, \
             the same file on every instance: head -c 32 /dev/urandom | base64 > kek)"
                .into(),
        )
    })?;
    let kek = kek::Kek::from_file(&kek_file).map_err(StartError::Kek)?;
    let timeout = Duration::from_millis(config.store_timeout_ms);
    let conn = redis_store::RedisConn::connect(&url, timeout, redis_store::CONNECT_AT_START)
        .await
        .map_err(StartError::Store)?;
    let shared = redis_store::SharedKeys::new(conn.clone(), kek.clone());
    let ring = shared.bootstrap(clock.now()).await.map_err(|e| {
        StartError::Store(format!("--store {}: {e}", redis_store::redacted_url(&url)))
    })?;
    let nonces = dpop::NonceIssuer::new(kek.dpop_nonce_secret(), config.dpop_nonce_rotate);
    let store = redis_store::RedisStore::new(conn, kek, Retention::from_config(&config));
    let mut state = AppState::new(config, clock, Arc::new(store))?;
    // Every instance on this Redis issues and accepts the same DPoP nonces (one key-encryption key).
    state.dpop = dpop::DpopState::new(nonces);
    state.keys = RwLock::new(ring);
    state.shared_keys = Some(shared);
    let state = Arc::new(state);
    Ok(App {
        router: routes::router(state.clone()),
        state,
    })
}

/// Bind `config.addr`, start serving and the maintenance task, and return at once.
pub async fn start(config: Config, clock: Arc<dyn Clock>) -> std::io::Result<Running> {
    let listener = TcpListener::bind(config.addr).await?;
    let app = app_for_config(config, clock)
        .await
        .map_err(std::io::Error::other)?;
    start_on(listener, app)
}

/// Serve `app` on an already-bound listener, in the background.
pub fn start_on(listener: TcpListener, app: App) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let state = app.state.clone();
    spawn_maintenance(Arc::downgrade(&state));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(serve::serve(listener, app.router, state.clone(), stopped));
    Ok(Running {
        addr,
        state,
        handle,
        stop,
    })
}

fn spawn_maintenance(state: std::sync::Weak<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(s) = state.upgrade() else { break };
            s.maintain().await;
        }
    });
}
