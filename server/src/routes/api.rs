//! Bearer-authenticated API: `GET /api/me`, `POST /api/echo`.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{self, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::body::read_body;
use super::error::ApiError;
use super::extract::ApiCaller;
use super::ECHO_BODY_LIMIT;
use crate::SharedState;

/// `{sub, sid}` of the caller (`sid: null, legacy: true` for a legacy token let through).
pub(crate) async fn me(caller: ApiCaller) -> Response {
    match caller {
        ApiCaller::Access(c) => Json(json!({ "sub": c.sub, "sid": c.sid })).into_response(),
        ApiCaller::Legacy(sub) => {
            Json(json!({ "sub": sub, "sid": null, "legacy": true })).into_response()
        }
    }
}

/// SHA-256 and length of the raw body received, for byte-identical replay tests.
/// Authenticates (the extractor) before reading the body, which then counts against the buffer
/// budget.
pub(crate) async fn echo(
    State(state): State<SharedState>,
    _: ApiCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let buffered = read_body(&state, &headers, body, ECHO_BODY_LIMIT).await?;
    let bytes = &buffered.bytes;
    let sha = Sha256::digest(bytes);
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    Ok(
        Json(json!({ "sha256": hex, "length": bytes.len(), "contentType": content_type }))
            .into_response(),
    )
}
