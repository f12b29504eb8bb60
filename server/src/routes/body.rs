//! Reading request bodies within a size limit and the server-wide buffer budget (S42).
//!
//! A declared `Content-Length` over a route's limit is refused with 413 before anything is read
//! (tower-http's `RequestBodyLimitLayer`, in [`super::router`]); the time a body may take is
//! bounded by `--body-timeout` (tower-http's `TimeoutLayer`, 408). What is left here is the total:
//! every body a handler buffers holds one permit per byte of [`crate::AppState::body_budget`]
//! (`--max-buffered-bytes`) until the handler is done with it, taken up front for the declared
//! length or frame by frame for a chunked body, so stalled uploads cannot pin unbounded memory.

use axum::body::{Body, Bytes};
use axum::http::header::{self, HeaderMap};
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;

use super::error::ApiError;
use crate::SharedState;

/// A body read into memory, with the share of the buffer budget it holds until dropped.
pub(crate) struct Buffered {
    /// The bytes.
    pub bytes: Bytes,
    _reserved: Option<OwnedSemaphorePermit>,
}

/// 503 `{error:"server_busy"}` with `Retry-After: 1`: the buffer budget is spent.
fn busy() -> ApiError {
    ApiError::Unavailable {
        code: "server_busy",
        retry_after: 1,
        reason: "body does not fit in --max-buffered-bytes now".into(),
    }
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge
}

/// Take `n` bytes of the budget, without waiting; merged into `held`.
fn reserve(state: &SharedState, held: &mut Option<OwnedSemaphorePermit>, n: usize) -> bool {
    if n == 0 {
        return true;
    }
    let Ok(n) = u32::try_from(n) else {
        return false;
    };
    match state.body_budget.clone().try_acquire_many_owned(n) {
        Ok(p) => {
            match held {
                Some(h) => h.merge(p),
                None => *held = Some(p),
            }
            true
        }
        Err(_) => false,
    }
}

/// Whether a body error is a length limit (from tower-http's `RequestBodyLimitLayer`).
fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Read the whole body, at most `limit` bytes. Errors are ready answers: 413
/// `payload_too_large` (declared or actual length over `limit`), 503 `server_busy` with
/// `Retry-After` (the server-wide budget cannot hold it now), 400 `invalid_request` (the body
/// broke off).
pub(crate) async fn read_body(
    state: &SharedState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Buffered, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let mut held = None;
    if let Some(len) = declared {
        if len > limit as u64 {
            return Err(too_large());
        }
        // Within `limit`, so it fits a usize.
        if !reserve(state, &mut held, len as usize) {
            return Err(busy());
        }
    }
    let reserved_up_front = declared.unwrap_or(0) as usize;
    let mut buf = Vec::with_capacity(reserved_up_front);
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) if is_length_limit(&e) => return Err(too_large()),
            Err(_) => return Err(ApiError::invalid_request("body broke off")),
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let new_len = buf.len() + data.len();
        if new_len > limit {
            return Err(too_large());
        }
        // Bytes beyond what was reserved up front (all of a chunked body's) are reserved now.
        let extra = new_len.saturating_sub(reserved_up_front.max(buf.len()));
        if !reserve(state, &mut held, extra) {
            return Err(busy());
        }
        buf.extend_from_slice(&data);
    }
    Ok(Buffered {
        bytes: Bytes::from(buf),
        _reserved: held,
    })
}
