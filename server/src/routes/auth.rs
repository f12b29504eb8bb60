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
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::body::read_body;
use super::dpop::token_endpoint_proof;
use super::error::ApiError;
use super::extract::{
    header_str, is_single_json_content_type, BearerToken, CsrfChecked, RefreshCookie,
};
use super::SMALL_BODY_LIMIT;
use crate::metrics::{LimitedRoute, Metrics, RefreshOutcomeLabel};
use crate::middleware::origin_allowed;
use crate::store::{NewSession, RefreshOutcome, RefreshPolicy, SessionInfo};
use crate::tokens::{self, RefreshToken};
use crate::{AuthError, SharedState};

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

/// 200 with a fresh access token for the session and the refresh cookie; `jkt`: bind the access
/// token to that DPoP key (see [`access_token_response`]).
pub(crate) fn token_response(
    state: &SharedState,
    info: &SessionInfo,
    rt: &RefreshToken,
    jkt: Option<&str>,
) -> Result<Response, ApiError> {
    let mut r = access_token_response(state, &info.sub, &info.sid, jkt)?;
    if let Some(c) = set_cookie(state, rt, info.expires_at) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(r)
}

/// 200 `{accessToken, expiresIn, tokenType}` with a fresh access token for the session (no
/// cookie). With `jkt` the token carries `cnf.jkt` and `tokenType` is `"DPoP"` (RFC 9449 §5),
/// else `"Bearer"`.
pub(crate) fn access_token_response(
    state: &SharedState,
    sub: &str,
    sid: &str,
    jkt: Option<&str>,
) -> Result<Response, ApiError> {
    let (at, _) = state
        .mint_access_bound(sub, sid, jkt)
        .map_err(|e| ApiError::internal(format!("cannot mint access token: {e}")))?;
    Ok(Json(json!({
        "accessToken": at,
        "expiresIn": state.config.access_ttl,
        "tokenType": if jkt.is_some() { "DPoP" } else { "Bearer" },
    }))
    .into_response())
}

/// 429 with `Retry-After`, counted; `why` names the limit for the log.
fn rate_limited(
    state: &SharedState,
    route: LimitedRoute,
    retry_after: u64,
    why: &'static str,
) -> ApiError {
    state.metrics.rate_limited(route);
    ApiError::RateLimited {
        retry_after,
        reason: why.into(),
    }
}

/// Create a session (a new refresh family) for `sub`, bound to the DPoP key `jkt` if given; the
/// caller answers with [`token_response`]. Errors: the store's (503).
pub(crate) async fn start_session(
    state: &SharedState,
    sub: &str,
    jkt: Option<&str>,
) -> Result<(SessionInfo, RefreshToken), ApiError> {
    let rt = RefreshToken::generate();
    let info = state
        .store
        .create(NewSession {
            sid: tokens::random_id(),
            sub: sub.to_string(),
            token: rt.clone(),
            now: state.now(),
            idle_ttl: state.config.refresh_idle_ttl,
            session_max: state.config.session_max,
            jkt: jkt.map(|j| tokens::sha256(j.as_bytes())),
        })
        .await?;
    Ok((info, rt))
}

/// `POST /auth/login` `{username, password}`.
pub(crate) async fn login(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Login CSRF: a browser-sent Origin must be allowed; non-browser clients send none.
    if let Some(origin) = header_str(&headers, "origin") {
        if !origin_allowed(&state, &headers, origin) {
            return Err(ApiError::forbidden("Origin not allowed"));
        }
    }
    if !is_single_json_content_type(&headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    if let Err(retry) = state
        .limits
        .login_ip
        .check(&state.client_ip(peer, &headers))
    {
        let why = "login rate limit of this client IP";
        return Err(rate_limited(&state, LimitedRoute::Login, retry, why));
    }
    let proof = token_endpoint_proof(&state, &Method::POST, &uri, &headers).await?;
    let jkt = proof.map(|p| p.jkt);
    let body = read_body(&state, &headers, body, SMALL_BODY_LIMIT).await?;
    // The parser's message is not logged: it can quote the body, and so a password.
    let creds = serde_json::from_slice::<LoginBody>(&body.bytes).map_err(|_| {
        ApiError::invalid_request(
            "body is not exactly {\"username\": string, \"password\": string}",
        )
    })?;
    let Some(sub) = check_credentials(&creds.username, &creds.password) else {
        Metrics::inc(&state.metrics.login_failures);
        tracing::info!("login rejected");
        return Err(ApiError::Unauthorized {
            code: "invalid_credentials",
            challenge: None,
            reason: "unknown user or wrong password".into(),
        });
    };
    let (info, rt) = start_session(&state, sub, jkt.as_deref()).await?;
    Metrics::inc(&state.metrics.logins);
    tracing::info!(sub = %sub, dpop = jkt.is_some(), "login");
    token_response(&state, &info, &rt, jkt.as_deref())
}

/// `POST /auth/refresh` with the refresh cookie. Every request reaching the handler is counted
/// under exactly one refresh `outcome`.
pub(crate) async fn refresh(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    csrf: Result<CsrfChecked, ApiError>,
    cookie: Result<RefreshCookie, ApiError>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let result = refresh_inner(&state, peer, &uri, &headers, csrf, cookie).await;
    let label = match &result {
        Ok((label, _)) => *label,
        Err(e) => error_label(e),
    };
    state.metrics.refresh(label);
    // A refused DPoP proof (a nonce challenge, mostly) says nothing about the cookie: not a refresh failure.
    let dpop_refusal = matches!(result, Err(ApiError::Dpop { .. }));
    if label == RefreshOutcomeLabel::InvalidGrant && !dpop_refusal {
        let client = crate::legacy::ClientInfo::from_headers(&headers);
        let peer = peer.ip().to_string();
        state
            .migration
            .note_refresh_failure(&peer, &client, state.now());
    }
    tracing::info!(outcome = label.as_str(), "refresh");
    result.map(|(_, r)| r)
}

/// The refresh `outcome` label of a refusal.
fn error_label(e: &ApiError) -> RefreshOutcomeLabel {
    use RefreshOutcomeLabel as L;
    match e {
        ApiError::Forbidden(_) | ApiError::UnsupportedMediaType => L::Csrf,
        ApiError::RateLimited { .. } => L::RateLimited,
        ApiError::Unavailable { .. } => L::Unavailable,
        ApiError::Dpop { .. } => L::DpopProof,
        _ => L::InvalidGrant,
    }
}

/// Order of checks, each before the refresh token is touched: CSRF → demo outage → cookie →
/// per-IP limit → DPoP proof (`--dpop`) → the store's atomic step (with the per-family limit
/// and the family's key binding inside it).
async fn refresh_inner(
    state: &SharedState,
    peer: SocketAddr,
    uri: &Uri,
    headers: &HeaderMap,
    csrf: Result<CsrfChecked, ApiError>,
    cookie: Result<RefreshCookie, ApiError>,
) -> Result<(RefreshOutcomeLabel, Response), ApiError> {
    use RefreshOutcomeLabel as L;
    csrf?;
    if let Some(left) = state.refresh_outage_left() {
        return Err(ApiError::Unavailable {
            code: "temporarily_unavailable",
            retry_after: left,
            reason: "demo refresh outage (/demo/fail-refresh)".into(),
        });
    }
    let RefreshCookie(presented) = cookie?;
    if let Err(retry) = state
        .limits
        .refresh_ip
        .check(&state.client_ip(peer, headers))
    {
        let why = "refresh rate limit of this client IP";
        return Err(rate_limited(state, LimitedRoute::Refresh, retry, why));
    }
    let jkt = token_endpoint_proof(state, &Method::POST, uri, headers)
        .await?
        .map(|p| p.jkt);
    let jkt = jkt.as_deref();
    let policy = RefreshPolicy {
        now: state.now(),
        grace: state.config.reuse_grace,
        idle_ttl: state.config.refresh_idle_ttl,
        jkt: jkt.map(|j| tokens::sha256(j.as_bytes())),
    };
    let limits = &state.limits;
    let admit = |sid: &str| limits.refresh_family.check(&sid.to_string());
    let child = RefreshToken::generate();
    let outcome = state
        .store
        .refresh(&presented.hash(), child.clone(), policy, &admit)
        .await?;
    match outcome {
        RefreshOutcome::Rotated(info) => {
            state.migration.note_rotation(&info.sid, state.now());
            Ok((L::Ok, token_response(state, &info, &child, jkt)?))
        }
        RefreshOutcome::Grace(info, current) => {
            tracing::info!(sid = %info.sid, "refresh: parent replayed within grace, current child re-sent");
            Ok((L::Grace, token_response(state, &info, &current, jkt)?))
        }
        RefreshOutcome::Reused(info) => {
            let m = &state.metrics;
            Metrics::inc(&m.reuse_detected);
            Metrics::inc(&m.family_revocations);
            Metrics::inc(&m.revocations);
            tracing::warn!(sid = %info.sid, sub = %info.sub, "rt_reuse_detected: family and session revoked");
            let alert = [("sid", info.sid.as_str()), ("sub", info.sub.as_str())];
            state.migration.alert(crate::legacy::Alert::RtReuse, &alert);
            Err(ApiError::invalid_grant(
                "rotated refresh token reused: family and session revoked",
            ))
        }
        RefreshOutcome::Limited(retry) => {
            let why = "rotation rate limit of this session";
            Err(rate_limited(state, LimitedRoute::Refresh, retry, why))
        }
        RefreshOutcome::Invalid(crate::store::Rejection::KeyMismatch) => {
            Metrics::inc(&state.metrics.dpop_key_mismatch);
            tracing::warn!(dpop = jkt.is_some(), "dpop_key_mismatch: refresh cookie presented without the key its session is bound to");
            Err(ApiError::invalid_grant(
                crate::store::Rejection::KeyMismatch.as_str(),
            ))
        }
        RefreshOutcome::Invalid(why) => {
            tracing::debug!(reason = why.as_str(), "refresh token refused");
            Err(ApiError::invalid_grant(
                "unknown, expired or revoked refresh token",
            ))
        }
    }
}

/// `POST /auth/logout`: revoke the family and the session's access tokens, clear the cookie.
/// Idempotent: 200 with a clearing cookie even without a (valid) cookie. CSRF-checked first.
pub(crate) async fn logout(
    State(state): State<SharedState>,
    _: CsrfChecked,
    cookie: Result<RefreshCookie, ApiError>,
    bearer: Result<BearerToken, ApiError>,
) -> Result<Response, ApiError> {
    let now = state.now();
    let mut revoked = None;
    if let Ok(RefreshCookie(t)) = cookie {
        revoked = state
            .store
            .revoke_by_token(&t.hash(), now)
            .await?
            .map(|i| i.sid);
    }
    if revoked.is_none() {
        // No usable cookie: a valid bearer token still identifies the session to end.
        if let Ok(BearerToken(t)) = bearer {
            match state.authenticate(&t).await {
                // A DPoP-bound token ends its session only with its key (through the cookie).
                Ok(claims) if claims.cnf.is_none() => {
                    if state.store.revoke_session(&claims.sid, now).await? {
                        revoked = Some(claims.sid);
                    }
                }
                Err(AuthError::Store(e)) => return Err(e.into()),
                Err(AuthError::Rejected(_)) | Ok(_) => {}
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
    Ok(r)
}
