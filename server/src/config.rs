//! Command-line flags (each with an environment-variable equivalent) and the resolved [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use ipnet::IpNet;

use crate::clientip::{parse_trusted_proxy, ClientIpHeader};

/// Access-token lifetime when neither `--access-ttl` nor `--demo` is given.
pub const DEFAULT_ACCESS_TTL_SECS: u64 = 10 * 60;
/// Access-token lifetime in `--demo` mode (short, so the refresh flow is visible).
pub const DEMO_ACCESS_TTL_SECS: u64 = 20;
/// Verifier leeway on `exp`/`nbf`/`iat` (CATALOGUE 5: 30–60 s, pinned and tested).
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Rotations per minute per family (CATALOGUE S18).
pub const DEFAULT_REFRESH_RATE_PER_MIN: u32 = 10;
/// Rotations per minute per family in `--demo` mode.
pub const DEMO_REFRESH_RATE_PER_MIN: u32 = 30;
/// Leeway in `--demo` mode, so an expired demo token is visibly rejected.
pub const DEMO_LEEWAY_SECS: u64 = 1;
/// Default `--cookie-path`: the cookie goes only to `/auth/*`, never with API or page requests.
pub const DEFAULT_COOKIE_PATH: &str = "/auth";
/// Default `--max-connections-per-ip`: far above a browser's 6 connections per host, room for
/// a few dozen users behind one NAT address, and an eighth of [`DEFAULT_MAX_CONNECTIONS`].
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u32 = 64;
/// Default `--max-connections`: well below the usual open-file limit of 1,024, which also has to
/// cover the listener, the log and any static file being served.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 512;

/// Default `--max-sessions-per-user`: a user's browsers and devices, with room to spare.
pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 10;
/// Default `--max-sessions`: about 60 MB of session records at ~600 B each.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// Command-line interface of `auth-server`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "auth-server",
    version,
    about = "Reference auth server for wasm-token-manager"
)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port (the bound address is printed on stdout).
    #[arg(long, env = "AUTH_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Access-token lifetime (`600`, `30s`, `15m`, `1h`). Default 10m, or 20s with `--demo`.
    #[arg(long, env = "AUTH_ACCESS_TTL", value_parser = parse_duration)]
    pub access_ttl: Option<u64>,
    /// Leeway applied when verifying `exp`, `nbf`, `iat`. Default 30s, or 1s with `--demo`.
    #[arg(long, env = "AUTH_LEEWAY", value_parser = parse_duration)]
    pub leeway: Option<u64>,
    /// Refresh-session idle expiry, slid forward by each successful refresh.
    #[arg(long, env = "AUTH_REFRESH_IDLE_TTL", value_parser = parse_duration, default_value = "1h")]
    pub refresh_idle_ttl: u64,
    /// Absolute session lifetime; rotation never extends it.
    #[arg(long, env = "AUTH_SESSION_MAX", value_parser = parse_duration, default_value = "24h")]
    pub session_max: u64,
    /// Window in which the immediate parent refresh token gets the current child back (0 = strict).
    #[arg(long, env = "AUTH_REUSE_GRACE", value_parser = parse_duration, default_value = "10s")]
    pub reuse_grace: u64,
    /// Directory served at `/` (the demo site).
    #[arg(long, env = "AUTH_WWW")]
    pub www: Option<PathBuf>,
    /// Directory served at `/pkg/` (the built npm package).
    #[arg(long, env = "AUTH_PKG")]
    pub pkg: Option<PathBuf>,
    /// Enable the `/demo/*` control endpoints and short demo lifetimes.
    #[arg(long, env = "AUTH_DEMO")]
    pub demo: bool,
    /// Drop the `Secure` cookie attribute (only for plain-http hosts that are not localhost).
    #[arg(long, env = "AUTH_INSECURE_COOKIE")]
    pub insecure_cookie: bool,
    /// Name of the refresh-token cookie: an RFC 6265 token (see [`parse_cookie_name`]).
    #[arg(long, env = "AUTH_COOKIE_NAME", default_value = "rt", value_parser = parse_cookie_name)]
    pub cookie_name: String,
    /// `Path` of the refresh-token cookie: the path prefix under which the browser reaches
    /// `/auth/*`. Behind a proxy that strips a prefix (`/backend/auth/refresh` → `/auth/refresh`)
    /// it must be the browser's view, `/backend/auth`, or the cookie is never sent back.
    #[arg(long, env = "AUTH_COOKIE_PATH", default_value = DEFAULT_COOKIE_PATH, value_parser = parse_cookie_path)]
    pub cookie_path: String,
    /// Origin allowed to call `/auth/*` (repeatable; exact match, e.g. `http://localhost:5173`).
    /// With none, only the request's own origin (`http://` + Host) is accepted.
    #[arg(
        long = "allowed-origin",
        env = "AUTH_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Logins per minute per client IP (0 disables).
    #[arg(long, env = "AUTH_LOGIN_RATE_PER_MIN", default_value_t = 20)]
    pub login_rate_per_min: u32,
    /// Token rotations per minute per refresh family (0 disables). Default 10, or 30 with `--demo`
    /// (demo tabs that each refresh a 20 s token must not trip it).
    #[arg(long, env = "AUTH_REFRESH_RATE_PER_MIN")]
    pub refresh_rate_per_min: Option<u32>,
    /// `/auth/refresh` requests per 5 minutes per client IP (0 disables).
    #[arg(long, env = "AUTH_REFRESH_IP_RATE_PER_5MIN", default_value_t = 150)]
    pub refresh_ip_rate_per_5min: u32,
    /// Rotate the signing key this often (off by default).
    #[arg(long, env = "AUTH_KEY_ROTATE_EVERY", value_parser = parse_duration)]
    pub key_rotate_every: Option<u64>,
    /// JWKS `Cache-Control: max-age`; a new key is published this long before it signs.
    #[arg(long, env = "AUTH_JWKS_MAX_AGE", value_parser = parse_duration, default_value = "5m")]
    pub jwks_max_age: u64,
    /// Token issuer (`iss`).
    #[arg(
        long,
        env = "AUTH_ISSUER",
        default_value = "urn:wasm-token-manager:auth-server"
    )]
    pub issuer: String,
    /// Token audience (`aud`).
    #[arg(
        long,
        env = "AUTH_AUDIENCE",
        default_value = "urn:wasm-token-manager:api"
    )]
    pub audience: String,
    /// File holding the secret that APIs present (`Authorization: Bearer <secret>`) to
    /// `POST /auth/introspect` (RFC 7662); its content less one trailing newline. Without it there
    /// is no introspection endpoint.
    #[arg(long, env = "AUTH_INTROSPECTION_SECRET_FILE")]
    pub introspection_secret_file: Option<PathBuf>,
    /// Legacy migration flags (keys, phase, grace, admin secret): see `crate::legacy`.
    #[command(flatten)]
    pub legacy: crate::legacy::LegacyArgs,
    /// Percentage of users (by a hash of the user id) a legacy phase switch reaches.
    #[arg(long, env = "AUTH_LEGACY_COHORT_PERCENT", default_value_t = 100,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub legacy_cohort_percent: u8,
    /// Legacy sunset, as a duration after server start; afterwards legacy tokens are always refused
    /// (every user at least in phase 3); announced in the `Sunset` header in phase 1.
    #[arg(long, env = "AUTH_LEGACY_SUNSET", value_parser = parse_duration, default_value = "30d")]
    pub legacy_sunset: u64,
    /// A request head (request line and headers) must arrive within this long after the server
    /// starts waiting for it: on a new connection, or after the previous response on a kept-alive
    /// one. The connection is closed otherwise (hyper's header-read timeout). 0 turns it off.
    #[arg(long, env = "AUTH_HEADER_READ_TIMEOUT", value_parser = parse_duration, default_value = "10s")]
    pub header_read_timeout: u64,
    /// A connection with no request in flight and no byte received or sent for this long is
    /// closed (idle keep-alive). 0 turns it off.
    #[arg(long, env = "AUTH_KEEP_ALIVE_TIMEOUT", value_parser = parse_duration, default_value = "5s")]
    pub keep_alive_timeout: u64,
    /// Most connections open at once; further connections are closed as soon as they are accepted
    /// (counted in `auth_connections_refused_total`). Keep it below the open-file limit (`ulimit -n`).
    #[arg(long, env = "AUTH_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Most connections open at once from one peer IP address, so one client cannot take every
    /// `--max-connections` slot; `--trusted-proxy` peers are exempt. 0 turns it off.
    #[arg(long, env = "AUTH_MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: u32,
    /// A request's body must have arrived, and its answer be ready, within this long after its
    /// head: 408 and the connection closed otherwise. 0 turns it off.
    #[arg(long, env = "AUTH_BODY_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    pub body_timeout: u64,
    /// Request-body bytes the server holds in memory at once, over all requests (`65536`, `512k`,
    /// `64m`, `1g`; binary multiples). A body that does not fit gets 503 with `Retry-After`.
    #[arg(long, env = "AUTH_MAX_BUFFERED_BYTES", value_parser = parse_size, default_value = "64m")]
    pub max_buffered_bytes: u64,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to finish before the remaining
    /// connections are cut and the process exits.
    #[arg(long, env = "AUTH_SHUTDOWN_GRACE", value_parser = parse_duration, default_value = "10s")]
    pub shutdown_grace: u64,
    /// Most sessions one user holds at once; a login beyond it revokes that user's oldest session
    /// (its refresh token stops working, its access tokens are rejected). 0 turns it off.
    #[arg(long, env = "AUTH_MAX_SESSIONS_PER_USER", default_value_t = DEFAULT_MAX_SESSIONS_PER_USER)]
    pub max_sessions_per_user: usize,
    /// Most session records held in memory at once (live ones, and ended ones until their access
    /// tokens expire); a login beyond it is refused with 503 and `Retry-After`. 0 turns it off.
    #[arg(long, env = "AUTH_MAX_SESSIONS", default_value_t = DEFAULT_MAX_SESSIONS)]
    pub max_sessions: usize,
    /// A proxy whose forwarding header is believed for the client IP of per-IP limits: an address
    /// or a CIDR range (repeatable). None by default: the TCP peer is the client.
    #[arg(long = "trusted-proxy", env = "AUTH_TRUSTED_PROXIES", value_delimiter = ',',
          value_parser = parse_trusted_proxy)]
    pub trusted_proxies: Vec<IpNet>,
    /// The header trusted proxies write the client address to: `x-forwarded-for` or `forwarded`
    /// (RFC 7239 `for=`). Only this one is read, and only from a `--trusted-proxy` peer.
    #[arg(
        long,
        env = "AUTH_CLIENT_IP_HEADER",
        value_enum,
        default_value = "x-forwarded-for"
    )]
    pub client_ip_header: ClientIpHeader,
    /// DPoP (RFC 9449): `off` ignores the `DPoP` header (bearer tokens only); `allowed` binds
    /// the session and its access tokens to the key of a valid proof at login; `required` also
    /// refuses login and refresh without one.
    #[arg(long, env = "AUTH_DPOP", value_enum, default_value = "off")]
    pub dpop: crate::dpop::DpopMode,
    /// How far a DPoP proof's `iat` may be from the server's clock on its own; further off, the
    /// proof is accepted on the fresh server nonce it carries (RFC 9449 §4.3 step 11) and logged
    /// as `dpop_clock_skew`. Its `jti` is remembered while that nonce is accepted.
    #[arg(long, env = "AUTH_DPOP_PROOF_WINDOW", value_parser = parse_duration, default_value = "60s")]
    pub dpop_proof_window: u64,
    /// Issue a new DPoP server nonce this often; the previous one stays accepted as long again.
    /// Instances sharing `--key-encryption-key-file` issue and accept the same nonces.
    #[arg(long, env = "AUTH_DPOP_NONCE_ROTATE", value_parser = parse_duration, default_value = "60s")]
    pub dpop_nonce_rotate: u64,
    /// The scheme, host and path prefix clients reach this server at (`https://example.com/backend`),
    /// which a proof's `htu` must start with; the request path follows it. Default: `http://` + the
    /// request's Host.
    #[arg(long, env = "AUTH_DPOP_HTU_BASE", value_parser = parse_htu_base)]
    pub dpop_htu_base: Option<String>,
    /// Where sessions, revocations and signing keys live: `memory` (this process only; the
    /// default) or `redis://HOST:PORT/DB` (shared by every instance; needs
    /// `--key-encryption-key-file`, and a Redis whose `maxmemory-policy` is `noeviction`).
    #[arg(long, env = "AUTH_STORE", default_value = "memory", value_parser = parse_store)]
    pub store: StoreChoice,
    /// With `--store redis://…`: a file holding 32 random bytes in base64
    /// (`head -c 32 /dev/urandom | base64`), the key under which private signing keys and grace
    /// values are sealed in Redis. The same file on every instance; never stored in Redis.
    #[arg(long, env = "AUTH_KEY_ENCRYPTION_KEY_FILE")]
    pub key_encryption_key_file: Option<PathBuf>,
    /// With `--store redis://…`: the longest one Redis call may take, in milliseconds; past it
    /// the request fails closed (503 with `Retry-After`).
    #[arg(long, env = "AUTH_STORE_TIMEOUT_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub store_timeout_ms: u64,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, env = "AUTH_LOG", default_value = "info")]
    pub log: String,
}

/// The session store `--store` selects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreChoice {
    /// In process memory (the default): one instance, nothing survives a restart.
    #[default]
    Memory,
    /// Redis at this `redis://HOST:PORT/DB` URL, shared by every instance.
    Redis(String),
}

/// Parse `--store`: `memory`, or a `redis://` URL (`rediss://` for TLS is not built in).
pub fn parse_store(s: &str) -> Result<StoreChoice, String> {
    let s = s.trim();
    if s == "memory" {
        Ok(StoreChoice::Memory)
    } else if s.starts_with("redis://") {
        Ok(StoreChoice::Redis(s.to_string()))
    } else {
        Err("expected `memory` or `redis://HOST:PORT/DB`".into())
    }
}

/// The resolved configuration. All durations are whole seconds.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub addr: SocketAddr,
    /// Token issuer.
    pub issuer: String,
    /// Token audience.
    pub audience: String,
    /// Access-token lifetime.
    pub access_ttl: u64,
    /// Verifier leeway.
    pub leeway: u64,
    /// Refresh idle expiry.
    pub refresh_idle_ttl: u64,
    /// Absolute session lifetime.
    pub session_max: u64,
    /// Reuse grace window (0 = strict rotation).
    pub reuse_grace: u64,
    /// Static demo site.
    pub www: Option<PathBuf>,
    /// Static package directory.
    pub pkg: Option<PathBuf>,
    /// Demo endpoints on.
    pub demo: bool,
    /// `Secure` cookie attribute off.
    pub insecure_cookie: bool,
    /// Refresh cookie name.
    pub cookie_name: String,
    /// Refresh cookie `Path` (validated by [`parse_cookie_path`]).
    pub cookie_path: String,
    /// Explicit allowed origins (exact strings).
    pub allowed_origins: Vec<String>,
    /// Logins per minute per IP (0 = off).
    pub login_rate_per_min: u32,
    /// Rotations per minute per family (0 = off).
    pub refresh_rate_per_min: u32,
    /// Refresh requests per 5 minutes per IP (0 = off).
    pub refresh_ip_rate_per_5min: u32,
    /// Automatic key rotation period.
    pub key_rotate_every: Option<u64>,
    /// JWKS max-age and new-key publication lead.
    pub jwks_max_age: u64,
    /// The introspection secret's file (`POST /auth/introspect` exists only with it).
    pub introspection_secret_file: Option<PathBuf>,
    /// Legacy migration (keys, phase at start, grace, admin secret).
    pub legacy: crate::legacy::LegacyConfig,
    /// Legacy cohort percentage.
    pub legacy_cohort_percent: u8,
    /// Legacy sunset, seconds after start.
    pub legacy_sunset: u64,
    /// Deadline for a request head, seconds (0 = none).
    pub header_read_timeout: u64,
    /// Idle keep-alive deadline, seconds (0 = none).
    pub keep_alive_timeout: u64,
    /// Most connections open at once (at least 1).
    pub max_connections: u32,
    /// Most connections open at once from one non-proxy peer IP (0 = no limit).
    pub max_connections_per_ip: u32,
    /// Deadline for a request body and its answer, seconds after the head (0 = none).
    pub body_timeout: u64,
    /// Request-body bytes buffered at once over all requests.
    pub max_buffered_bytes: u64,
    /// Drain grace on shutdown, seconds.
    pub shutdown_grace: u64,
    /// Sessions per user before the oldest is revoked (0 = no limit).
    pub max_sessions_per_user: usize,
    /// Session records held before logins are refused with 503 (0 = no limit).
    pub max_sessions: usize,
    /// Proxies whose forwarding header is believed (none = the TCP peer is the client).
    pub trusted_proxies: Vec<IpNet>,
    /// The forwarding header read from trusted proxies.
    pub client_ip_header: ClientIpHeader,
    /// DPoP mode.
    pub dpop: crate::dpop::DpopMode,
    /// DPoP proof `iat` window and `jti` memory, seconds.
    pub dpop_proof_window: u64,
    /// DPoP nonce rotation period, seconds (at least 1).
    pub dpop_nonce_rotate: u64,
    /// Base URL that proofs' `htu` starts with (validated by [`parse_htu_base`]); `None`: `http://` + Host.
    pub dpop_htu_base: Option<String>,
    /// The session store (`--store`).
    pub store: StoreChoice,
    /// The key-encryption key file (`--key-encryption-key-file`), required with Redis.
    pub key_encryption_key_file: Option<PathBuf>,
    /// Bound on one store call, milliseconds (`--store-timeout-ms`).
    pub store_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: "urn:wasm-token-manager:auth-server".into(),
            audience: "urn:wasm-token-manager:api".into(),
            access_ttl: DEFAULT_ACCESS_TTL_SECS,
            leeway: DEFAULT_LEEWAY_SECS,
            refresh_idle_ttl: 3600,
            session_max: 24 * 3600,
            reuse_grace: 10,
            www: None,
            pkg: None,
            demo: false,
            insecure_cookie: false,
            cookie_name: "rt".into(),
            cookie_path: DEFAULT_COOKIE_PATH.into(),
            allowed_origins: Vec::new(),
            login_rate_per_min: 20,
            refresh_rate_per_min: DEFAULT_REFRESH_RATE_PER_MIN,
            refresh_ip_rate_per_5min: 150,
            key_rotate_every: None,
            jwks_max_age: 300,
            introspection_secret_file: None,
            legacy: crate::legacy::LegacyConfig::default(),
            legacy_cohort_percent: 100,
            legacy_sunset: 30 * 24 * 3600,
            header_read_timeout: 10,
            keep_alive_timeout: 5,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            body_timeout: 30,
            max_buffered_bytes: 64 * 1024 * 1024,
            shutdown_grace: 10,
            max_sessions_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
            max_sessions: DEFAULT_MAX_SESSIONS,
            trusted_proxies: Vec::new(),
            client_ip_header: ClientIpHeader::XForwardedFor,
            dpop: crate::dpop::DpopMode::Off,
            dpop_proof_window: crate::dpop::DEFAULT_PROOF_WINDOW_SECS,
            dpop_nonce_rotate: crate::dpop::DEFAULT_NONCE_ROTATE_SECS,
            dpop_htu_base: None,
            store: StoreChoice::Memory,
            key_encryption_key_file: None,
            store_timeout_ms: 1000,
        }
    }
}

impl From<Args> for Config {
    fn from(a: Args) -> Self {
        let access_ttl = a
            .access_ttl
            .unwrap_or(if a.demo {
                DEMO_ACCESS_TTL_SECS
            } else {
                DEFAULT_ACCESS_TTL_SECS
            })
            .max(1);
        let leeway = a.leeway.unwrap_or(if a.demo {
            DEMO_LEEWAY_SECS
        } else {
            DEFAULT_LEEWAY_SECS
        });
        Self {
            addr: a.addr,
            issuer: a.issuer,
            audience: a.audience,
            access_ttl,
            leeway,
            refresh_idle_ttl: a.refresh_idle_ttl.max(1),
            session_max: a.session_max.max(1),
            reuse_grace: a.reuse_grace,
            www: a.www,
            pkg: a.pkg,
            demo: a.demo,
            insecure_cookie: a.insecure_cookie,
            cookie_name: a.cookie_name,
            cookie_path: a.cookie_path,
            allowed_origins: a
                .allowed_origins
                .into_iter()
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .collect(),
            login_rate_per_min: a.login_rate_per_min,
            refresh_rate_per_min: a.refresh_rate_per_min.unwrap_or(if a.demo {
                DEMO_REFRESH_RATE_PER_MIN
            } else {
                DEFAULT_REFRESH_RATE_PER_MIN
            }),
            refresh_ip_rate_per_5min: a.refresh_ip_rate_per_5min,
            key_rotate_every: a.key_rotate_every.filter(|s| *s > 0),
            jwks_max_age: a.jwks_max_age,
            introspection_secret_file: a.introspection_secret_file,
            legacy: a.legacy.into(),
            legacy_cohort_percent: a.legacy_cohort_percent,
            legacy_sunset: a.legacy_sunset,
            header_read_timeout: a.header_read_timeout,
            keep_alive_timeout: a.keep_alive_timeout,
            max_connections: a.max_connections.max(1),
            max_connections_per_ip: a.max_connections_per_ip,
            body_timeout: a.body_timeout,
            max_buffered_bytes: a.max_buffered_bytes,
            shutdown_grace: a.shutdown_grace,
            max_sessions_per_user: a.max_sessions_per_user,
            max_sessions: a.max_sessions,
            trusted_proxies: a.trusted_proxies,
            client_ip_header: a.client_ip_header,
            dpop: a.dpop,
            dpop_proof_window: a.dpop_proof_window,
            dpop_nonce_rotate: a.dpop_nonce_rotate.max(1),
            dpop_htu_base: a.dpop_htu_base,
            store: a.store,
            key_encryption_key_file: a.key_encryption_key_file,
            store_timeout_ms: a.store_timeout_ms,
        }
    }
}

/// Parse `90`, `30s`, `15m`, `1h`, `7d` into whole seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid duration {s:?}: expected e.g. 30, 30s, 15m, 1h, 7d"
        ));
    }
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let mult = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hr" | "hrs" => 3600,
        "d" | "day" | "days" => 86_400,
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {s:?} (use s, m, h or d)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("duration {s:?} too large"))
}

/// Validate a cookie `Path` (RFC 6265 §4.1.1 path-value, made stricter): it must start with `/`
/// and contain no `;`, no whitespace and no control character, so it can neither end the
/// attribute early nor smuggle another attribute into `Set-Cookie`.
pub fn parse_cookie_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("cookie path {s:?} must start with '/'"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| *c == ';' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "cookie path {s:?} must not contain {c:?} (no ';', whitespace or control characters)"
        ));
    }
    Ok(s.to_string())
}

/// Validate a cookie name: an RFC 6265 §4.1.1 `cookie-name`, that is an RFC 9110 `token` (visible ASCII but the
/// separators `()<>@,;:\"/[]?={}`), since it is written into every `Set-Cookie` as it is: anything else could
/// inject attributes or headers. The `__Secure-`/`__Host-` prefixes are checked against the cookie's attributes by
/// [`check_cookie_prefix`].
pub fn parse_cookie_name(s: &str) -> Result<String, String> {
    const SEPARATORS: &str = "()<>@,;:\\\"/[]?={}";
    if s.is_empty() {
        return Err("cookie name must not be empty".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !c.is_ascii_graphic() || SEPARATORS.contains(*c))
    {
        return Err(format!(
            "cookie name {s:?} must be an RFC 6265 token: {c:?} is a separator, whitespace, a control or non-ASCII character"
        ));
    }
    Ok(s.to_string())
}

/// The cookie-name prefixes browsers enforce (RFC 6265bis §4.1.3): `__Secure-` needs the `Secure` attribute,
/// `__Host-` needs `Secure` and `Path=/` (the server never sets `Domain`). A cookie that breaks them is dropped
/// by every browser, so the server refuses to start with one.
pub fn check_cookie_prefix(name: &str, secure: bool, path: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("__secure-") && !secure {
        return Err(format!("cookie name {name:?}: the __Secure- prefix needs the Secure attribute (drop --insecure-cookie)"));
    }
    if lower.starts_with("__host-") && (!secure || path != "/") {
        return Err(format!("cookie name {name:?}: the __Host- prefix needs the Secure attribute and --cookie-path /"));
    }
    Ok(())
}

/// Validate `--dpop-htu-base` (the rule is the verifier library's, shared with `demo-api`).
pub use crate::dpop::parse_htu_base;

/// Parse `65536`, `512k`, `64m`, `1g` (binary multiples: k = 1,024 bytes) into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 65536, 512k, 64m, 1g"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {s:?} (use k, m or g)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_seconds_and_suffixes() {
        assert_eq!(parse_duration("45"), Ok(45));
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("-5").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn sizes_accept_bytes_and_binary_suffixes() {
        assert_eq!(parse_size("65536"), Ok(65_536));
        assert_eq!(parse_size("512k"), Ok(512 * 1024));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("k").is_err());
        assert!(parse_size("5t").is_err());
        assert!(parse_size("99999999999999999999g").is_err());
    }

    #[test]
    fn cookie_paths_are_validated() {
        assert_eq!(
            parse_cookie_path("/backend/auth"),
            Ok("/backend/auth".into())
        );
        assert_eq!(parse_cookie_path("/"), Ok("/".into()));
        for bad in [
            "",
            "auth",
            "/auth; Domain=evil.example",
            "/a b",
            "/a\tb",
            "/a\u{7f}",
            "/a\nSet-Cookie: x=1",
            "/a\u{a0}b",
        ] {
            assert!(parse_cookie_path(bad).is_err(), "{bad:?}");
        }
        let c = Config::from(Args::parse_from(["auth-server"]));
        assert_eq!(c.cookie_path, "/auth");
        let a = Args::try_parse_from(["auth-server", "--cookie-path", "/backend/auth"]);
        assert_eq!(Config::from(a.expect("valid")).cookie_path, "/backend/auth");
        assert!(Args::try_parse_from(["auth-server", "--cookie-path", "/x;y"]).is_err());
    }

    #[test]
    fn trusted_proxies_and_their_header() {
        let c = Config::from(Args::parse_from(["auth-server"]));
        assert!(c.trusted_proxies.is_empty(), "none by default");
        assert_eq!(c.client_ip_header, ClientIpHeader::XForwardedFor);
        let a = Args::parse_from([
            "auth-server",
            "--trusted-proxy",
            "10.0.0.0/8,::1",
            "--trusted-proxy",
            "192.0.2.7",
            "--client-ip-header",
            "forwarded",
        ]);
        let c = Config::from(a);
        assert_eq!(c.trusted_proxies.len(), 3);
        assert_eq!(c.client_ip_header, ClientIpHeader::Forwarded);
        assert!(Args::try_parse_from(["auth-server", "--trusted-proxy", "example.com"]).is_err());
        assert!(Args::try_parse_from(["auth-server", "--client-ip-header", "x-real-ip"]).is_err());
    }

    #[test]
    fn dpop_flags() {
        let c = Config::from(Args::parse_from(["auth-server"]));
        assert_eq!(c.dpop, crate::dpop::DpopMode::Off, "off by default");
        assert_eq!(c.dpop_proof_window, 60);
        assert_eq!(c.dpop_nonce_rotate, 60);
        let a = Args::parse_from([
            "auth-server",
            "--dpop",
            "required",
            "--dpop-proof-window",
            "2m",
            "--dpop-htu-base",
            "https://api.example/backend/",
        ]);
        let c = Config::from(a);
        assert_eq!(c.dpop, crate::dpop::DpopMode::Required);
        assert_eq!(c.dpop_proof_window, 120);
        assert_eq!(
            c.dpop_htu_base.as_deref(),
            Some("https://api.example/backend")
        );
        assert!(Args::try_parse_from(["auth-server", "--dpop", "on"]).is_err());
        for bad in [
            "/backend",
            "ftp://a.example",
            "https://a.example/?q",
            "https://u:p@a.example",
        ] {
            assert!(parse_htu_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn demo_mode_defaults_to_a_20_second_access_token() {
        let a = Args::parse_from(["auth-server", "--demo"]);
        let c = Config::from(a);
        assert_eq!(c.access_ttl, 20);
        assert_eq!(c.refresh_rate_per_min, DEMO_REFRESH_RATE_PER_MIN);
        assert_eq!(c.legacy.phase, 0);
        let a = Args::parse_from(["auth-server", "--demo", "--access-ttl", "2m"]);
        assert_eq!(Config::from(a).access_ttl, 120);
        let a = Args::parse_from(["auth-server", "--refresh-rate-per-min", "0"]);
        assert_eq!(Config::from(a).refresh_rate_per_min, 0);
        let a = Args::parse_from(["auth-server"]);
        let c = Config::from(a);
        assert_eq!(c.access_ttl, DEFAULT_ACCESS_TTL_SECS);
        assert_eq!(c.refresh_rate_per_min, DEFAULT_REFRESH_RATE_PER_MIN);
    }
}
