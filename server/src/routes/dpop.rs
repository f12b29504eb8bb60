//! DPoP on the HTTP surface (RFC 9449): which header, which status, which challenge. The rules
//! themselves are in [`crate::dpop`].
//!
//! - Token endpoints (`/auth/login`, `/auth/refresh`): a refused proof is 400 `invalid_dpop_proof`
//!   or 400 `use_dpop_nonce` (§5, §8); with `--dpop required` a missing proof is 400
//!   `invalid_dpop_proof`.
//! - Resources (`/api/*`): `Authorization: DPoP <token>` with a proof whose `ath` is the token's
//!   and whose key is the token's `cnf.jkt`; refusals are 401 with `WWW-Authenticate: DPoP
//!   error="…", algs="ES256"` (§7.1). A DPoP-bound token sent as `Bearer` is refused the same way.
//! - With `--dpop` on, every `/auth/*` and `/api/*` answer carries the current `DPoP-Nonce`, so
//!   a client learns a rotated nonce without a failed request (§8.2).
//! - With `--dpop off` nothing here runs: the `DPoP` header is ignored and tokens are bearer tokens.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, Request, Uri};
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use super::extract::BearerToken;
use crate::dpop::{self, DpopMode, Proof, ProofError, ReplayError};
use crate::metrics::Metrics;
use crate::tokens::AccessClaims;
use crate::{AuthError, SharedState};

/// The request header carrying a proof (RFC 9449 §4.1).
pub(crate) const DPOP: HeaderName = HeaderName::from_static("dpop");
/// The response header carrying a server nonce (RFC 9449 §8.1).
pub(crate) const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// Where a proof was presented: it decides the status and challenge of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum At {
    /// `/auth/login`, `/auth/refresh`: 400 with `{"error": code}`.
    TokenEndpoint,
    /// `/api/*`: 401 with a `WWW-Authenticate: DPoP` challenge.
    Resource,
}

/// A refusal for `why` at `at`, counted unless it only asks for a nonce.
pub(crate) fn refuse(state: &SharedState, at: At, why: ProofError) -> ApiError {
    if why != ProofError::Nonce {
        Metrics::inc(&state.metrics.dpop_proofs_refused);
    }
    ApiError::Dpop {
        code: why.code(),
        resource: at == At::Resource,
        reason: format!("DPoP proof refused: {why:?}").into(),
    }
}

/// The URI a proof for this request must name: `--dpop-htu-base` (or `http://` + Host) + path.
fn request_uri(state: &SharedState, uri: &Uri, headers: &HeaderMap) -> Option<String> {
    dpop::request_htu(state.config.dpop_htu_base.as_deref(), headers, uri.path())
}

/// Check the request's proof, if it has one: form, signature, claims (with `ath` of
/// `access_token` on a resource request), nonce (which stands for the `iat` window), then `jti`
/// replay (remembered while the nonce is accepted). `Ok(None)`: no `DPoP` header.
/// With a shared store (Redis) the proof is also remembered there, so that another instance refuses
/// its replay too ([`crate::store::SessionStore::admit_dpop_proof`]).
/// Errors: the refusal to answer (a full replay cache is 503 `server_busy`; a store that cannot
/// answer, 503).
pub(crate) async fn check(
    state: &SharedState,
    at: At,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    access_token: Option<&str>,
) -> Result<Option<Proof>, ApiError> {
    let mut all = headers.get_all(DPOP).iter();
    let Some(value) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(refuse(state, at, ProofError::Malformed));
    }
    let proof = value
        .to_str()
        .map_err(|_| refuse(state, at, ProofError::Malformed))?;
    let now = state.now();
    let window = state.config.dpop_proof_window;
    let uri = request_uri(state, uri, headers)
        .ok_or_else(|| refuse(state, at, ProofError::HtuMismatch))?;
    let req = dpop::Request {
        method: method.as_str(),
        uri: &uri,
        now,
        window,
        access_token,
    };
    // The creation time is established by the server nonce (RFC 9449 §4.3 step 11), which every
    // proof must carry here: a proof whose `iat` is off by more than the window (a client clock
    // minutes off) is accepted on a nonce issued lately, and refused without one.
    let proof = dpop::verify_except_iat(proof, &req).map_err(|why| refuse(state, at, why))?;
    let Some(nonce_until) = proof
        .nonce
        .as_deref()
        .and_then(|n| state.dpop.nonce_accepted_until(n, now))
    else {
        return Err(refuse(state, at, ProofError::Nonce));
    };
    if !dpop::iat_in_window(proof.iat, now, window) {
        let skew = i128::from(proof.iat) - i128::from(now);
        tracing::info!(jkt = %proof.jkt, skew_secs = %skew, "dpop_clock_skew: proof accepted on its server nonce");
    }
    // Remembered for as long as its nonce could let it in again (longer than iat + window),
    // and no longer: an iat far in the future does not pin an entry.
    match state.dpop.admit_until(&proof, nonce_until, now) {
        Ok(()) => {
            let id = proof.replay_id();
            if state.store.admit_dpop_proof(&id, nonce_until, now).await? {
                Ok(Some(proof))
            } else {
                tracing::warn!(jkt = %proof.jkt, "dpop_proof_replayed: seen by another instance");
                Err(refuse(state, at, ProofError::Replayed))
            }
        }
        Err(ReplayError::Replayed) => {
            tracing::warn!(jkt = %proof.jkt, "dpop_proof_replayed");
            Err(refuse(state, at, ProofError::Replayed))
        }
        Err(ReplayError::Full) => Err(ApiError::Unavailable {
            code: "server_busy",
            retry_after: window.max(1),
            reason: "DPoP replay cache full".into(),
        }),
    }
}

/// The proof of a login or refresh request under `--dpop`: `None` when off, or when allowed and
/// absent. Errors: a refused proof, or none under `required` (400 `invalid_dpop_proof`).
pub(crate) async fn token_endpoint_proof(
    state: &SharedState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<Proof>, ApiError> {
    match state.config.dpop {
        DpopMode::Off => Ok(None),
        mode => match check(state, At::TokenEndpoint, method, uri, headers, None).await? {
            None if mode == DpopMode::Required => {
                Err(refuse(state, At::TokenEndpoint, ProofError::Missing))
            }
            p => Ok(p),
        },
    }
}

/// The token of an `Authorization: DPoP <token>` header (same b64token rule as bearer tokens).
fn dpop_token(headers: &HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let (scheme, token) = v.to_str().ok()?.split_once(' ')?;
    let ok = scheme.eq_ignore_ascii_case("dpop")
        && !token.is_empty()
        && token
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c));
    ok.then_some(token)
}

/// Authenticate an API request: a bearer token that is not DPoP-bound, or (with `--dpop` on) a
/// DPoP-bound token under `Authorization: DPoP` with a proof of its key. Errors: 401
/// `invalid_token` (`Bearer` challenge for bearer tokens, `DPoP` for DPoP-bound ones),
/// 401 `invalid_dpop_proof`/`use_dpop_nonce`, 503 when the store cannot answer.
pub(crate) async fn authenticate(
    state: &SharedState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<AccessClaims, ApiError> {
    let invalid_dpop_token = |why: &str| ApiError::Dpop {
        code: "invalid_token",
        resource: true,
        reason: format!("access token rejected: {why}").into(),
    };
    if state.config.dpop != DpopMode::Off {
        if let Some(token) = dpop_token(headers) {
            let claims = match state.authenticate(token).await {
                Ok(c) => c,
                Err(AuthError::Rejected(why)) => {
                    return Err(invalid_dpop_token(&format!("{why:?}")))
                }
                Err(AuthError::Store(e)) => return Err(e.into()),
            };
            let Some(cnf) = &claims.cnf else {
                return Err(invalid_dpop_token("a bearer token under the DPoP scheme"));
            };
            let Some(proof) = check(state, At::Resource, method, uri, headers, Some(token)).await?
            else {
                return Err(refuse(state, At::Resource, ProofError::Missing));
            };
            if proof.jkt != cnf.jkt {
                Metrics::inc(&state.metrics.dpop_key_mismatch);
                tracing::warn!(sid = %claims.sid, sub = %claims.sub, "dpop_key_mismatch: access token presented with another key");
                return Err(invalid_dpop_token("proof of another key than cnf.jkt"));
            }
            return Ok(claims);
        }
    }
    let token = BearerToken::from_headers(headers)
        .ok_or_else(|| ApiError::invalid_token("access token rejected: Malformed"))?;
    let claims = state.authenticate(token).await?;
    if claims.cnf.is_some() {
        Metrics::inc(&state.metrics.dpop_key_mismatch);
        tracing::warn!(sid = %claims.sid, sub = %claims.sub, "dpop_key_mismatch: DPoP-bound access token sent as a bearer token");
        return Err(invalid_dpop_token(
            "DPoP-bound token sent as a bearer token",
        ));
    }
    Ok(claims)
}

/// Layer on `/auth/*` and `/api/*` when `--dpop` is on: the current nonce on every answer.
pub(crate) async fn nonce_header(
    State(state): State<SharedState>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let mut r = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&state.dpop.nonce(state.now())) {
        r.headers_mut().insert(DPOP_NONCE, v);
    }
    r
}
