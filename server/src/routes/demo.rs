//! `/demo/*` control endpoints, mounted only with `--demo` (404 otherwise).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::api::{bearer, unauthorized};
use super::json_error;
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
async fn revoke_access(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    let Some(claims) = bearer(&headers).and_then(|t| state.authenticate(t).ok()) else {
        return unauthorized();
    };
    let until = claims.exp.saturating_add(state.config.leeway);
    if state
        .store
        .block_jti(&claims.iss, &claims.jti, until, state.now())
    {
        Metrics::inc(&state.metrics.access_revocations);
        Metrics::inc(&state.metrics.revocations);
    }
    tracing::info!(sid = %claims.sid, "demo: access token revoked");
    Json(json!({ "revoked": true, "jti": claims.jti })).into_response()
}

#[derive(Deserialize, Default)]
struct FailBody {
    seconds: Option<u64>,
}

/// `{seconds}` (default 30, 0 stops): `/auth/refresh` answers 503 + Retry-After meanwhile.
async fn fail_refresh(State(state): State<SharedState>, body: Bytes) -> Response {
    let parsed: FailBody = if body.is_empty() {
        FailBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(_) => return json_error(StatusCode::BAD_REQUEST, "invalid_request"),
        }
    };
    let secs = parsed.seconds.unwrap_or(30).min(MAX_OUTAGE_SECS);
    state.fail_refresh_for(secs);
    tracing::info!(seconds = secs, "demo: refresh outage");
    Json(json!({ "failingForSeconds": secs })).into_response()
}

async fn stats(State(state): State<SharedState>) -> Response {
    let mut v = state.metrics.demo_stats();
    if let Some(o) = v.as_object_mut() {
        let s = state.store.stats(state.now());
        o.insert("liveSessions".into(), s.live_sessions.into());
        o.insert(
            "refreshFailingForSeconds".into(),
            state.refresh_outage_left().unwrap_or(0).into(),
        );
        o.insert("accessTtl".into(), state.config.access_ttl.into());
        o.insert("legacy".into(), state.migration.report(state.now()));
    }
    Json(v).into_response()
}

#[derive(Deserialize, Default)]
struct LegacyBody {
    username: Option<String>,
    #[serde(default)]
    without_jti: bool,
}

/// A legacy never-expiring token for `username` (default `demo`), as the old system minted.
async fn legacy_token(State(state): State<SharedState>, body: Bytes) -> Response {
    let parsed: LegacyBody = if body.is_empty() {
        LegacyBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(_) => return json_error(StatusCode::BAD_REQUEST, "invalid_request"),
        }
    };
    let sub = parsed.username.unwrap_or_else(|| "demo".into());
    if !state
        .migration
        .verifier
        .as_ref()
        .is_some_and(|v| v.can_mint())
    {
        // A public legacy key: the private half stays with the old system.
        return json_error(StatusCode::CONFLICT, "cannot_mint");
    }
    match state.mint_legacy_token(&sub, !parsed.without_jti) {
        Ok(t) => Json(json!({ "token": t })).into_response(),
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    }
}

/// `{phase, graceSeconds?, cohortPercent?}`: the phase switch without the admin secret (demo only).
async fn legacy_phase(State(state): State<SharedState>, body: Bytes) -> Response {
    super::admin::apply_phase(&state, &body, "demo")
}

/// The kill switch without the admin secret (demo only).
async fn legacy_kill_switch(State(state): State<SharedState>) -> Response {
    super::admin::apply_kill_switch(&state, "demo")
}
