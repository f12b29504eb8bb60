//! The migration off legacy never-expiring tokens, phase by phase (issue 10; CATALOGUE 4(d)).
//!
//! * **Keys.** The legacy verification key comes from configuration, never generated (except by `--demo`, which
//!   logs it): an HMAC secret (`HS256`, the typical never-expiring token: one shared secret, no `kid`, no `exp`)
//!   or a PEM public key (RSA: `RS*`/`PS*`; P-256: `ES256`; P-384: `ES384`). The accepted algorithms follow the
//!   key's type, so the HMAC secret never verifies anything but a legacy token and a public key is never used as
//!   an HMAC secret (no algorithm confusion).
//! * **Mutually exclusive with access tokens.** A legacy token has no `exp` (any `exp` member, whatever its
//!   value, disqualifies it), is not `typ: at+jwt`, and never carries the `kid` of a current signing key;
//!   access tokens are pinned to ES256 + `at+jwt` + a current `kid` + a required `exp` (see [`crate::tokens`]).
//! * **Phases** ([`Phase`]) are runtime state in [`Migration`]: 0 detect, 1 dual (deprecation headers),
//!   2 force refresh (accepted only at the upgrade endpoint), 3 revoke, 4 enforce and monitor (alerts). A switch
//!   forward rolls out gradually: the share of users on the new phase ramps linearly from 0 to the cohort
//!   percentage over the grace period (by a stable hash of the user id); the others stay on the phase before.
//!   A switch backward and the kill switch (revert to the previous phase) apply to everyone at once. After the
//!   sunset every user is at least in phase 3.
//! * **Counting without storing tokens.** Users and clients are kept as salted SHA-256 prefixes; one-time
//!   exchanges are keyed by the legacy `jti`, or by the token's SHA-256 when it has none.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::http::header::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde_json::{json, Value};

use crate::config::parse_duration;
use crate::tokens::{self, VerifyError};

/// The upgrade endpoint, named in headers and error descriptions.
pub const UPGRADE_PATH: &str = "/auth/legacy/upgrade";
/// Header an app may send to identify its client build (`X-Client-Id`), logged and counted (hashed).
pub const CLIENT_ID_HEADER: &str = "x-client-id";
/// Longest user agent or client id kept for a log line.
pub const MAX_CLIENT_FIELD: usize = 200;
/// Most distinct users (or clients) tracked as "still on legacy"; beyond it new ones are counted as overflow.
pub const MAX_TRACKED: usize = 100_000;
/// Alert window for refresh bursts and failed refreshes.
pub const ALERT_WINDOW_SECS: u64 = 60;
/// Rotations of one session within [`ALERT_WINDOW_SECS`] that raise a `refresh_burst` alert.
pub const REFRESH_BURST_THRESHOLD: u32 = 6;
/// Failed refreshes of one client within [`ALERT_WINDOW_SECS`] that raise a `refresh_failures` alert.
pub const REFRESH_FAILURE_THRESHOLD: u32 = 5;

/// Flags of the migration (flattened into [`crate::config::Args`]).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LegacyArgs {
    /// File holding the legacy HMAC secret (HS256). Its content less one trailing newline is the secret.
    #[arg(
        long,
        env = "AUTH_LEGACY_HMAC_SECRET_FILE",
        conflicts_with = "legacy_public_key_file"
    )]
    pub legacy_hmac_secret_file: Option<PathBuf>,
    /// File holding the legacy PEM public key (RSA: RS256/384/512, PS256/384/512; EC P-256: ES256; P-384: ES384).
    #[arg(long, env = "AUTH_LEGACY_PUBLIC_KEY_FILE")]
    pub legacy_public_key_file: Option<PathBuf>,
    /// Claim of a legacy token that holds the user id (a string or an integer).
    #[arg(long, env = "AUTH_LEGACY_SUBJECT_CLAIM", default_value = "sub")]
    pub legacy_subject_claim: String,
    /// Migration phase at start: 0 detect, 1 dual, 2 force refresh, 3 revoke, 4 enforce and monitor.
    #[arg(long, env = "AUTH_LEGACY_PHASE", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=4))]
    pub legacy_phase: u8,
    /// Default grace period of a phase switch: the new phase ramps from 0 to the cohort percentage over it.
    #[arg(long, env = "AUTH_LEGACY_GRACE", value_parser = parse_duration, default_value = "0")]
    pub legacy_grace: u64,
    /// File holding the admin bearer secret; without it there is no `/admin/*` endpoint.
    #[arg(long, env = "AUTH_ADMIN_SECRET_FILE")]
    pub admin_secret_file: Option<PathBuf>,
}

/// The resolved migration configuration (paths only: secrets are read when the state is built).
#[derive(Debug, Clone)]
pub struct LegacyConfig {
    /// HMAC secret file.
    pub hmac_secret_file: Option<PathBuf>,
    /// PEM public key file.
    pub public_key_file: Option<PathBuf>,
    /// The user-id claim.
    pub subject_claim: String,
    /// Phase at start.
    pub phase: u8,
    /// Default grace period of a switch, seconds.
    pub grace: u64,
    /// Admin secret file.
    pub admin_secret_file: Option<PathBuf>,
}

impl Default for LegacyConfig {
    fn default() -> Self {
        LegacyArgs {
            legacy_subject_claim: "sub".into(),
            ..LegacyArgs::default()
        }
        .into()
    }
}

impl From<LegacyArgs> for LegacyConfig {
    fn from(a: LegacyArgs) -> Self {
        Self {
            hmac_secret_file: a.legacy_hmac_secret_file,
            public_key_file: a.legacy_public_key_file,
            subject_claim: a.legacy_subject_claim,
            phase: a.legacy_phase.min(4),
            grace: a.legacy_grace,
            admin_secret_file: a.admin_secret_file,
        }
    }
}

/// Why a legacy key or secret could not be used.
#[derive(Debug)]
pub enum LegacyError {
    /// A key or secret file could not be read.
    Read(std::path::PathBuf, std::io::Error),
    /// A secret file holds nothing (besides a trailing newline).
    Empty(std::path::PathBuf),
    /// `--legacy-hmac-secret-file` and `--legacy-public-key-file` were both given.
    BothKeys,
    /// The public key file is not PEM text.
    NotPem,
    /// The public key is neither an RSA nor a P-256/P-384 PEM key.
    BadPublicKey(jsonwebtoken::errors::Error),
    /// Minting needs the HMAC secret; the configured key is a public key.
    CannotMint,
    /// No legacy key is configured.
    NoKey,
    /// The JWT library refused to sign.
    Sign(jsonwebtoken::errors::Error),
}

impl std::fmt::Display for LegacyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            Self::Empty(p) => write!(f, "{} is empty", p.display()),
            Self::BothKeys => f.write_str(
                "--legacy-hmac-secret-file and --legacy-public-key-file exclude each other",
            ),
            Self::NotPem => f.write_str("the public key file is not PEM text"),
            Self::BadPublicKey(e) => write!(
                f,
                "the legacy public key is neither an RSA nor a P-256/P-384 PEM key: {e}"
            ),
            Self::CannotMint => {
                f.write_str("the legacy key is a public key: tokens cannot be minted here")
            }
            Self::NoKey => f.write_str("no legacy key configured"),
            Self::Sign(e) => write!(f, "signing failed: {e}"),
        }
    }
}

impl std::error::Error for LegacyError {}

/// Read a secret file: its content less one trailing newline (`\n` or `\r\n`). Empty is an error.
pub fn read_secret_file(path: &std::path::Path) -> Result<Vec<u8>, LegacyError> {
    let mut b = std::fs::read(path).map_err(|e| LegacyError::Read(path.to_path_buf(), e))?;
    if b.last() == Some(&b'\n') {
        b.pop();
        if b.last() == Some(&b'\r') {
            b.pop();
        }
    }
    if b.is_empty() {
        return Err(LegacyError::Empty(path.to_path_buf()));
    }
    Ok(b)
}

/// The legacy verification key and the algorithms it may verify.
pub struct LegacyVerifier {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    algorithms: Vec<Algorithm>,
    subject_claim: String,
}

impl std::fmt::Debug for LegacyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyVerifier")
            .field("algorithms", &self.algorithms)
            .field("subject_claim", &self.subject_claim)
            .finish_non_exhaustive()
    }
}

/// Who a verified legacy token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyIdentity {
    /// The user id (from the subject claim; integers are written in decimal).
    pub sub: String,
    /// The one-time exchange key: `jti:<jti>` or `sha256:<hex>` of the token.
    pub once_key: String,
}

impl LegacyVerifier {
    /// An HS256 verifier (and minter: the demo mints with it) for `secret`.
    pub fn hmac(secret: &[u8], subject_claim: &str) -> Self {
        Self {
            decoding: DecodingKey::from_secret(secret),
            encoding: Some(EncodingKey::from_secret(secret)),
            algorithms: vec![Algorithm::HS256],
            subject_claim: subject_claim.to_string(),
        }
    }

    /// A verifier for a PEM public key; the algorithms follow its type.
    pub fn public_pem(pem: &[u8], subject_claim: &str) -> Result<Self, LegacyError> {
        use p256::pkcs8::DecodePublicKey;
        let text = std::str::from_utf8(pem).map_err(|_| LegacyError::NotPem)?;
        let (decoding, algorithms) = if p256::PublicKey::from_public_key_pem(text).is_ok() {
            (DecodingKey::from_ec_pem(pem), vec![Algorithm::ES256])
        } else if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
            let algs = vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ];
            (Ok(k), algs)
        } else {
            (DecodingKey::from_ec_pem(pem), vec![Algorithm::ES384])
        };
        let decoding = decoding.map_err(LegacyError::BadPublicKey)?;
        Ok(Self {
            decoding,
            encoding: None,
            algorithms,
            subject_claim: subject_claim.to_string(),
        })
    }

    /// Whether this verifier can mint (an HMAC secret).
    pub fn can_mint(&self) -> bool {
        self.encoding.is_some()
    }

    /// A never-expiring token as the old system minted it: HS256, `typ: JWT`, no `kid`, no `exp`,
    /// the user id in the subject claim, `iat`, and a `jti` unless `with_jti` is false.
    pub fn mint(&self, sub: &str, iat: u64, with_jti: bool) -> Result<String, LegacyError> {
        let key = self.encoding.as_ref().ok_or(LegacyError::CannotMint)?;
        let mut claims = serde_json::Map::new();
        claims.insert(self.subject_claim.clone(), Value::from(sub));
        claims.insert("iat".into(), Value::from(iat));
        if with_jti {
            claims.insert("jti".into(), Value::from(tokens::random_id()));
        }
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
            .map_err(LegacyError::Sign)
    }

    /// Cheap shape test, before any crypto: could `token` be a legacy token for this key?
    /// (Header `alg` among ours, `typ` absent or `JWT`.) New access tokens never pass it.
    pub fn looks_legacy(&self, token: &str) -> bool {
        let Ok(h) = tokens::parse_header(token) else {
            return false;
        };
        self.header_ok(&h)
    }

    fn header_ok(&self, h: &serde_json::Map<String, Value>) -> bool {
        let alg_ok = h
            .get("alg")
            .and_then(Value::as_str)
            .and_then(|a| a.parse::<Algorithm>().ok())
            .is_some_and(|a| self.algorithms.contains(&a));
        let typ_ok = match h.get("typ") {
            None => true,
            Some(Value::String(t)) => t.eq_ignore_ascii_case("JWT"),
            Some(_) => false,
        };
        alg_ok && typ_ok && !h.contains_key("crit") && !h.contains_key("b64")
    }

    /// Verify a legacy token: header (algorithm of our key type, `typ` absent or `JWT`, no `crit`/`b64`,
    /// no `kid` of a current signing key), signature, then: no `exp` member at all, `iat` (if any) an
    /// integer not in the future beyond `leeway`, the subject claim a non-empty string (≤ 256 bytes) or an integer.
    pub fn verify(
        &self,
        token: &str,
        now: u64,
        leeway: u64,
        is_current_kid: &dyn Fn(&str) -> bool,
    ) -> Result<LegacyIdentity, VerifyError> {
        let h = tokens::parse_header(token)?;
        if !self.header_ok(&h) {
            return Err(VerifyError::BadHeader);
        }
        match h.get("kid") {
            None => {}
            Some(Value::String(k)) if !is_current_kid(k) => {}
            Some(_) => return Err(VerifyError::BadHeader),
        }
        let alg = h
            .get("alg")
            .and_then(Value::as_str)
            .and_then(|a| a.parse::<Algorithm>().ok())
            .ok_or(VerifyError::BadHeader)?;
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.leeway = 0;
        v.required_spec_claims.clear();
        let claims: serde_json::Map<String, Value> =
            jsonwebtoken::decode(token, &self.decoding, &v)
                .map(|d| d.claims)
                .map_err(|e| match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::BadSignature,
                    _ => VerifyError::BadClaims,
                })?;
        if claims.contains_key("exp") {
            return Err(VerifyError::BadClaims);
        }
        match claims.get("iat") {
            None => {}
            Some(Value::Number(n))
                if n.as_u64().is_some_and(|i| i <= now.saturating_add(leeway)) => {}
            Some(_) => return Err(VerifyError::NotYetValid),
        }
        let sub = match claims.get(&self.subject_claim) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            _ => return Err(VerifyError::BadClaims),
        };
        let once_key = match claims.get("jti") {
            Some(Value::String(j)) if !j.is_empty() && j.len() <= 256 => format!("jti:{j}"),
            _ => format!("sha256:{}", hex(&tokens::sha256(token.as_bytes()))),
        };
        Ok(LegacyIdentity { sub, once_key })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Stable bucket 0..100 of a user id (the cohort hash).
pub fn bucket(sub: &str) -> u16 {
    let h = tokens::sha256(sub.as_bytes());
    u16::from_be_bytes([h[0], h[1]]) % 100
}

/// The phase in force and how it is rolling out. Pure: time is a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseState {
    /// The phase switched to last.
    pub phase: u8,
    /// The phase users outside the rollout stay on (equal to `phase` once a switch is complete or was backward).
    pub from: u8,
    /// When the last switch happened.
    pub switched_at: u64,
    /// Ramp length of the last switch, seconds (0: at once).
    pub grace: u64,
    /// Share of users (0–100) the last switch reaches once its grace period is over.
    pub cohort_percent: u8,
    /// Phases before each switch, for the kill switch.
    pub history: Vec<u8>,
    /// First time the phase was ≥ 1 (the `Deprecation` date).
    pub deprecated_at: Option<u64>,
}

impl PhaseState {
    /// The state at start: `phase` for the cohort, the phase below it for the others.
    pub fn new(phase: u8, cohort_percent: u8, now: u64) -> Self {
        let phase = phase.min(4);
        Self {
            phase,
            from: if cohort_percent >= 100 {
                phase
            } else {
                phase.saturating_sub(1)
            },
            switched_at: now,
            grace: 0,
            cohort_percent: cohort_percent.min(100),
            history: Vec::new(),
            deprecated_at: (phase >= 1).then_some(now),
        }
    }

    /// Percentage of users on `phase` at `now` (the rest are on `from`).
    pub fn rollout_percent(&self, now: u64) -> u8 {
        if self.from == self.phase {
            return 100;
        }
        let elapsed = now.saturating_sub(self.switched_at);
        if self.grace == 0 || elapsed >= self.grace {
            return self.cohort_percent;
        }
        let p = u64::from(self.cohort_percent) * elapsed / self.grace;
        u8::try_from(p).unwrap_or(100)
    }

    /// The phase that applies to a user in `bucket` (0..100) at `now`, before the sunset rule.
    pub fn effective(&self, bucket: u16, now: u64) -> u8 {
        if bucket < u16::from(self.rollout_percent(now)) {
            self.phase
        } else {
            self.from
        }
    }

    /// Switch to `to`. Forward: ramp over `grace` to `cohort_percent` of users. Backward: everyone at once.
    pub fn switch(&mut self, to: u8, grace: u64, cohort_percent: u8, now: u64) {
        let to = to.min(4);
        if to != self.phase {
            self.history.push(self.phase);
        }
        // Forward: users outside the rollout stay on the phase switched from. Backward: nobody stays behind.
        // The same phase again changes the cohort of the switch under way, at once (no new ramp from 0).
        let same = to == self.phase;
        if to > self.phase {
            self.from = self.phase;
        } else if to < self.phase {
            self.from = to;
        }
        self.phase = to;
        self.switched_at = now;
        self.grace = if same || to == self.from { 0 } else { grace };
        self.cohort_percent = cohort_percent.min(100);
        if to >= 1 && self.deprecated_at.is_none() {
            self.deprecated_at = Some(now);
        }
    }

    /// The kill switch: back to the phase before the last switch, for everyone at once.
    /// Returns false (nothing changes) when there was no switch.
    pub fn revert(&mut self, now: u64) -> bool {
        let Some(prev) = self.history.pop() else {
            return false;
        };
        self.phase = prev;
        self.from = prev;
        self.switched_at = now;
        self.grace = 0;
        true
    }
}

/// Where a legacy token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// An API route.
    Api,
    /// The upgrade endpoint.
    Upgrade,
}

/// Alert kinds raised in phase 4 (log field `alert`, metric label `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// A rotated refresh token was replayed (reuse detection).
    RtReuse,
    /// One session rotated more than [`REFRESH_BURST_THRESHOLD`] times within [`ALERT_WINDOW_SECS`].
    RefreshBurst,
    /// One client failed more than [`REFRESH_FAILURE_THRESHOLD`] refreshes within [`ALERT_WINDOW_SECS`].
    RefreshFailures,
    /// A legacy token still arrived.
    LegacyToken,
}

impl Alert {
    const ALL: [Alert; 4] = [
        Alert::RtReuse,
        Alert::RefreshBurst,
        Alert::RefreshFailures,
        Alert::LegacyToken,
    ];
    fn as_str(self) -> &'static str {
        match self {
            Alert::RtReuse => "rt_reuse",
            Alert::RefreshBurst => "refresh_burst",
            Alert::RefreshFailures => "refresh_failures",
            Alert::LegacyToken => "legacy_token",
        }
    }
    fn index(self) -> usize {
        match self {
            Alert::RtReuse => 0,
            Alert::RefreshBurst => 1,
            Alert::RefreshFailures => 2,
            Alert::LegacyToken => 3,
        }
    }
}

/// What the one-time exchange decided.
#[derive(Debug, Clone)]
pub enum Exchange {
    /// First exchange: the session created for it.
    First(crate::store::SessionInfo, crate::tokens::RefreshToken),
    /// The same token again within the reuse grace window (two tabs at once): the same session.
    Repeat {
        /// The session of the first exchange.
        sid: String,
    },
    /// Replayed after the window: a security event.
    Replay,
}

#[derive(Debug, Default)]
struct Windows {
    bursts: HashMap<String, (u64, u32)>,
    failures: HashMap<[u8; 16], (u64, u32)>,
}

#[derive(Debug, Default)]
struct Tracked {
    users: HashMap<[u8; 16], u64>,
    clients: HashMap<[u8; 16], u64>,
    overflow: u64,
}

/// Migration state and counters.
pub struct Migration {
    /// The legacy key, if configured.
    pub verifier: Option<LegacyVerifier>,
    admin_secret: Option<[u8; 32]>,
    default_grace: u64,
    sunset: u64,
    salt: [u8; 16],
    phase: Mutex<PhaseState>,
    /// Held across the session's creation, so a concurrent repeat waits for it.
    exchanges: tokio::sync::Mutex<HashMap<String, (u64, String)>>,
    tracked: Mutex<Tracked>,
    windows: Mutex<Windows>,
    uses: [AtomicU64; 5],
    refusals: [AtomicU64; 5],
    upgrades: AtomicU64,
    repeats: AtomicU64,
    security_events: AtomicU64,
    switches: AtomicU64,
    api_legacy: AtomicU64,
    api_total: AtomicU64,
    alerts: [AtomicU64; 4],
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("verifier", &self.verifier)
            .field("admin", &self.admin_secret.is_some())
            .finish_non_exhaustive()
    }
}

fn n(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The client a request comes from, as logged: user agent and `X-Client-Id`, both truncated.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// `User-Agent`.
    pub user_agent: String,
    /// `X-Client-Id`, if sent.
    pub client_id: Option<String>,
}

impl ClientInfo {
    /// Read from request headers.
    pub fn from_headers(h: &HeaderMap) -> Self {
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(MAX_CLIENT_FIELD).collect::<String>())
        };
        Self {
            user_agent: get("user-agent").unwrap_or_default(),
            client_id: get(CLIENT_ID_HEADER),
        }
    }
}

impl Migration {
    /// Build from the configuration: read the key and admin secret files; `--demo` without a key gets a
    /// generated HMAC secret (logged).
    pub fn new(
        cfg: &LegacyConfig,
        demo: bool,
        cohort_percent: u8,
        sunset: u64,
        now: u64,
    ) -> Result<Self, LegacyError> {
        let verifier = match (&cfg.hmac_secret_file, &cfg.public_key_file) {
            (Some(_), Some(_)) => return Err(LegacyError::BothKeys),
            (Some(p), None) => Some(LegacyVerifier::hmac(
                &read_secret_file(p)?,
                &cfg.subject_claim,
            )),
            (None, Some(p)) => {
                let pem = std::fs::read(p).map_err(|e| LegacyError::Read(p.clone(), e))?;
                Some(LegacyVerifier::public_pem(&pem, &cfg.subject_claim)?)
            }
            (None, None) if demo => {
                let mut s = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut s);
                tracing::warn!(
                    "demo: no legacy key configured, generated a random legacy HMAC secret for this run \
                     (the demo mints legacy tokens with it; they die with the process)"
                );
                Some(LegacyVerifier::hmac(&s, &cfg.subject_claim))
            }
            (None, None) => None,
        };
        let admin_secret = match &cfg.admin_secret_file {
            Some(p) => Some(tokens::sha256(&read_secret_file(p)?)),
            None => None,
        };
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        Ok(Self {
            verifier,
            admin_secret,
            default_grace: cfg.grace,
            sunset,
            salt,
            phase: Mutex::new(PhaseState::new(cfg.phase, cohort_percent, now)),
            exchanges: tokio::sync::Mutex::new(HashMap::new()),
            tracked: Mutex::new(Tracked::default()),
            windows: Mutex::new(Windows::default()),
            uses: Default::default(),
            refusals: Default::default(),
            upgrades: AtomicU64::new(0),
            repeats: AtomicU64::new(0),
            security_events: AtomicU64::new(0),
            switches: AtomicU64::new(0),
            api_legacy: AtomicU64::new(0),
            api_total: AtomicU64::new(0),
            alerts: Default::default(),
        })
    }

    /// Whether `/admin/*` is mounted.
    pub fn admin_enabled(&self) -> bool {
        self.admin_secret.is_some()
    }

    /// Constant-time check of an admin bearer secret (both sides hashed to 32 bytes first).
    pub fn admin_ok(&self, presented: &str) -> bool {
        let Some(want) = &self.admin_secret else {
            return false;
        };
        let got = tokens::sha256(presented.as_bytes());
        want.iter()
            .zip(got.iter())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0
    }

    /// The sunset instant (seconds since the epoch).
    pub fn sunset(&self) -> u64 {
        self.sunset
    }

    /// A copy of the phase state.
    pub fn phase_state(&self) -> PhaseState {
        lock(&self.phase).clone()
    }

    /// The phase switched to last (what operators set).
    pub fn phase(&self) -> u8 {
        lock(&self.phase).phase
    }

    /// The phase that applies to `sub` at `now`, sunset included.
    pub fn effective_phase(&self, sub: &str, now: u64) -> u8 {
        let p = lock(&self.phase).effective(bucket(sub), now);
        if now >= self.sunset {
            p.max(3)
        } else {
            p
        }
    }

    /// Switch phases (admin or demo). `grace`/`cohort` default to the flags. Logged.
    pub fn switch(
        &self,
        to: u8,
        grace: Option<u64>,
        cohort: Option<u8>,
        now: u64,
        by: &str,
    ) -> PhaseState {
        let mut g = lock(&self.phase);
        let from = g.phase;
        let cohort = cohort.unwrap_or(100);
        g.switch(to, grace.unwrap_or(self.default_grace), cohort, now);
        inc(&self.switches);
        tracing::warn!(
            event = "legacy_phase_switch",
            from,
            to = g.phase,
            grace = g.grace,
            cohort_percent = g.cohort_percent,
            by,
            "legacy migration: phase switched"
        );
        g.clone()
    }

    /// The kill switch: revert to the previous phase at once. Logged.
    pub fn kill_switch(&self, now: u64, by: &str) -> (bool, PhaseState) {
        let mut g = lock(&self.phase);
        let from = g.phase;
        let done = g.revert(now);
        if done {
            inc(&self.switches);
        }
        tracing::warn!(
            event = "legacy_kill_switch",
            from,
            to = g.phase,
            reverted = done,
            by,
            "legacy migration: kill switch"
        );
        (done, g.clone())
    }

    fn hash16(&self, kind: &[u8], v: &[u8]) -> [u8; 16] {
        let mut buf = Vec::with_capacity(16 + kind.len() + v.len() + 1);
        buf.extend_from_slice(&self.salt);
        buf.extend_from_slice(kind);
        buf.push(0);
        buf.extend_from_slice(v);
        let h = tokens::sha256(&buf);
        let mut o = [0u8; 16];
        o.copy_from_slice(&h[..16]);
        o
    }

    fn client_key(&self, c: &ClientInfo) -> [u8; 16] {
        let id = format!(
            "{}\u{0}{}",
            c.user_agent,
            c.client_id.as_deref().unwrap_or("")
        );
        self.hash16(b"client", id.as_bytes())
    }

    /// Count one API request (for the share of legacy traffic).
    pub fn count_api_request(&self, legacy: bool) {
        inc(&self.api_total);
        if legacy {
            inc(&self.api_legacy);
        }
    }

    /// Record one legacy token arriving (`accepted` at this `phase` or refused), log it with the user and client.
    pub fn record_use(
        &self,
        sub: &str,
        client: &ClientInfo,
        phase: u8,
        place: Place,
        accepted: bool,
        now: u64,
    ) {
        let i = usize::from(phase.min(4));
        if accepted {
            if let Some(c) = self.uses.get(i) {
                inc(c);
            }
        } else if let Some(c) = self.refusals.get(i) {
            inc(c);
        }
        {
            let user = self.hash16(b"user", sub.as_bytes());
            let ck = self.client_key(client);
            let mut t = lock(&self.tracked);
            for (map, k) in [(0, user), (1, ck)] {
                let m = if map == 0 {
                    &mut t.users
                } else {
                    &mut t.clients
                };
                if m.len() < MAX_TRACKED || m.contains_key(&k) {
                    m.insert(k, now);
                } else {
                    t.overflow += 1;
                    break;
                }
            }
        }
        tracing::info!(event = "legacy_token_use", user = %sub, user_agent = ?client.user_agent,
            client_id = ?client.client_id, phase, place = ?place, accepted, "legacy token used");
        if phase >= 4 || self.phase() >= 4 {
            self.alert(Alert::LegacyToken, &[("user", sub)]);
        }
    }

    /// The one-time exchange of `key`, atomically: `create` (not polled otherwise) makes the
    /// session on first use only. Its error is returned and nothing is recorded.
    pub async fn exchange<E>(
        &self,
        key: &str,
        now: u64,
        grace: u64,
        create: impl std::future::Future<
            Output = Result<(crate::store::SessionInfo, crate::tokens::RefreshToken), E>,
        >,
    ) -> Result<Exchange, E> {
        let mut g = self.exchanges.lock().await;
        Ok(match g.get(key) {
            Some((at, sid)) if now <= at.saturating_add(grace) => {
                inc(&self.repeats);
                Exchange::Repeat { sid: sid.clone() }
            }
            Some(_) => {
                inc(&self.security_events);
                Exchange::Replay
            }
            None => {
                let (info, rt) = create.await?;
                g.insert(key.to_string(), (now, info.sid.clone()));
                inc(&self.upgrades);
                Exchange::First(info, rt)
            }
        })
    }

    /// After a successful exchange: the user and client are no longer "still on legacy".
    pub fn forget(&self, sub: &str, client: &ClientInfo) {
        let user = self.hash16(b"user", sub.as_bytes());
        let ck = self.client_key(client);
        let mut t = lock(&self.tracked);
        t.users.remove(&user);
        t.clients.remove(&ck);
    }

    /// Raise an alert if in phase 4: a structured warning and a counter.
    pub fn alert(&self, kind: Alert, fields: &[(&str, &str)]) {
        if self.phase() < 4 {
            return;
        }
        if let Some(c) = self.alerts.get(kind.index()) {
            inc(c);
        }
        let detail: String = fields
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(" ");
        tracing::warn!(event = "alert", alert = kind.as_str(), detail = %detail, "security alert");
    }

    /// Refresh monitoring (phase 4): a rotation of `sid` (bursts).
    pub fn note_rotation(&self, sid: &str, now: u64) {
        if self.phase() < 4 {
            return;
        }
        let fire = {
            let mut w = lock(&self.windows);
            let e = w.bursts.entry(sid.to_string()).or_insert((now, 0));
            if now >= e.0.saturating_add(ALERT_WINDOW_SECS) {
                *e = (now, 0);
            }
            e.1 += 1;
            e.1 == REFRESH_BURST_THRESHOLD
        };
        if fire {
            self.alert(Alert::RefreshBurst, &[("sid", sid)]);
        }
    }

    /// Refresh monitoring (phase 4): a failed refresh from `client` (peer address and user agent).
    pub fn note_refresh_failure(&self, peer: &str, client: &ClientInfo, now: u64) {
        if self.phase() < 4 {
            return;
        }
        let k = self.hash16(
            b"peer",
            format!("{peer}\u{0}{}", client.user_agent).as_bytes(),
        );
        let fire = {
            let mut w = lock(&self.windows);
            let e = w.failures.entry(k).or_insert((now, 0));
            if now >= e.0.saturating_add(ALERT_WINDOW_SECS) {
                *e = (now, 0);
            }
            e.1 += 1;
            e.1 == REFRESH_FAILURE_THRESHOLD
        };
        if fire {
            self.alert(
                Alert::RefreshFailures,
                &[("peer", peer), ("user_agent", &client.user_agent)],
            );
        }
    }

    /// Drop alert windows that have closed.
    pub fn sweep(&self, now: u64) {
        let mut w = lock(&self.windows);
        w.bursts
            .retain(|_, (s, _)| now < s.saturating_add(ALERT_WINDOW_SECS));
        w.failures
            .retain(|_, (s, _)| now < s.saturating_add(ALERT_WINDOW_SECS));
    }

    /// The JSON state and report (`GET /admin/legacy`, `/demo/stats`).
    pub fn report(&self, now: u64) -> Value {
        let p = self.phase_state();
        let (users, clients, overflow) = {
            let t = lock(&self.tracked);
            (t.users.len(), t.clients.len(), t.overflow)
        };
        let total = n(&self.api_total);
        let legacy = n(&self.api_legacy);
        let share = if total == 0 {
            0.0
        } else {
            legacy as f64 / total as f64
        };
        let per = |a: &[AtomicU64; 5]| a.iter().map(n).collect::<Vec<u64>>();
        let alerts: serde_json::Map<String, Value> = Alert::ALL
            .iter()
            .map(|a| {
                (
                    a.as_str().to_string(),
                    Value::from(self.alerts.get(a.index()).map(n).unwrap_or(0)),
                )
            })
            .collect();
        json!({
            "phase": p.phase,
            "previousPhase": p.history.last(),
            "fromPhase": p.from,
            "rolloutPercent": p.rollout_percent(now),
            "cohortPercent": p.cohort_percent,
            "graceSeconds": p.grace,
            "switchedAt": p.switched_at,
            "sunset": self.sunset,
            "sunsetPassed": now >= self.sunset,
            "legacyKey": self.verifier.is_some(),
            "report": {
                "usesByPhase": per(&self.uses),
                "refusalsByPhase": per(&self.refusals),
                "upgrades": n(&self.upgrades),
                "concurrentRepeats": n(&self.repeats),
                "securityEvents": n(&self.security_events),
                "apiRequests": total,
                "apiLegacyRequests": legacy,
                "legacyShare": share,
                "usersStillOnLegacy": users,
                "clientsStillOnLegacy": clients,
                "untrackedOverflow": overflow,
                "phaseSwitches": n(&self.switches),
                "alerts": alerts,
            }
        })
    }

    /// Prometheus text for the migration (appended to `/metrics`).
    pub fn render_metrics(&self, now: u64) -> String {
        use std::fmt::Write as _;
        let p = self.phase_state();
        let mut o = String::with_capacity(2048);
        let mut put = |name: &str, kind: &str, help: &str, rows: &[(String, String)]| {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} {kind}");
            for (l, v) in rows {
                if l.is_empty() {
                    let _ = writeln!(o, "{name} {v}");
                } else {
                    let _ = writeln!(o, "{name}{{{l}}} {v}");
                }
            }
        };
        let one = |v: u64| vec![(String::new(), v.to_string())];
        let phases = |a: &[AtomicU64; 5]| {
            (0..5)
                .map(|i| {
                    (
                        format!("phase=\"{i}\""),
                        a.get(i).map(n).unwrap_or(0).to_string(),
                    )
                })
                .collect::<Vec<_>>()
        };
        put(
            "auth_legacy_phase",
            "gauge",
            "Legacy migration phase switched to last (0 detect .. 4 enforce).",
            &one(u64::from(p.phase)),
        );
        put(
            "auth_legacy_rollout_percent",
            "gauge",
            "Share of users on that phase now (the rest are on the one before).",
            &one(u64::from(p.rollout_percent(now))),
        );
        put(
            "auth_legacy_uses_total",
            "counter",
            "Legacy tokens accepted, by the phase that applied.",
            &phases(&self.uses),
        );
        put(
            "auth_legacy_refusals_total",
            "counter",
            "Legacy tokens refused (API or upgrade), by the phase that applied.",
            &phases(&self.refusals),
        );
        put("auth_legacy_exchanges_total", "counter", "One-time exchanges: first use (ok), concurrent repeat within the grace window, replay.",
            &[("outcome=\"ok\"".into(), n(&self.upgrades).to_string()),
              ("outcome=\"repeat\"".into(), n(&self.repeats).to_string()),
              ("outcome=\"replay\"".into(), n(&self.security_events).to_string())]);
        put(
            "auth_legacy_security_events_total",
            "counter",
            "Legacy tokens exchanged a second time after the grace window.",
            &one(n(&self.security_events)),
        );
        put(
            "auth_api_legacy_requests_total",
            "counter",
            "API requests that carried a valid legacy token.",
            &one(n(&self.api_legacy)),
        );
        put(
            "auth_api_bearer_requests_total",
            "counter",
            "API requests seen by the legacy gate (the denominator of the share).",
            &one(n(&self.api_total)),
        );
        let total = n(&self.api_total);
        let share = if total == 0 {
            0.0
        } else {
            n(&self.api_legacy) as f64 / total as f64
        };
        put(
            "auth_legacy_api_share",
            "gauge",
            "Share of API requests still on legacy tokens (0..1).",
            &[(String::new(), format!("{share}"))],
        );
        let (users, clients) = {
            let t = lock(&self.tracked);
            (t.users.len() as u64, t.clients.len() as u64)
        };
        put(
            "auth_legacy_users_still",
            "gauge",
            "Distinct users (salted hashes) seen with a legacy token and not upgraded since.",
            &one(users),
        );
        put("auth_legacy_clients_still", "gauge", "Distinct clients (user agent + X-Client-Id, hashed) seen with a legacy token and not upgraded since.", &one(clients));
        put(
            "auth_legacy_phase_switches_total",
            "counter",
            "Phase switches and kill-switch reverts.",
            &one(n(&self.switches)),
        );
        let rows: Vec<(String, String)> = Alert::ALL
            .iter()
            .map(|a| {
                (
                    format!("kind=\"{}\"", a.as_str()),
                    self.alerts.get(a.index()).map(n).unwrap_or(0).to_string(),
                )
            })
            .collect();
        put(
            "auth_alerts_total",
            "counter",
            "Phase-4 alerts (also logged as event=alert).",
            &rows,
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_switch_ramps_over_the_grace_period_and_a_backward_one_is_immediate() {
        let mut p = PhaseState::new(0, 100, 1000);
        assert_eq!(p.rollout_percent(1000), 100);
        p.switch(1, 100, 100, 1000);
        assert_eq!((p.from, p.phase), (0, 1));
        assert_eq!(p.rollout_percent(1000), 0);
        assert_eq!(p.rollout_percent(1050), 50);
        assert_eq!(p.rollout_percent(1100), 100);
        assert_eq!(p.effective(49, 1050), 1);
        assert_eq!(p.effective(50, 1050), 0);
        p.switch(0, 100, 100, 1200);
        assert_eq!(p.effective(99, 1200), 0, "backward switches apply at once");
    }

    #[test]
    fn the_cohort_caps_a_switch_and_the_kill_switch_reverts_for_everyone() {
        let mut p = PhaseState::new(1, 100, 0);
        p.switch(2, 0, 30, 10);
        assert_eq!(p.effective(29, 10), 2);
        assert_eq!(p.effective(30, 10), 1);
        assert!(p.revert(11));
        assert_eq!((p.phase, p.from), (1, 1));
        assert_eq!(p.effective(0, 11), 1);
        assert!(!p.revert(12), "no switch left to revert");
        assert_eq!(p.phase, 1);
        // The same phase again widens the cohort at once, and is not a step for the kill switch.
        p.switch(2, 0, 30, 20);
        p.switch(2, 600, 80, 30);
        assert_eq!((p.from, p.rollout_percent(30)), (1, 80));
        assert_eq!((p.effective(79, 30), p.effective(80, 30)), (2, 1));
        assert!(p.revert(31));
        assert_eq!(p.phase, 1);
        // Started with a partial cohort: the others are one phase below.
        let s = PhaseState::new(3, 40, 0);
        assert_eq!((s.effective(39, 0), s.effective(40, 0)), (3, 2));
    }

    #[test]
    fn secret_files_lose_exactly_one_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("wtm-secret-{}", tokens::random_id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (content, want) in [
            (&b"s3cret\n"[..], &b"s3cret"[..]),
            (b"s3cret\r\n", b"s3cret"),
            (b"s3cret\n\n", b"s3cret\n"),
            (b"s3cret", b"s3cret"),
        ] {
            let f = dir.join("s");
            std::fs::write(&f, content).expect("write");
            assert_eq!(read_secret_file(&f).expect("read"), want);
        }
        std::fs::write(dir.join("e"), b"\n").expect("write");
        assert!(read_secret_file(&dir.join("e")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
