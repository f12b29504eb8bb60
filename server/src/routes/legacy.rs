//! The legacy side of the HTTP surface: the API gate (what a legacy token gets at `/api/*` in each phase)
//! and `POST /auth/legacy/upgrade`, the one-time exchange. The rules are in [`crate::legacy`].

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{access_token_response, start_session, token_response};
use super::error::ApiError;
use super::extract::{BearerToken, CsrfChecked};
use crate::legacy::{ClientInfo, Exchange, Place};
use crate::metrics::{LegacyOutcome, Metrics};
use crate::SharedState;

/// Put on a request the gate let through with a legacy token (phases 0 and 1): the API answers for this user.
#[derive(Debug, Clone)]
pub(crate) struct LegacyPrincipal {
    pub(crate) sub: String,
}

/// `WWW-Authenticate` of a phase-2 refusal: names the upgrade endpoint.
pub const UPGRADE_CHALLENGE: &str = "Bearer error=\"invalid_token\", error_description=\"legacy token: exchange it once at /auth/legacy/upgrade\"";
/// `WWW-Authenticate` of a phase-3/4 refusal.
pub const RETIRED_CHALLENGE: &str =
    "Bearer error=\"invalid_token\", error_description=\"legacy tokens are no longer accepted: sign in again\"";
/// `Link` to the upgrade endpoint (phase 1 responses and phase 2 refusals).
pub const UPGRADE_LINK: &str = "</auth/legacy/upgrade>; rel=\"successor-version\"";

fn deprecation_headers(state: &SharedState, h: &mut HeaderMap) {
    let ps = state.migration.phase_state();
    let since = ps.deprecated_at.unwrap_or(state.started_at);
    // RFC 9745: a Structured Field Date; RFC 8594: an HTTP-date.
    if let Ok(v) = HeaderValue::from_str(&format!("@{since}")) {
        h.insert("deprecation", v);
    }
    let sunset = std::time::UNIX_EPOCH + std::time::Duration::from_secs(state.migration.sunset());
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(sunset)) {
        h.insert("sunset", v);
    }
    h.insert(header::LINK, HeaderValue::from_static(UPGRADE_LINK));
}

fn refusal(challenge: &'static str) -> Response {
    ApiError::Unauthorized {
        code: "invalid_token",
        challenge: Some(challenge),
        reason: "legacy token refused at the API in this phase".into(),
    }
    .into_response()
}

/// Layer on `/api/*`. New tokens pass untouched (the handler verifies them); a valid legacy token is
/// counted and logged with its user and client, then: phases 0–1 let it through as [`LegacyPrincipal`]
/// (phase 1 adds `Deprecation`, `Sunset` and `Link`); phase 2 answers 401 naming the upgrade; phases 3–4
/// answer 401 (phase 4 also raises a `legacy_token` alert).
pub(crate) async fn api_gate(
    State(state): State<SharedState>,
    mut req: Request<Body>,
    next: Next,
) -> Response {
    let token = BearerToken::from_headers(req.headers())
        .filter(|t| {
            state
                .migration
                .verifier
                .as_ref()
                .is_some_and(|v| v.looks_legacy(t))
        })
        .map(str::to_owned);
    let id = token.and_then(|t| match state.verify_legacy(&t) {
        Ok(id) => Some(id),
        Err(why) => {
            tracing::debug!(reason = ?why, "legacy-shaped token rejected");
            None
        }
    });
    let Some(id) = id else {
        state.migration.count_api_request(false);
        return next.run(req).await;
    };
    state.migration.count_api_request(true);
    let now = state.now();
    let phase = state.migration.effective_phase(&id.sub, now);
    let client = ClientInfo::from_headers(req.headers());
    let accepted = phase <= 1;
    state
        .migration
        .record_use(&id.sub, &client, phase, Place::Api, accepted, now);
    match phase {
        0 | 1 => {
            req.extensions_mut().insert(LegacyPrincipal { sub: id.sub });
            let mut resp = next.run(req).await;
            if phase == 1 {
                deprecation_headers(&state, resp.headers_mut());
            }
            resp
        }
        2 => {
            Metrics::inc(&state.metrics.api_unauthorized);
            let mut r = refusal(UPGRADE_CHALLENGE);
            deprecation_headers(&state, r.headers_mut());
            r
        }
        _ => {
            Metrics::inc(&state.metrics.api_unauthorized);
            refusal(RETIRED_CHALLENGE)
        }
    }
}

/// `POST /auth/legacy/upgrade` with `Authorization: Bearer <legacy token>`: CSRF-checked, then the token is
/// verified as a legacy token and, in phases 0–2 for its user, exchanged once for a normal session (200 like
/// login). The same token again within `--reuse-grace` of the exchange (two tabs at once) gets an access token of
/// that same session (no cookie, no new session); later it is a replay: 401 `invalid_grant` and a security event.
/// Phases 3–4: 401 `legacy_token_retired`.
pub(crate) async fn upgrade(
    State(state): State<SharedState>,
    _: CsrfChecked,
    bearer: Result<BearerToken, ApiError>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let invalid = |why: &dyn std::fmt::Debug| {
        state.metrics.legacy(LegacyOutcome::Invalid);
        tracing::info!(reason = ?why, "legacy upgrade: not a valid legacy token");
        ApiError::Unauthorized {
            code: "invalid_token",
            challenge: None,
            reason: format!("not a valid legacy token: {why:?}").into(),
        }
    };
    let Ok(BearerToken(token)) = bearer else {
        return Err(invalid(&"no bearer token"));
    };
    let id = state.verify_legacy(&token).map_err(|why| invalid(&why))?;
    let now = state.now();
    let client = ClientInfo::from_headers(&headers);
    let phase = state.migration.effective_phase(&id.sub, now);
    if phase >= 3 {
        state
            .migration
            .record_use(&id.sub, &client, phase, Place::Upgrade, false, now);
        state.metrics.legacy(LegacyOutcome::Retired);
        return Err(ApiError::Unauthorized {
            code: "legacy_token_retired",
            challenge: None,
            reason: "legacy tokens retired for this user (phase 3 or later)".into(),
        });
    }
    let grace = state.config.reuse_grace;
    match state
        .migration
        .exchange(
            &id.once_key,
            now,
            grace,
            start_session(&state, &id.sub, None),
        )
        .await?
    {
        Exchange::First(info, rt) => {
            state.metrics.legacy(LegacyOutcome::Ok);
            state.migration.forget(&id.sub, &client);
            tracing::info!(event = "legacy_upgrade", user = %id.sub, sid = %info.sid, phase,
                user_agent = ?client.user_agent, client_id = ?client.client_id, "legacy token upgraded");
            token_response(&state, &info, &rt, None)
        }
        Exchange::Repeat { sid } => {
            if state.store.session_rejected(&sid).await? {
                return Err(ApiError::invalid_grant(
                    "legacy token repeated, but its session was revoked",
                ));
            }
            tracing::info!(user = %id.sub, sid = %sid, "legacy upgrade: concurrent repeat, same session");
            access_token_response(&state, &id.sub, &sid, None)
        }
        Exchange::Replay => {
            state.metrics.legacy(LegacyOutcome::Replay);
            tracing::warn!(event = "security", kind = "legacy_replay", user = %id.sub,
                user_agent = ?client.user_agent, client_id = ?client.client_id,
                "security: legacy token exchanged a second time");
            Err(ApiError::invalid_grant(
                "legacy token replayed after its exchange (security event)",
            ))
        }
    }
}
