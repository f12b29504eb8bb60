//! Command-line flags (each with an environment-variable equivalent) and the resolved [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

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
    /// Name of the refresh-token cookie.
    #[arg(long, env = "AUTH_COOKIE_NAME", default_value = "rt")]
    pub cookie_name: String,
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
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, env = "AUTH_LOG", default_value = "info")]
    pub log: String,
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
    /// Legacy migration (keys, phase at start, grace, admin secret).
    pub legacy: crate::legacy::LegacyConfig,
    /// Legacy cohort percentage.
    pub legacy_cohort_percent: u8,
    /// Legacy sunset, seconds after start.
    pub legacy_sunset: u64,
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
            allowed_origins: Vec::new(),
            login_rate_per_min: 20,
            refresh_rate_per_min: DEFAULT_REFRESH_RATE_PER_MIN,
            refresh_ip_rate_per_5min: 150,
            key_rotate_every: None,
            jwks_max_age: 300,
            legacy: crate::legacy::LegacyConfig::default(),
            legacy_cohort_percent: 100,
            legacy_sunset: 30 * 24 * 3600,
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
            legacy: a.legacy.into(),
            legacy_cohort_percent: a.legacy_cohort_percent,
            legacy_sunset: a.legacy_sunset,
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
