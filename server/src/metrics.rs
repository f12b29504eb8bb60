//! Prometheus counters, hand-rolled (a few atomics; no registry needed).
//!
//! Every request that reaches the `/auth/refresh` handler is counted under exactly one
//! `outcome`, so end-to-end tests can compare deltas ("exactly one refresh reached the server").

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The outcome of one `/auth/refresh` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcomeLabel {
    /// Rotated.
    Ok,
    /// Missing, unknown, expired, revoked or reused token.
    InvalidGrant,
    /// 429.
    RateLimited,
    /// 403/415 from the CSRF checks.
    Csrf,
    /// Immediate parent within the grace window: current child returned.
    Grace,
    /// 503 (demo fail-refresh).
    Unavailable,
    /// 400 for the DPoP proof (`use_dpop_nonce`, `invalid_dpop_proof`): says nothing about the cookie.
    DpopProof,
}

impl RefreshOutcomeLabel {
    const ALL: [RefreshOutcomeLabel; 7] = [
        Self::Ok,
        Self::InvalidGrant,
        Self::RateLimited,
        Self::Csrf,
        Self::Grace,
        Self::Unavailable,
        Self::DpopProof,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::InvalidGrant => "invalid_grant",
            Self::RateLimited => "rate_limited",
            Self::Csrf => "csrf",
            Self::Grace => "grace",
            Self::Unavailable => "unavailable",
            Self::DpopProof => "dpop_proof",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Ok => 0,
            Self::InvalidGrant => 1,
            Self::RateLimited => 2,
            Self::Csrf => 3,
            Self::Grace => 4,
            Self::Unavailable => 5,
            Self::DpopProof => 6,
        }
    }
}

/// A route with a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitedRoute {
    /// `/auth/login`.
    Login,
    /// `/auth/refresh`.
    Refresh,
}

/// Outcomes of the legacy upgrade endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyOutcome {
    /// Upgraded.
    Ok,
    /// Refused: phase 3 or later for the user (or after the sunset).
    Retired,
    /// Second use of the same legacy token.
    Replay,
    /// Not a valid legacy token.
    Invalid,
}

/// All counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Successful logins.
    pub logins: AtomicU64,
    /// Failed logins.
    pub login_failures: AtomicU64,
    refresh: [AtomicU64; 7],
    /// Reuse detections.
    pub reuse_detected: AtomicU64,
    /// Families revoked (reuse or logout).
    pub family_revocations: AtomicU64,
    /// Revocations of any kind: sessions at logout or reuse, single access tokens.
    pub revocations: AtomicU64,
    rate_limited_login: AtomicU64,
    rate_limited_refresh: AtomicU64,
    /// API calls answered 200.
    pub api_ok: AtomicU64,
    /// API calls answered 401.
    pub api_unauthorized: AtomicU64,
    /// Logout requests answered 200.
    pub logouts: AtomicU64,
    /// Access tokens revoked by jti.
    pub access_revocations: AtomicU64,
    legacy: [AtomicU64; 4],
    /// Connections open now (a gauge).
    pub connections_open: AtomicU64,
    /// Requests whose head has been read and whose answer is not ready yet (a gauge).
    pub requests_in_flight: AtomicU64,
    /// Connections closed at accept because `--max-connections` were open.
    pub connections_refused: AtomicU64,
    /// Connections closed at accept because their peer IP had `--max-connections-per-ip` open.
    pub connections_refused_per_ip: AtomicU64,
    /// Connections closed because a request head did not arrive within `--header-read-timeout`.
    pub header_read_timeouts: AtomicU64,
    /// Connections closed after `--keep-alive-timeout` without a request.
    pub keep_alive_timeouts: AtomicU64,
    /// DPoP proofs refused (any reason but a missing or stale nonce).
    pub dpop_proofs_refused: AtomicU64,
    /// A security event: a DPoP-bound refresh cookie or access token presented without its key
    /// (another key's proof, no proof, or a bound access token sent as a bearer token).
    pub dpop_key_mismatch: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Metrics {
    /// Count one refresh request.
    pub fn refresh(&self, o: RefreshOutcomeLabel) {
        if let Some(c) = self.refresh.get(o.index()) {
            inc(c);
        }
    }

    /// Refresh requests with this outcome so far.
    pub fn refresh_count(&self, o: RefreshOutcomeLabel) -> u64 {
        self.refresh.get(o.index()).map(get).unwrap_or(0)
    }

    /// Count one rate-limited request.
    pub fn rate_limited(&self, r: LimitedRoute) {
        match r {
            LimitedRoute::Login => inc(&self.rate_limited_login),
            LimitedRoute::Refresh => inc(&self.rate_limited_refresh),
        }
    }

    /// Count one legacy-upgrade request.
    pub fn legacy(&self, o: LegacyOutcome) {
        let i = match o {
            LegacyOutcome::Ok => 0,
            LegacyOutcome::Retired => 1,
            LegacyOutcome::Replay => 2,
            LegacyOutcome::Invalid => 3,
        };
        if let Some(c) = self.legacy.get(i) {
            inc(c);
        }
    }

    /// Increment a plain counter.
    pub fn inc(c: &AtomicU64) {
        inc(c)
    }

    /// Decrement a gauge.
    pub fn dec(c: &AtomicU64) {
        c.fetch_sub(1, Ordering::Relaxed);
    }

    /// Read a plain counter.
    pub fn get(c: &AtomicU64) -> u64 {
        get(c)
    }

    /// The demo page's counters (`GET /demo/stats`).
    pub fn demo_stats(&self) -> serde_json::Value {
        let refresh_calls: u64 = self.refresh.iter().map(get).sum();
        serde_json::json!({
            "apiCalls": get(&self.api_ok) + get(&self.api_unauthorized),
            "apiOk": get(&self.api_ok),
            "api401": get(&self.api_unauthorized),
            "refreshCalls": refresh_calls,
            "refreshOk": self.refresh_count(RefreshOutcomeLabel::Ok),
            "refreshGrace": self.refresh_count(RefreshOutcomeLabel::Grace),
            "refreshInvalid": self.refresh_count(RefreshOutcomeLabel::InvalidGrant),
            "refreshRateLimited": self.refresh_count(RefreshOutcomeLabel::RateLimited),
            "refreshCsrf": self.refresh_count(RefreshOutcomeLabel::Csrf),
            "refreshUnavailable": self.refresh_count(RefreshOutcomeLabel::Unavailable),
            "reuseDetected": get(&self.reuse_detected),
            "familyRevocations": get(&self.family_revocations),
            "logins": get(&self.logins),
            "logouts": get(&self.logouts),
            "accessRevocations": get(&self.access_revocations),
        })
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(2048);
        let mut counter = |name: &str, help: &str, rows: &[(&str, u64)]| {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} counter");
            for (labels, v) in rows {
                if labels.is_empty() {
                    let _ = writeln!(o, "{name} {v}");
                } else {
                    let _ = writeln!(o, "{name}{{{labels}}} {v}");
                }
            }
        };
        counter(
            "auth_logins_total",
            "Successful logins.",
            &[("", get(&self.logins))],
        );
        counter(
            "auth_login_failures_total",
            "Rejected credentials.",
            &[("", get(&self.login_failures))],
        );
        let labels: Vec<String> = RefreshOutcomeLabel::ALL
            .iter()
            .map(|o| format!("outcome=\"{}\"", o.as_str()))
            .collect();
        let rows: Vec<(&str, u64)> = RefreshOutcomeLabel::ALL
            .iter()
            .zip(labels.iter())
            .map(|(o, l)| (l.as_str(), self.refresh_count(*o)))
            .collect();
        counter(
            "auth_refresh_requests_total",
            "Requests reaching /auth/refresh, by outcome.",
            &rows,
        );
        counter(
            "auth_rt_reuse_detected_total",
            "Rotated refresh tokens replayed outside the grace rules.",
            &[("", get(&self.reuse_detected))],
        );
        counter(
            "auth_family_revocations_total",
            "Refresh families revoked (reuse detection or logout).",
            &[("", get(&self.family_revocations))],
        );
        counter(
            "auth_revocations_total",
            "Revocations: sessions (logout, reuse) and single access tokens.",
            &[("", get(&self.revocations))],
        );
        counter(
            "auth_rate_limited_total",
            "Requests refused with 429.",
            &[
                ("route=\"login\"", get(&self.rate_limited_login)),
                ("route=\"refresh\"", get(&self.rate_limited_refresh)),
            ],
        );
        counter(
            "auth_api_requests_total",
            "Bearer-authenticated API requests, by outcome.",
            &[
                ("outcome=\"ok\"", get(&self.api_ok)),
                ("outcome=\"unauthorized\"", get(&self.api_unauthorized)),
            ],
        );
        counter(
            "auth_logouts_total",
            "Logout requests answered 200.",
            &[("", get(&self.logouts))],
        );
        let legacy: Vec<(&str, u64)> = ["ok", "retired", "replay", "invalid"]
            .iter()
            .zip(self.legacy.iter())
            .map(|(l, c)| (*l, get(c)))
            .collect();
        let legacy_labels: Vec<String> = legacy
            .iter()
            .map(|(l, _)| format!("outcome=\"{l}\""))
            .collect();
        let legacy_rows: Vec<(&str, u64)> = legacy_labels
            .iter()
            .zip(legacy.iter())
            .map(|(l, (_, v))| (l.as_str(), *v))
            .collect();
        counter(
            "auth_legacy_upgrades_total",
            "Legacy-token upgrade attempts, by outcome.",
            &legacy_rows,
        );
        counter(
            "auth_connections_refused_total",
            "Connections closed at accept, by the limit that was reached.",
            &[
                ("limit=\"total\"", get(&self.connections_refused)),
                ("limit=\"per_ip\"", get(&self.connections_refused_per_ip)),
            ],
        );
        counter(
            "auth_connection_timeouts_total",
            "Connections closed by a deadline: no complete request head within --header-read-timeout, or idle for --keep-alive-timeout.",
            &[
                ("reason=\"header_read\"", get(&self.header_read_timeouts)),
                ("reason=\"keep_alive\"", get(&self.keep_alive_timeouts)),
            ],
        );
        counter(
            "auth_dpop_proofs_refused_total",
            "DPoP proofs refused (bad form, signature, claims, or a replay); nonce challenges not included.",
            &[("", get(&self.dpop_proofs_refused))],
        );
        counter(
            "auth_dpop_key_mismatch_total",
            "DPoP-bound refresh cookies or access tokens presented without the key they are bound to.",
            &[("", get(&self.dpop_key_mismatch))],
        );
        let _ = writeln!(o, "# HELP auth_connections_open Connections open now.");
        let _ = writeln!(o, "# TYPE auth_connections_open gauge");
        let _ = writeln!(o, "auth_connections_open {}", get(&self.connections_open));
        let _ = writeln!(
            o,
            "# HELP auth_requests_in_flight Requests read and not yet answered (this scrape included)."
        );
        let _ = writeln!(o, "# TYPE auth_requests_in_flight gauge");
        let _ = writeln!(
            o,
            "auth_requests_in_flight {}",
            get(&self.requests_in_flight)
        );
        o
    }
}
