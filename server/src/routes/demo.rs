//! `/demo/*` control endpoints, mounted only with `--demo` (404 otherwise).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::extract::Authenticated;
use crate::metrics::Metrics;
use crate::SharedState;

/// Longest demo refresh outage.
pub const MAX_OUTAGE_SECS: u64 = 600;

pub(crate) fn router() -> Router<SharedState> {
    Router::new()
        .route("/demo/revoke-access", post(revoke_access))
        .route("/demo/fail-refresh", post(fail_refresh))
        .route("/demo/stats", get(stats))
        .route("/demo/legacy-token", post(legacy_token))
        .route("/demo/legacy-phase", post(legacy_phase))
        .route("/demo/legacy-kill-switch", post(legacy_kill_switch))
}

/// Revoke exactly the presented access token (its jti), until it would expire anyway.
/// Not counted as an API call (`/api/*` counters stay about the API).
async fn revoke_access(
    State(state): State<SharedState>,
    Authenticated(claims): Authenticated,
) -> Result<Response, ApiError> {
    if state.revoke_access_token(&claims).await? {
        Metrics::inc(&state.metrics.access_revocations);
        Metrics::inc(&state.metrics.revocations);
    }
    tracing::info!(sid = %claims.sid, "demo: access token revoked");
    Ok(Json(json!({ "revoked": true, "jti": claims.jti })).into_response())
}

#[derive(Deserialize, Default)]
struct FailBody {
    seconds: Option<u64>,
}

/// `{seconds}` (default 30, 0 stops): `/auth/refresh` answers 503 + Retry-After meanwhile.
/// An optional JSON body: empty means the defaults; anything else must parse.
fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|_| ApiError::invalid_request("invalid_request"))
}

async fn fail_refresh(State(state): State<SharedState>, body: Bytes) -> Result<Response, ApiError> {
    let parsed: FailBody = optional_json(&body)?;
    let secs = parsed.seconds.unwrap_or(30).min(MAX_OUTAGE_SECS);
    state.fail_refresh_for(secs);
    tracing::info!(seconds = secs, "demo: refresh outage");
    Ok(Json(json!({ "failingForSeconds": secs })).into_response())
}

async fn stats(State(state): State<SharedState>) -> Result<Response, ApiError> {
    let s = state.store.stats(state.now()).await?;
    let mut v = state.metrics.demo_stats();
    if let Some(o) = v.as_object_mut() {
        o.insert("liveSessions".into(), s.live_sessions.into());
        o.insert(
            "refreshFailingForSeconds".into(),
            state.refresh_outage_left().unwrap_or(0).into(),
        );
        o.insert("accessTtl".into(), state.config.access_ttl.into());
        o.insert("legacy".into(), state.migration.report(state.now()));
    }
    Ok(Json(v).into_response())
}

#[derive(Deserialize, Default)]
struct LegacyBody {
    username: Option<String>,
    #[serde(default)]
    without_jti: bool,
}

/// A legacy never-expiring token for `username` (default `demo`), as the old system minted.
async fn legacy_token(State(state): State<SharedState>, body: Bytes) -> Result<Response, ApiError> {
    let parsed: LegacyBody = optional_json(&body)?;
    let sub = parsed.username.unwrap_or_else(|| "demo".into());
    if !state
        .migration
        .verifier
        .as_ref()
        .is_some_and(|v| v.can_mint())
    {
        // A public legacy key: the private half stays with the old system.
        return Err(ApiError::Conflict("cannot_mint"));
    }
    let t = state
        .mint_legacy_token(&sub, !parsed.without_jti)
        .map_err(|e| ApiError::internal(format!("cannot mint a legacy token: {e}")))?;
    Ok(Json(json!({ "token": t })).into_response())
}

/// `{phase, graceSeconds?, cohortPercent?}`: the phase switch without the admin secret (demo only).
async fn legacy_phase(State(state): State<SharedState>, body: Bytes) -> Result<Response, ApiError> {
    super::admin::apply_phase(&state, &body, "demo")
}

/// The kill switch without the admin secret (demo only).
async fn legacy_kill_switch(State(state): State<SharedState>) -> Response {
    super::admin::apply_kill_switch(&state, "demo")
}
