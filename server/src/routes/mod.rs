//! The HTTP surface. Names here are a contract shared with the client, the demo and the e2e tests.

mod admin;
mod api;
mod auth;
mod body;
mod demo;
mod dpop;
mod error;
mod extract;
mod introspect;
mod legacy;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::middleware as mw;
use crate::SharedState;

/// Body limit for every route except `/api/echo`.
pub const SMALL_BODY_LIMIT: usize = 16 * 1024;
/// Body limit of `/api/echo` (fits a 10 MB Blob).
pub const ECHO_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Build the router.
pub fn router(state: SharedState) -> Router {
    let no_store = || {
        SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        )
    };

    // A declared Content-Length over the limit is answered 413 before any byte is read.
    let small = || RequestBodyLimitLayer::new(SMALL_BODY_LIMIT);

    let mut auth = Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/legacy/upgrade", post(legacy::upgrade))
        .layer(small())
        .layer(no_store());

    let mut api = Router::new()
        .route("/api/me", get(api::me).layer(small()))
        .route(
            "/api/echo",
            post(api::echo).layer(RequestBodyLimitLayer::new(ECHO_BODY_LIMIT)),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            legacy::api_gate,
        ))
        .layer(no_store());
    if state.config.dpop != crate::dpop::DpopMode::Off {
        let nonce = || middleware::from_fn_with_state(state.clone(), dpop::nonce_header);
        auth = auth.layer(nonce());
        api = api.layer(nonce());
    }

    let mut app = Router::new()
        .merge(auth)
        .merge(api)
        .route("/.well-known/jwks.json", get(jwks))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }));

    if state.config.demo {
        app = app.merge(demo::router().layer(small()).layer(no_store()));
    }
    if state.introspection_secret.is_some() {
        app = app.merge(
            introspect::router(state.clone())
                .layer(small())
                .layer(no_store()),
        );
    }
    if state.migration.admin_enabled() {
        app = app.merge(admin::router(state.clone()).layer(no_store()));
    }

    let mut statics = Router::new();
    let mut has_statics = false;
    if let Some(pkg) = &state.config.pkg {
        statics = statics.nest_service("/pkg", ServeDir::new(pkg));
        has_statics = true;
    }
    if let Some(www) = &state.config.www {
        statics =
            statics.fallback_service(ServeDir::new(www).append_index_html_on_directories(true));
        has_statics = true;
    }
    if has_statics {
        app = app.merge(statics.layer(middleware::from_fn(mw::static_headers)));
    }

    let mut app = app.layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT));
    if state.config.body_timeout > 0 {
        // Inside the request log, so a 408 is logged like any answer.
        app = app.layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(state.config.body_timeout),
        ));
    }
    app.layer(middleware::from_fn(mw::log_requests))
        .layer(middleware::from_fn_with_state(state.clone(), mw::cors))
        .layer(middleware::from_fn(mw::header_limits))
        .with_state(state)
}

async fn jwks(State(state): State<SharedState>) -> Response {
    let body = state
        .keys
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .jwks(state.now());
    let cc = format!("public, max-age={}", state.config.jwks_max_age);
    let mut r = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&cc) {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r
}

async fn metrics(State(state): State<SharedState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render() + &state.migration.render_metrics(state.now()),
    )
        .into_response()
}
