//! One error type for every refusal the HTTP surface gives: each variant turns into its status,
//! the JSON body `{"error": code}`, the headers it needs (`Retry-After`; `WWW-Authenticate` on a
//! bearer 401, RFC 6750 §3) and the reason the request log prints (never request content).

use std::borrow::Cow;

use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::middleware::because;
use crate::store::StoreError;

/// The logged reason of a refusal: a fixed text chosen by the server, or one built from such texts.
pub(crate) type Reason = Cow<'static, str>;

/// `WWW-Authenticate` of a refused bearer token (RFC 6750 §3.1).
pub(crate) const INVALID_TOKEN_CHALLENGE: &str = "Bearer error=\"invalid_token\"";

/// Why a request was refused. Each variant names its status and `error` code.
#[derive(Debug, Clone)]
pub(crate) enum ApiError {
    /// 400 `invalid_request`: the body or a parameter is not what the route takes.
    InvalidRequest(Reason),
    /// 401 with `code` (`invalid_grant`, `invalid_token`, `invalid_credentials`, …) and, for a
    /// bearer credential, its `WWW-Authenticate` challenge.
    Unauthorized {
        /// The `error` member.
        code: &'static str,
        /// `WWW-Authenticate` value, if any.
        challenge: Option<&'static str>,
        /// Logged reason.
        reason: Reason,
    },
    /// 403 `forbidden` (CSRF and origin rules).
    Forbidden(Reason),
    /// 409 with a code (`cannot_mint`).
    Conflict(&'static str),
    /// 413 `payload_too_large`.
    PayloadTooLarge,
    /// 415 `unsupported_media_type`: not exactly one `application/json` `Content-Type`.
    UnsupportedMediaType,
    /// 429 `rate_limited` with `Retry-After`.
    RateLimited {
        /// Seconds (at least 1 is sent).
        retry_after: u64,
        /// Logged reason (which limit).
        reason: Reason,
    },
    /// 503 with `code` (`temporarily_unavailable`, `server_busy`) and `Retry-After`.
    Unavailable {
        /// The `error` member.
        code: &'static str,
        /// Seconds (at least 1 is sent).
        retry_after: u64,
        /// Logged reason.
        reason: Reason,
    },
    /// 500 `server_error`; the reason is logged.
    Internal(Reason),
    /// A DPoP refusal (RFC 9449) with `code` (`invalid_dpop_proof`, `use_dpop_nonce`,
    /// `invalid_token`): 400 at a token endpoint (§5), 401 with `WWW-Authenticate: DPoP
    /// error="<code>", algs="ES256"` at a resource (§7.1).
    Dpop {
        /// The `error` member.
        code: &'static str,
        /// At a resource (`/api/*`) rather than a token endpoint.
        resource: bool,
        /// Logged reason.
        reason: Reason,
    },
}

impl ApiError {
    /// 401 `invalid_grant`: one answer for missing, unknown, expired, revoked and reused refresh
    /// tokens (S39); only the log tells them apart.
    pub(crate) fn invalid_grant(reason: impl Into<Reason>) -> Self {
        Self::Unauthorized {
            code: "invalid_grant",
            challenge: None,
            reason: reason.into(),
        }
    }

    /// 401 `invalid_token` with `WWW-Authenticate: Bearer error="invalid_token"`.
    pub(crate) fn invalid_token(reason: impl Into<Reason>) -> Self {
        Self::Unauthorized {
            code: "invalid_token",
            challenge: Some(INVALID_TOKEN_CHALLENGE),
            reason: reason.into(),
        }
    }

    /// 403 `forbidden`.
    pub(crate) fn forbidden(reason: impl Into<Reason>) -> Self {
        Self::Forbidden(reason.into())
    }

    /// 400 `invalid_request`.
    pub(crate) fn invalid_request(reason: impl Into<Reason>) -> Self {
        Self::InvalidRequest(reason.into())
    }

    /// 500 `server_error`.
    pub(crate) fn internal(reason: impl Into<Reason>) -> Self {
        Self::Internal(reason.into())
    }

    /// The status code.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Dpop { resource: true, .. } => StatusCode::UNAUTHORIZED,
            Self::Dpop {
                resource: false, ..
            } => StatusCode::BAD_REQUEST,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::Unauthorized { code, .. }
            | Self::Conflict(code)
            | Self::Unavailable { code, .. }
            | Self::Dpop { code, .. } => code,
            Self::Forbidden(_) => "forbidden",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Internal(_) => "server_error",
        }
    }

    fn reason(&self) -> Reason {
        match self {
            Self::InvalidRequest(r)
            | Self::Forbidden(r)
            | Self::Internal(r)
            | Self::Unauthorized { reason: r, .. }
            | Self::RateLimited { reason: r, .. }
            | Self::Unavailable { reason: r, .. }
            | Self::Dpop { reason: r, .. } => r.clone(),
            Self::Conflict(code) => Cow::Borrowed(code),
            Self::PayloadTooLarge => Cow::Borrowed("body over the route's limit"),
            Self::UnsupportedMediaType => {
                Cow::Borrowed("Content-Type is not exactly one application/json header")
            }
        }
    }
}

/// A store that cannot answer fails closed: 503 `temporarily_unavailable` with `Retry-After`.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let (StoreError::Unavailable { retry_after } | StoreError::Full { retry_after }) = e;
        if let StoreError::Unavailable { .. } = e {
            tracing::error!(error = %e, "session store unavailable: failing closed");
        }
        Self::Unavailable {
            code: "temporarily_unavailable",
            retry_after,
            reason: Cow::Owned(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(why) = &self {
            tracing::error!(reason = %why, "server error");
        }
        let mut r = (self.status(), Json(json!({ "error": self.code() }))).into_response();
        let h = r.headers_mut();
        match &self {
            Self::Unauthorized {
                challenge: Some(c), ..
            } => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
            }
            Self::Dpop {
                code,
                resource: true,
                ..
            } => {
                let c = format!("DPoP error=\"{code}\", algs=\"{}\"", crate::dpop::ALGS);
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            Self::RateLimited { retry_after, .. } | Self::Unavailable { retry_after, .. } => {
                h.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from((*retry_after).max(1)),
                );
            }
            _ => {}
        }
        because(r, self.reason())
    }
}
