//! Bearer-authenticated API: `GET /api/me`, `POST /api/echo`.

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::body::read_body;
use super::legacy::LegacyPrincipal;
use super::{json_error, ECHO_BODY_LIMIT};
use crate::metrics::Metrics;
use crate::middleware::because;
use crate::tokens::{AccessClaims, VerifyError};
use crate::SharedState;

/// The bearer token of a request: exactly one `Authorization: Bearer <b64token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let v = v.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    // RFC 6750 §2.1 b64token charset.
    let ok = !token.is_empty()
        && token
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c));
    ok.then_some(token)
}

/// 401 with `WWW-Authenticate: Bearer error="invalid_token"`; the logged reason is the caller's.
pub(crate) fn unauthorized() -> Response {
    let mut r = json_error(StatusCode::UNAUTHORIZED, "invalid_token");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    r
}

/// Who an API request speaks for.
pub(crate) enum Caller {
    /// A new access token.
    Access(AccessClaims),
    /// A legacy token the gate let through (phases 0–1).
    Legacy(String),
}

/// Authenticate and count the API call: a legacy principal set by the gate, else the access token.
pub(crate) fn authenticate(
    state: &SharedState,
    headers: &HeaderMap,
    legacy: Option<&LegacyPrincipal>,
) -> Result<Caller, Response> {
    if let Some(p) = legacy {
        Metrics::inc(&state.metrics.api_ok);
        return Ok(Caller::Legacy(p.sub.clone()));
    }
    let result = bearer(headers)
        .ok_or(VerifyError::Malformed)
        .and_then(|t| state.authenticate(t));
    match result {
        Ok(c) => {
            Metrics::inc(&state.metrics.api_ok);
            Ok(Caller::Access(c))
        }
        Err(why) => {
            Metrics::inc(&state.metrics.api_unauthorized);
            tracing::debug!(reason = ?why, "access token rejected");
            Err(because(
                unauthorized(),
                format!("access token rejected: {why:?}"),
            ))
        }
    }
}

pub(crate) async fn me(
    State(state): State<SharedState>,
    legacy: Option<Extension<LegacyPrincipal>>,
    headers: HeaderMap,
) -> Response {
    match authenticate(&state, &headers, legacy.as_deref()) {
        Ok(Caller::Access(c)) => Json(json!({ "sub": c.sub, "sid": c.sid })).into_response(),
        Ok(Caller::Legacy(sub)) => {
            Json(json!({ "sub": sub, "sid": null, "legacy": true })).into_response()
        }
        Err(r) => r,
    }
}

/// SHA-256 and length of the raw body received, for byte-identical replay tests.
/// Authenticates before reading the body, which then counts against the buffer budget.
pub(crate) async fn echo(State(state): State<SharedState>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let legacy = parts.extensions.get::<LegacyPrincipal>();
    if let Err(r) = authenticate(&state, &parts.headers, legacy) {
        return r;
    }
    let buffered = match read_body(&state, &parts.headers, body, ECHO_BODY_LIMIT).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let bytes = &buffered.bytes;
    let sha = Sha256::digest(bytes);
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    Json(json!({ "sha256": hex, "length": bytes.len(), "contentType": content_type }))
        .into_response()
}
