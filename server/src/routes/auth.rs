//! `/auth/*`: login, refresh (rotation, grace, reuse detection), logout (the legacy upgrade is in `legacy.rs`).
//!
//! Order of checks on `/auth/refresh`, each before the refresh token is touched:
//! CSRF (custom header, exact Origin, content type) → demo outage → cookie shape → per-IP rate
//! limit → atomic store transition (with the per-family rotation limit inside it). The per-IP
//! budget is spent only by requests that pass the cheap checks (S45), so cross-site junk or
//! cookie-less requests cannot lock out every user behind one NAT or proxy address.
//! Every request reaching the handler is counted under exactly one refresh `outcome`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::api::bearer;
use super::body::read_body;
use super::{json_error, with_retry_after, SMALL_BODY_LIMIT};
use crate::metrics::{LimitedRoute, Metrics, RefreshOutcomeLabel};
use crate::middleware::{because, is_listed_origin, origin_allowed};
use crate::store::{NewSession, RefreshOutcome, RefreshPolicy, SessionInfo};
use crate::tokens::{self, RefreshToken};
use crate::SharedState;

/// Built-in users (`username`, `password`). `demo`/`demo` is the documented demo user; the others
/// exist for multi-user tests.
pub const USERS: &[(&str, &str)] = &[("demo", "demo"), ("alice", "alice"), ("bob", "bob")];

/// The login body: exactly the JSON object `{"username": string, "password": string}` (S46).
/// Anything else is refused: another JSON type (serde's derive would also read the array
/// `["demo","demo"]` as this struct), a missing, repeated or unknown member, a non-string value.
struct LoginBody {
    username: String,
    password: String,
}

impl<'de> Deserialize<'de> for LoginBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LoginBody;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"an object {"username": string, "password": string}"#)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<LoginBody, A::Error> {
                use serde::de::Error;
                let (mut username, mut password) = (None, None);
                while let Some(key) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "username" => &mut username,
                        "password" => &mut password,
                        other => {
                            return Err(A::Error::unknown_field(other, &["username", "password"]))
                        }
                    };
                    if slot.is_some() {
                        return Err(A::Error::custom("duplicate member"));
                    }
                    *slot = Some(m.next_value::<String>()?);
                }
                Ok(LoginBody {
                    username: username.ok_or_else(|| A::Error::missing_field("username"))?,
                    password: password.ok_or_else(|| A::Error::missing_field("password"))?,
                })
            }
        }
        d.deserialize_map(V)
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn check_credentials(username: &str, password: &str) -> Option<&'static str> {
    let given = tokens::sha256(password.as_bytes());
    let mut found = None;
    for (u, p) in USERS {
        // Compare every entry, so the work does not depend on which user matched.
        let ok = constant_time_eq(&given, &tokens::sha256(p.as_bytes()));
        if *u == username && ok {
            found = Some(*u);
        }
    }
    found
}

/// Why a CSRF check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CsrfFailure {
    Forbidden(&'static str),
    UnsupportedMediaType,
}

/// Logged reason of a `Content-Type` refusal.
const NOT_ONE_JSON_CONTENT_TYPE: &str = "Content-Type is not exactly one application/json header";

impl CsrfFailure {
    pub(crate) fn response(self) -> Response {
        match self {
            CsrfFailure::Forbidden(why) => {
                because(json_error(StatusCode::FORBIDDEN, "forbidden"), why)
            }
            CsrfFailure::UnsupportedMediaType => because(
                json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
                NOT_ONE_JSON_CONTENT_TYPE,
            ),
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// CSRF rules for `/auth/refresh`, `/auth/logout` and `/auth/legacy/upgrade` (S15/S16):
/// a non-empty `X-Requested-With`; an `Origin` header that exactly matches an allowed origin
/// (required: requests without `Origin` are refused); `Sec-Fetch-Site: cross-site` refused unless the
/// origin is explicitly listed; a body content type, if any, must be `application/json`.
pub(crate) fn check_csrf(state: &SharedState, headers: &HeaderMap) -> Result<(), CsrfFailure> {
    let xrw = header_str(headers, "x-requested-with")
        .map(str::trim)
        .unwrap_or("");
    if xrw.is_empty() {
        return Err(CsrfFailure::Forbidden("missing X-Requested-With"));
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let (Some(origin), None) = (origins.next(), origins.next()) else {
        return Err(CsrfFailure::Forbidden("missing or repeated Origin"));
    };
    let origin = origin
        .to_str()
        .map_err(|_| CsrfFailure::Forbidden("bad Origin"))?;
    if !origin_allowed(state, headers, origin) {
        return Err(CsrfFailure::Forbidden("Origin not allowed"));
    }
    if header_str(headers, "sec-fetch-site") == Some("cross-site")
        && !is_listed_origin(state, origin)
    {
        return Err(CsrfFailure::Forbidden("cross-site"));
    }
    if headers.contains_key(header::CONTENT_TYPE) && !is_single_json_content_type(headers) {
        return Err(CsrfFailure::UnsupportedMediaType);
    }
    Ok(())
}

/// Exactly one `Content-Type` header, whose essence is `application/json` (S46: two headers,
/// even two equal ones, are refused rather than one of them picked).
fn is_single_json_content_type(headers: &HeaderMap) -> bool {
    let mut all = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(ct), None) = (all.next(), all.next()) else {
        return false;
    };
    let essence = ct.to_str().unwrap_or("").split(';').next().unwrap_or("");
    essence.trim().eq_ignore_ascii_case("application/json")
}

/// What the `Cookie` headers say about the refresh cookie.
enum CookieRead {
    Missing,
    /// Two cookies with our name (path or domain shadowing): refused as ambiguous (S13).
    Ambiguous,
    Malformed,
    Token(RefreshToken),
}

fn read_refresh_cookie(headers: &HeaderMap, name: &str) -> CookieRead {
    let mut found: Vec<&str> = Vec::new();
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else {
            return CookieRead::Malformed;
        };
        for pair in v.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=') {
                if k.trim() == name {
                    found.push(val.trim());
                }
            }
        }
    }
    match found.as_slice() {
        [] => CookieRead::Missing,
        [one] => RefreshToken::parse(one.trim_matches('"'))
            .map_or(CookieRead::Malformed, CookieRead::Token),
        _ => CookieRead::Ambiguous,
    }
}

/// `; Path=<--cookie-path>; HttpOnly; [Secure; ]SameSite=Strict` (the path was validated at start).
fn cookie_attrs(state: &SharedState) -> String {
    let secure = if state.config.insecure_cookie {
        ""
    } else {
        " Secure;"
    };
    format!(
        "; Path={}; HttpOnly;{secure} SameSite=Strict",
        state.config.cookie_path
    )
}

fn set_cookie(state: &SharedState, token: &RefreshToken, expires_at: u64) -> Option<HeaderValue> {
    let max_age = expires_at.saturating_sub(state.now());
    let v = format!(
        "{}={}; Max-Age={}{}",
        state.config.cookie_name,
        token.expose(),
        max_age,
        cookie_attrs(state)
    );
    HeaderValue::from_str(&v).ok()
}

fn clear_cookie(state: &SharedState) -> Option<HeaderValue> {
    let v = format!(
        "{}=; Max-Age=0{}",
        state.config.cookie_name,
        cookie_attrs(state)
    );
    HeaderValue::from_str(&v).ok()
}

/// 200 with a fresh access token for the session and the refresh cookie.
pub(crate) fn token_response(
    state: &SharedState,
    info: &SessionInfo,
    rt: &RefreshToken,
) -> Response {
    let (at, _) = match state.mint_access(&info.sub, &info.sid) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot mint access token");
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
        }
    };
    let mut r = Json(json!({
        "accessToken": at,
        "expiresIn": state.config.access_ttl,
        "tokenType": "Bearer",
    }))
    .into_response();
    if let Some(c) = set_cookie(state, rt, info.expires_at) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// One answer for missing, unknown, expired, revoked and reused tokens (S39); only the log
/// tells them apart (`why`).
fn invalid_grant(why: &'static str) -> Response {
    because(json_error(StatusCode::UNAUTHORIZED, "invalid_grant"), why)
}

/// 429 with `Retry-After`; `why` names the limit for the log.
fn rate_limited(
    state: &SharedState,
    route: LimitedRoute,
    retry: u64,
    why: &'static str,
) -> Response {
    state.metrics.rate_limited(route);
    let r = json_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    with_retry_after(because(r, why), retry)
}

fn new_session(state: &SharedState, sub: &str) -> Response {
    let (info, rt) = start_session(state, sub);
    token_response(state, &info, &rt)
}

/// Create a session (a new refresh family) for `sub`; the caller answers with [`token_response`].
pub(crate) fn start_session(state: &SharedState, sub: &str) -> (SessionInfo, RefreshToken) {
    let sid = tokens::random_id();
    let rt = RefreshToken::generate();
    let now = state.now();
    state.store.create(NewSession {
        sid: sid.clone(),
        sub: sub.to_string(),
        token: rt.clone(),
        now,
        idle_ttl: state.config.refresh_idle_ttl,
        session_max: state.config.session_max,
    });
    let absolute = now.saturating_add(state.config.session_max);
    let info = SessionInfo {
        sid,
        sub: sub.to_string(),
        expires_at: now
            .saturating_add(state.config.refresh_idle_ttl)
            .min(absolute),
        absolute_expires_at: absolute,
    };
    (info, rt)
}

/// `POST /auth/login` `{username, password}`.
pub(crate) async fn login(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Login CSRF: a browser-sent Origin must be allowed; non-browser clients send none.
    if let Some(origin) = header_str(&headers, "origin") {
        if !origin_allowed(&state, &headers, origin) {
            return because(
                json_error(StatusCode::FORBIDDEN, "forbidden"),
                "Origin not allowed",
            );
        }
    }
    if !is_single_json_content_type(&headers) {
        return CsrfFailure::UnsupportedMediaType.response();
    }
    if let Err(retry) = state
        .limits
        .login_ip
        .check(&state.client_ip(peer, &headers))
    {
        let why = "login rate limit of this client IP";
        return rate_limited(&state, LimitedRoute::Login, retry, why);
    }
    let body = match read_body(&state, &headers, body, SMALL_BODY_LIMIT).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    // The parser's message is not logged: it can quote the body, and so a password.
    let Ok(creds) = serde_json::from_slice::<LoginBody>(&body.bytes) else {
        return because(
            json_error(StatusCode::BAD_REQUEST, "invalid_request"),
            "body is not exactly {\"username\": string, \"password\": string}",
        );
    };
    let Some(sub) = check_credentials(&creds.username, &creds.password) else {
        Metrics::inc(&state.metrics.login_failures);
        tracing::info!("login rejected");
        return because(
            json_error(StatusCode::UNAUTHORIZED, "invalid_credentials"),
            "unknown user or wrong password",
        );
    };
    Metrics::inc(&state.metrics.logins);
    let resp = new_session(&state, sub);
    tracing::info!(sub = %sub, "login");
    resp
}

/// `POST /auth/refresh` with the refresh cookie.
pub(crate) async fn refresh(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (label, resp) = refresh_inner(&state, peer, &headers);
    state.metrics.refresh(label);
    if label == RefreshOutcomeLabel::InvalidGrant {
        let client = crate::legacy::ClientInfo::from_headers(&headers);
        let peer = peer.ip().to_string();
        state
            .migration
            .note_refresh_failure(&peer, &client, state.now());
    }
    tracing::info!(outcome = label.as_str(), "refresh");
    resp
}

fn refresh_inner(
    state: &SharedState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> (RefreshOutcomeLabel, Response) {
    use RefreshOutcomeLabel as L;
    if let Err(why) = check_csrf(state, headers) {
        tracing::warn!(reason = ?why, "refresh refused by CSRF checks");
        return (L::Csrf, why.response());
    }
    if let Some(left) = state.refresh_outage_left() {
        let r = json_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
        let r = because(r, "demo refresh outage (/demo/fail-refresh)");
        return (L::Unavailable, with_retry_after(r, left));
    }
    let presented = match read_refresh_cookie(headers, &state.config.cookie_name) {
        CookieRead::Token(t) => t,
        CookieRead::Missing => return (L::InvalidGrant, invalid_grant("no refresh cookie")),
        CookieRead::Ambiguous => {
            return (
                L::InvalidGrant,
                invalid_grant("more than one refresh cookie"),
            )
        }
        CookieRead::Malformed => {
            return (L::InvalidGrant, invalid_grant("malformed refresh cookie"))
        }
    };
    if let Err(retry) = state
        .limits
        .refresh_ip
        .check(&state.client_ip(peer, headers))
    {
        let why = "refresh rate limit of this client IP";
        return (
            L::RateLimited,
            rate_limited(state, LimitedRoute::Refresh, retry, why),
        );
    }
    let policy = RefreshPolicy {
        now: state.now(),
        grace: state.config.reuse_grace,
        idle_ttl: state.config.refresh_idle_ttl,
    };
    let limits = &state.limits;
    let admit = |sid: &str| limits.refresh_family.check(&sid.to_string());
    let child = RefreshToken::generate();
    match state
        .store
        .refresh(&presented.hash(), child.clone(), policy, &admit)
    {
        RefreshOutcome::Rotated(info) => {
            state.migration.note_rotation(&info.sid, state.now());
            (L::Ok, token_response(state, &info, &child))
        }
        RefreshOutcome::Grace(info, current) => {
            tracing::info!(sid = %info.sid, "refresh: parent replayed within grace, current child re-sent");
            (L::Grace, token_response(state, &info, &current))
        }
        RefreshOutcome::Reused(info) => {
            let m = &state.metrics;
            Metrics::inc(&m.reuse_detected);
            Metrics::inc(&m.family_revocations);
            Metrics::inc(&m.revocations);
            tracing::warn!(sid = %info.sid, sub = %info.sub, "rt_reuse_detected: family and session revoked");
            let alert = [("sid", info.sid.as_str()), ("sub", info.sub.as_str())];
            state.migration.alert(crate::legacy::Alert::RtReuse, &alert);
            let why = "rotated refresh token reused: family and session revoked";
            (L::InvalidGrant, invalid_grant(why))
        }
        RefreshOutcome::Limited(retry) => {
            let why = "rotation rate limit of this session";
            (
                L::RateLimited,
                rate_limited(state, LimitedRoute::Refresh, retry, why),
            )
        }
        RefreshOutcome::Invalid => {
            let why = "unknown, expired or revoked refresh token";
            (L::InvalidGrant, invalid_grant(why))
        }
    }
}

/// `POST /auth/logout`: revoke the family and the session's access tokens, clear the cookie.
/// Idempotent: 200 with a clearing cookie even without a (valid) cookie. CSRF-checked first.
pub(crate) async fn logout(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if let Err(why) = check_csrf(&state, &headers) {
        tracing::warn!(reason = ?why, "logout refused by CSRF checks");
        return why.response();
    }
    let now = state.now();
    let mut revoked = None;
    if let CookieRead::Token(t) = read_refresh_cookie(&headers, &state.config.cookie_name) {
        revoked = state.store.revoke_by_token(&t.hash(), now).map(|i| i.sid);
    }
    if revoked.is_none() {
        // No usable cookie: a valid bearer token still identifies the session to end.
        if let Some(claims) = bearer(&headers).and_then(|t| state.authenticate(t).ok()) {
            if state.store.revoke_session(&claims.sid, now) {
                revoked = Some(claims.sid);
            }
        }
    }
    if let Some(sid) = &revoked {
        Metrics::inc(&state.metrics.family_revocations);
        Metrics::inc(&state.metrics.revocations);
        tracing::info!(sid = %sid, "logout: session revoked");
    }
    Metrics::inc(&state.metrics.logouts);
    let mut r = Json(json!({ "ok": true })).into_response();
    if let Some(c) = clear_cookie(&state) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}
