//! Cross-cutting HTTP layers: header size limits (S14), CORS without reflection (S17),
//! request logging without tokens (S38), static-file content types.

use std::borrow::Cow;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::SharedState;

/// Largest `Cookie` or `Authorization` header (sum over repeated headers) before a 431.
pub const MAX_CREDENTIAL_HEADER_BYTES: usize = 8 * 1024;
/// Largest total of all request header bytes before a 431.
pub const MAX_TOTAL_HEADER_BYTES: usize = 32 * 1024;

/// 431 for oversized credential headers, before any parsing, store access or crypto.
pub async fn header_limits(req: Request<Body>, next: Next) -> Response {
    let h = req.headers();
    let sum = |name: HeaderName| h.get_all(name).iter().map(|v| v.len()).sum::<usize>();
    let total: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if sum(header::COOKIE) > MAX_CREDENTIAL_HEADER_BYTES
        || sum(header::AUTHORIZATION) > MAX_CREDENTIAL_HEADER_BYTES
        || total > MAX_TOTAL_HEADER_BYTES
    {
        return because(
            (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request header fields too large\n",
            )
                .into_response(),
            "Cookie or Authorization over 8 KiB, or all headers over 32 KiB",
        );
    }
    next.run(req).await
}

/// Whether `origin` is one of the explicitly configured origins (those get CORS headers).
pub fn is_listed_origin(state: &SharedState, origin: &str) -> bool {
    state.config.allowed_origins.iter().any(|o| o == origin)
}

/// The origin of the request's own Host, as a browser on plain http would send it.
pub fn own_origin(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
        return None;
    }
    Some(format!("http://{host}"))
}

/// Exact-match origin rule for state-changing auth requests: a listed origin, or the request's
/// own origin. `null`, prefixes, suffixes and case variants never match.
pub fn origin_allowed(state: &SharedState, headers: &HeaderMap, origin: &str) -> bool {
    is_listed_origin(state, origin) || own_origin(headers).is_some_and(|o| o == origin)
}

/// CORS: only listed origins get `Access-Control-Allow-Origin` (their exact value, with
/// credentials); nothing is ever reflected or wildcarded; `Vary: Origin` always.
pub async fn cors(State(state): State<SharedState>, req: Request<Body>, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let listed = origin
        .as_deref()
        .is_some_and(|o| is_listed_origin(&state, o));
    let dpop = state.config.dpop != crate::dpop::DpopMode::Off;
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        if listed {
            let mut r = StatusCode::NO_CONTENT.into_response();
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(if dpop {
                    "authorization, content-type, x-requested-with, dpop"
                } else {
                    "authorization, content-type, x-requested-with"
                }),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            r
        } else {
            because(
                StatusCode::FORBIDDEN.into_response(),
                "CORS preflight from an origin not listed in --allowed-origin",
            )
        }
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let (true, Some(o)) = (listed, origin) {
        if let Ok(v) = HeaderValue::from_str(&o) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(if dpop {
                    "retry-after, www-authenticate, date, deprecation, sunset, link, dpop-nonce"
                } else {
                    "retry-after, www-authenticate, date, deprecation, sunset, link"
                }),
            );
        }
    }
    resp
}

/// Why a request was refused, attached to the response (an extension, never sent) for the
/// request log. Reasons are fixed texts chosen by the server: never a token, cookie, password
/// or any other request content.
#[derive(Debug, Clone)]
pub struct Refusal(pub Cow<'static, str>);

/// Attach (or replace) the refusal reason of a response.
pub fn because(mut r: Response, reason: impl Into<Cow<'static, str>>) -> Response {
    r.extensions_mut().insert(Refusal(reason.into()));
    r
}

/// One log line per request: method, path (never the query), status, duration, and for every
/// 4xx/5xx the reason ([`Refusal`], or the status's reason phrase for answers made outside the
/// handlers: 408, 413, 431). No headers, no bodies, so no token can reach the logs.
pub async fn log_requests(req: Request<Body>, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    let ms = start.elapsed().as_millis() as u64;
    if status.is_client_error() || status.is_server_error() {
        let reason = resp
            .extensions()
            .get::<Refusal>()
            .map(|r| r.0.clone())
            .unwrap_or(Cow::Borrowed(
                status.canonical_reason().unwrap_or("refused"),
            ));
        tracing::info!(
            method = %method,
            path = %path,
            status = status.as_u16(),
            reason = ?reason,
            ms,
            "request"
        );
    } else {
        tracing::info!(method = %method, path = %path, status = status.as_u16(), ms, "request");
    }
    resp
}

/// Static files: `.wasm` as `application/wasm`, `.js`/`.mjs` as `text/javascript`, revalidate always.
pub async fn static_headers(req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path().to_ascii_lowercase();
    let mut resp = next.run(req).await;
    let ct = if path.ends_with(".wasm") {
        Some("application/wasm")
    } else if path.ends_with(".js") || path.ends_with(".mjs") {
        Some("text/javascript; charset=utf-8")
    } else {
        None
    };
    if resp.status().is_success() {
        if let Some(ct) = ct {
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
