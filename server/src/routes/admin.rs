//! `/admin/*`: the migration's operator endpoints, mounted only with `--admin-secret-file`.
//! Every request needs `Authorization: Bearer <secret>` (compared in constant time); a bearer header, not a
//! cookie, so no CSRF check is needed.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::http::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::ApiError;
use crate::SharedState;

pub(crate) fn router(state: SharedState) -> Router<SharedState> {
    Router::new()
        .route("/admin/legacy", get(report))
        .route("/admin/legacy/phase", post(set_phase))
        .route("/admin/legacy/kill-switch", post(kill_switch))
        .route_layer(middleware::from_fn_with_state(state, require_admin))
}

async fn require_admin(
    State(state): State<SharedState>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let mut all = req.headers().get_all(header::AUTHORIZATION).iter();
    let presented = match (all.next(), all.next()) {
        (Some(v), None) => v
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.to_string()),
        _ => None,
    };
    if presented.is_some_and(|t| state.migration.admin_ok(&t)) {
        return next.run(req).await;
    }
    tracing::warn!(
        event = "security",
        kind = "admin_auth_failed",
        "admin request refused"
    );
    ApiError::Unauthorized {
        code: "unauthorized",
        challenge: Some("Bearer realm=\"admin\""),
        reason: "unauthorized".into(),
    }
    .into_response()
}

async fn report(State(state): State<SharedState>) -> Response {
    Json(state.migration.report(state.now())).into_response()
}

/// `{"phase": 0..4, "graceSeconds"?: n, "cohortPercent"?: 0..100}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PhaseBody {
    pub(crate) phase: u8,
    pub(crate) grace_seconds: Option<u64>,
    pub(crate) cohort_percent: Option<u8>,
}

/// Parse and apply a phase switch (admin and demo share it).
pub(crate) fn apply_phase(
    state: &SharedState,
    body: &Bytes,
    by: &str,
) -> Result<Response, ApiError> {
    let invalid = || ApiError::invalid_request("invalid_request");
    let b = serde_json::from_slice::<PhaseBody>(body).map_err(|_| invalid())?;
    if b.phase > 4 || b.cohort_percent.is_some_and(|p| p > 100) {
        return Err(invalid());
    }
    let now = state.now();
    state
        .migration
        .switch(b.phase, b.grace_seconds, b.cohort_percent, now, by);
    Ok(Json(state.migration.report(now)).into_response())
}

/// Revert to the previous phase at once (the kill switch).
pub(crate) fn apply_kill_switch(state: &SharedState, by: &str) -> Response {
    let now = state.now();
    let (reverted, _) = state.migration.kill_switch(now, by);
    let mut v = state.migration.report(now);
    if let Some(o) = v.as_object_mut() {
        o.insert("reverted".into(), reverted.into());
    }
    Json(v).into_response()
}

async fn set_phase(State(state): State<SharedState>, body: Bytes) -> Result<Response, ApiError> {
    apply_phase(&state, &body, "admin")
}

async fn kill_switch(State(state): State<SharedState>) -> Response {
    apply_kill_switch(&state, "admin")
}
