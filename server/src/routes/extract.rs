//! Request extractors that state a handler's preconditions in its signature: the CSRF rules
//! ([`CsrfChecked`]), the refresh cookie ([`RefreshCookie`]), the bearer token ([`BearerToken`]),
//! a verified access token ([`Authenticated`]) and an API caller ([`ApiCaller`]). Each refuses
//! with an [`ApiError`]; a handler that must see the refusal itself (to count it, or because the
//! credential is optional) takes `Result<Extractor, ApiError>` instead.

use axum::extract::FromRequestParts;
use axum::http::header::{self, HeaderMap};
use axum::http::request::Parts;

use super::error::ApiError;
use super::legacy::LegacyPrincipal;
use crate::metrics::Metrics;
use crate::middleware::{is_listed_origin, origin_allowed};
use crate::tokens::{AccessClaims, RefreshToken};
use crate::{AuthError, SharedState};

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Exactly one `Content-Type` header, whose essence is `application/json` (S46: two headers,
/// even two equal ones, are refused rather than one of them picked).
pub(crate) fn is_single_json_content_type(headers: &HeaderMap) -> bool {
    let mut all = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(ct), None) = (all.next(), all.next()) else {
        return false;
    };
    let essence = ct
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .unwrap_or("");
    essence.trim().eq_ignore_ascii_case("application/json")
}

/// CSRF rules for `/auth/refresh`, `/auth/logout` and `/auth/legacy/upgrade` (S15/S16):
/// a non-empty `X-Requested-With`; an `Origin` header that exactly matches an allowed origin
/// (required: requests without `Origin` are refused); `Sec-Fetch-Site: cross-site` refused unless the
/// origin is explicitly listed; a body content type, if any, must be `application/json`.
/// Errors: 403 `forbidden`, 415 `unsupported_media_type`.
pub(crate) fn check_csrf(state: &SharedState, headers: &HeaderMap) -> Result<(), ApiError> {
    let xrw = header_str(headers, "x-requested-with")
        .map(str::trim)
        .unwrap_or("");
    if xrw.is_empty() {
        return Err(ApiError::forbidden("missing X-Requested-With"));
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let (Some(origin), None) = (origins.next(), origins.next()) else {
        return Err(ApiError::forbidden("missing or repeated Origin"));
    };
    let origin = origin
        .to_str()
        .map_err(|_| ApiError::forbidden("bad Origin"))?;
    if !origin_allowed(state, headers, origin) {
        return Err(ApiError::forbidden("Origin not allowed"));
    }
    if header_str(headers, "sec-fetch-site") == Some("cross-site")
        && !is_listed_origin(state, origin)
    {
        return Err(ApiError::forbidden("cross-site"));
    }
    if headers.contains_key(header::CONTENT_TYPE) && !is_single_json_content_type(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    Ok(())
}

/// The request passed [`check_csrf`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct CsrfChecked;

impl FromRequestParts<SharedState> for CsrfChecked {
    type Rejection = ApiError;

    async fn from_request_parts(p: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        check_csrf(state, &p.headers).inspect_err(|why| {
            tracing::warn!(path = %p.uri.path(), reason = ?why, "refused by CSRF checks");
        })?;
        Ok(Self)
    }
}

/// The refresh cookie (`--cookie-name`), exactly once and of the exact shape the server mints.
/// Refusals are 401 `invalid_grant`: none, more than one (path or domain shadowing, S13),
/// malformed.
#[derive(Debug, Clone)]
pub(crate) struct RefreshCookie(pub RefreshToken);

impl FromRequestParts<SharedState> for RefreshCookie {
    type Rejection = ApiError;

    async fn from_request_parts(p: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let name = state.config.cookie_name.as_str();
        let mut found: Option<&str> = None;
        for v in p.headers.get_all(header::COOKIE) {
            let v = v
                .to_str()
                .map_err(|_| ApiError::invalid_grant("malformed refresh cookie"))?;
            for pair in v.split(';') {
                let Some((k, val)) = pair.trim().split_once('=') else {
                    continue;
                };
                if k.trim() != name {
                    continue;
                }
                if found.replace(val.trim()).is_some() {
                    return Err(ApiError::invalid_grant("more than one refresh cookie"));
                }
            }
        }
        let raw = found.ok_or_else(|| ApiError::invalid_grant("no refresh cookie"))?;
        RefreshToken::parse(raw.trim_matches('"'))
            .map(Self)
            .ok_or_else(|| ApiError::invalid_grant("malformed refresh cookie"))
    }
}

/// The bearer token of a request: exactly one `Authorization: Bearer <b64token>` header
/// (RFC 6750 §2.1). Refusal: 401 `invalid_token` with its `WWW-Authenticate` challenge.
#[derive(Debug, Clone)]
pub(crate) struct BearerToken(pub String);

impl BearerToken {
    /// The token of `headers`, if exactly one well-formed bearer header is present.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<&str> {
        let mut all = headers.get_all(header::AUTHORIZATION).iter();
        let v = all.next()?;
        if all.next().is_some() {
            return None;
        }
        let (scheme, token) = v.to_str().ok()?.split_once(' ')?;
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
}

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = ApiError;

    async fn from_request_parts(p: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Self::from_headers(&p.headers)
            .map(|t| Self(t.to_owned()))
            .ok_or_else(|| ApiError::invalid_token("access token rejected: Malformed"))
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Rejected(why) => {
                tracing::debug!(reason = ?why, "access token rejected");
                ApiError::invalid_token(format!("access token rejected: {why:?}"))
            }
            AuthError::Store(e) => e.into(),
        }
    }
}

/// A bearer access token that verified (signature, claims, time, session and jti revocation).
/// Refusals: 401 `invalid_token`; 503 when the session store cannot answer.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub AccessClaims);

impl FromRequestParts<SharedState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(p: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let BearerToken(token) = BearerToken::from_request_parts(p, state).await?;
        Ok(Self(state.authenticate(&token).await?))
    }
}

/// Who an API request speaks for: a legacy principal the gate let through, or a verified access
/// token. Counted under `auth_api_requests_total` (`ok` or `unauthorized`; a store failure is
/// neither).
#[derive(Debug, Clone)]
pub(crate) enum ApiCaller {
    /// A new access token.
    Access(AccessClaims),
    /// A legacy token the gate let through (phases 0–1): its user.
    Legacy(String),
}

impl FromRequestParts<SharedState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(p: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        if let Some(l) = p.extensions.get::<LegacyPrincipal>() {
            Metrics::inc(&state.metrics.api_ok);
            return Ok(Self::Legacy(l.sub.clone()));
        }
        let result = match BearerToken::from_headers(&p.headers) {
            Some(t) => state.authenticate(t).await,
            None => Err(AuthError::Rejected(crate::tokens::VerifyError::Malformed)),
        };
        match result {
            Ok(c) => {
                Metrics::inc(&state.metrics.api_ok);
                Ok(Self::Access(c))
            }
            Err(e) => {
                if let AuthError::Rejected(_) = e {
                    Metrics::inc(&state.metrics.api_unauthorized);
                }
                Err(e.into())
            }
        }
    }
}
