//! `POST /auth/introspect` (RFC 7662), mounted only with `--introspection-secret-file`: lets an API
//! that verifies access tokens through the JWKS ask whether one is still active, i.e. whether its
//! session was logged out or revoked (reuse detection) or the token itself blocklisted, which the
//! signature alone cannot say. Callers authenticate with `Authorization: Bearer <secret>` (a bearer
//! header, not a cookie, so no CSRF check is needed).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{self, HeaderMap};
use axum::http::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::error::ApiError;
use super::extract::BearerToken;
use crate::tokens;
use crate::SharedState;

pub(crate) fn router(state: SharedState) -> Router<SharedState> {
    Router::new()
        .route("/auth/introspect", post(introspect))
        .route_layer(middleware::from_fn_with_state(state, require_caller))
}

/// The caller must present the introspection secret as a bearer token (one `Authorization`
/// header). Both sides are compared as SHA-256 digests, so the comparison's timing says nothing
/// about the secret.
async fn require_caller(
    State(state): State<SharedState>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let presented = BearerToken::from_headers(req.headers()).map(|t| tokens::sha256(t.as_bytes()));
    if presented.is_some() && presented == state.introspection_secret {
        return next.run(req).await;
    }
    ApiError::Unauthorized {
        code: "invalid_token",
        challenge: Some("Bearer realm=\"introspection\", error=\"invalid_token\""),
        reason: "introspection caller without the introspection secret".into(),
    }
    .into_response()
}

/// RFC 7662 §2.1: an `application/x-www-form-urlencoded` body with `token` once and optionally
/// `token_type_hint` once (a repeated parameter is refused, RFC 6749 §3.1). §2.2: 200
/// `{"active": false}` for anything that is not a valid access token of a live session, else
/// `{"active": true, token_type, iss, aud, sub, sid, jti, iat, exp}`.
async fn introspect(State(state): State<SharedState>, headers: HeaderMap, body: Bytes) -> Response {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let form = match (types.next(), types.next()) {
        (Some(v), None) => v.to_str().is_ok_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        }),
        _ => false,
    };
    if !form {
        return ApiError::UnsupportedMediaType.into_response();
    }
    let mut token = None;
    let mut seen = std::collections::HashSet::new();
    for (name, value) in form_urlencoded::parse(&body) {
        if !seen.insert(name.clone()) {
            return ApiError::invalid_request("introspection parameter repeated").into_response();
        }
        if name == "token" {
            token = Some(value);
        }
    }
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return ApiError::invalid_request("introspection without a token").into_response();
    };
    match state.authenticate(&token).await {
        Ok(c) => Json(json!({
            "active": true, "token_type": "Bearer", "iss": c.iss, "aud": c.aud, "sub": c.sub,
            "sid": c.sid, "jti": c.jti, "iat": c.iat, "exp": c.exp,
        }))
        .into_response(),
        Err(why) => {
            tracing::debug!(reason = ?why, "introspection: inactive");
            Json(json!({ "active": false })).into_response()
        }
    }
}
