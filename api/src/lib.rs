//! A demo/test API behind [`token_verifier`]: the separate service of the design documents that
//! trusts the auth server only through its published JWKS (and, optionally, its introspection
//! endpoint for revoked sessions). It serves the same `/api/me` and `/api/echo` as the auth server's
//! own API, so the client, the demo and the end-to-end tests can point at either.
//!
//! | endpoint | answers |
//! | --- | --- |
//! | `GET /api/me` (bearer, or `Authorization: DPoP` + proof) | 200 `{sub, sid}` |
//! | `POST /api/echo` (bearer, or `Authorization: DPoP` + proof) | 200 `{sha256, length, contentType}` of the raw body (hex SHA-256; at most [`ECHO_BODY_LIMIT`] bytes, 413 beyond); the token is checked before the body is read |
//! | `GET /healthz` | `ok` |
//!
//! A DPoP-bound access token (RFC 9449) is accepted under `Authorization: DPoP` with a `DPoP`
//! proof of its key, checked by [`Verifier::authenticate`] (no server nonces are issued).
//!
//! A refused request gets the status, `WWW-Authenticate` (`Bearer`, or `DPoP … algs="ES256"` for a
//! DPoP request or a DPoP refusal) and `Retry-After` of its [`VerifyError`] and a JSON body
//! `{"error": code}` (`invalid_token`, `invalid_dpop_proof`, `invalid_request`, `unauthorized` when
//! no token was sent, `temporarily_unavailable` for 503). `/api/*` answers carry
//! `Cache-Control: no-store`. CORS as the auth server does for its own `/api/*`: only the listed
//! origins get `Access-Control-Allow-Origin` (their exact value) with credentials, may send
//! `Authorization`, `Content-Type`, `X-Requested-With` and `DPoP`, and may read `Retry-After`,
//! `WWW-Authenticate`, `Date` and `DPoP-Nonce`; nothing is reflected or wildcarded.

#![deny(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};
use token_verifier::{Claims, Scheme, Verifier, VerifyError, DPOP, DPOP_NONCE};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// Largest `/api/echo` body, bytes (the auth server's limit).
pub const ECHO_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// The `realm` of this API's `WWW-Authenticate` challenges.
pub const REALM: &str = "demo-api";

/// A refusal as an HTTP answer (see the crate documentation).
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub error: VerifyError,
    /// The scheme of the challenge: `DPoP` for a request under `Authorization: DPoP` or a DPoP
    /// refusal ([`VerifyError::is_dpop`]), `Bearer` otherwise.
    pub scheme: Scheme,
}

impl Refused {
    /// The refusal of a request with these headers for `error`.
    pub fn of(error: VerifyError, headers: &axum::http::HeaderMap) -> Self {
        let scheme = if error.is_dpop() {
            Scheme::Dpop
        } else {
            Scheme::of(headers)
        };
        Self { error, scheme }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let e = self.error;
        let code = e.error_code().unwrap_or(if e.retry_after().is_some() {
            "temporarily_unavailable"
        } else {
            "unauthorized"
        });
        tracing::info!(status = e.status().as_u16(), reason = %e, "request refused");
        let mut r = (e.status(), Json(json!({ "error": code }))).into_response();
        if let Some(v) = e.www_authenticate_scheme(REALM, self.scheme) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(secs) = e.retry_after() {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// The verified caller of a request: extracting it runs [`Verifier::authenticate`] on the
/// request head, before any body is read.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl FromRequestParts<Arc<Verifier>> for Caller {
    type Rejection = Refused;

    async fn from_request_parts(
        parts: &mut Parts,
        verifier: &Arc<Verifier>,
    ) -> Result<Self, Self::Rejection> {
        verifier
            .authenticate(parts)
            .await
            .map(Caller)
            .map_err(|e| Refused::of(e, &parts.headers))
    }
}

async fn me(Caller(c): Caller) -> Response {
    Json(json!({ "sub": c.sub, "sid": c.sid })).into_response()
}

async fn echo(_caller: Caller, headers: axum::http::HeaderMap, body: Bytes) -> Response {
    let hex: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    Json(json!({ "sha256": hex, "length": body.len(), "contentType": content_type }))
        .into_response()
}

/// The routes, verifying with `verifier`; `allowed_origins` get CORS (exact `scheme://host:port`).
pub fn router(verifier: Arc<Verifier>, allowed_origins: &[String]) -> Router {
    let api = Router::new()
        .route("/api/me", get(me))
        .route(
            "/api/echo",
            post(echo).layer(DefaultBodyLimit::max(ECHO_BODY_LIMIT)),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    let mut app = Router::new()
        .merge(api)
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(verifier);
    let origins: Vec<HeaderValue> = allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if !origins.is_empty() {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_credentials(true)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    HeaderName::from_static("x-requested-with"),
                    DPOP,
                ])
                .expose_headers([
                    header::RETRY_AFTER,
                    header::WWW_AUTHENTICATE,
                    header::DATE,
                    DPOP_NONCE,
                ])
                .max_age(Duration::from_secs(600)),
        );
    }
    app
}

/// The API serving in the background.
#[derive(Debug)]
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The serving task.
    pub handle: tokio::task::JoinHandle<()>,
}

impl Running {
    /// `http://addr` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// Serve `router(verifier, allowed_origins)` on an already-bound listener, in the background.
pub fn start_on(
    listener: TcpListener,
    verifier: Arc<Verifier>,
    allowed_origins: &[String],
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let app = router(verifier, allowed_origins);
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "serve failed");
        }
    });
    Ok(Running { addr, handle })
}
