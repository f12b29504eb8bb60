//! The server's HTTP surface, in process (the router of server/src/routes): any Cookie, Authorization,
//! Origin, Content-Type and body on every route, with and without a live session's real credentials spliced
//! in. This reaches the parsers that are not public functions (the refresh cookie, the bearer header, the
//! login body, the CSRF checks, the legacy gate and upgrade, the admin bearer check) through the real code. Never a 5xx, never a panic; a 401
//! from the API names the bearer scheme, a 429 says when to come back (S12–S16, S33, S34, S46).
#![no_main]
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use arbitrary::Arbitrary;
use auth_server::clock::ManualClock;
use auth_server::config::Config;
use auth_server::App;
use axum::body::{to_bytes, Body};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

const ORIGIN: &str = "http://app.example";

struct World {
    rt: tokio::runtime::Runtime,
    app: App,
    /// A live session's access token and refresh cookie, renewed every so often.
    live: Mutex<(String, String, u32)>,
    legacy: String,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let mut config = Config {
            login_rate_per_min: 0,
            refresh_rate_per_min: 0,
            refresh_ip_rate_per_5min: 0,
            allowed_origins: vec![ORIGIN.into()],
            ..Config::default()
        };
        // The migration as configured in production: a legacy HMAC key file (phase 0 at start, so a legacy
        // token reaches both the API, through the legacy gate, and the upgrade endpoint) and an admin secret
        // file (so /admin/*, and its bearer check, is mounted for the fuzzed paths).
        config.legacy.hmac_secret_file = Some(wtm_fuzz::secret_file("legacy", "fuzz-legacy-shared-secret"));
        config.legacy.admin_secret_file = Some(wtm_fuzz::secret_file("admin", "fuzz-admin-secret"));
        let app = auth_server::app(config, Arc::new(ManualClock::new(1_700_000_000))).expect("the app builds");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let legacy = app.state.mint_legacy_token("demo", true).expect("legacy token");
        let w = World { rt, app, live: Mutex::new((String::new(), String::new(), 0)), legacy };
        let live = login(&w);
        *w.live.lock().expect("lock") = (live.0, live.1, 0);
        w
    })
}

fn request(method: Method, path: &str, body: Vec<u8>) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(path).body(Body::from(body)).expect("request");
    r.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    r
}

/// Logs in as demo: (access token, refresh token).
fn login(w: &World) -> (String, String) {
    let mut r = request(Method::POST, "/auth/login", br#"{"username":"demo","password":"demo"}"#.to_vec());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let resp = w.rt.block_on(w.app.router.clone().oneshot(r)).expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers().get(header::SET_COOKIE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let rt = cookie.split(';').next().and_then(|kv| kv.split_once('=')).map(|(_, v)| v.to_owned()).unwrap_or_default();
    let body = w.rt.block_on(to_bytes(resp.into_body(), 1 << 20)).expect("body");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    (v["accessToken"].as_str().unwrap_or("").to_owned(), rt)
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    route: u8,
    path: &'a str,
    splice: u8,
    cookie: Option<&'a [u8]>,
    authorization: Option<&'a [u8]>,
    origin: Option<&'a [u8]>,
    content_type: Option<&'a [u8]>,
    second_content_type: Option<&'a [u8]>,
    x_requested_with: bool,
    body: &'a [u8],
}

fn set(r: &mut Request<Body>, name: header::HeaderName, value: &[u8]) {
    if let Ok(v) = HeaderValue::from_bytes(value) {
        r.headers_mut().append(name, v);
    }
}

fuzz_target!(|input: Input<'_>| {
    let w = world();
    let (method, path) = match input.route % 10 {
        0 => (Method::POST, "/auth/login"),
        1 => (Method::POST, "/auth/refresh"),
        2 => (Method::POST, "/auth/logout"),
        3 => (Method::POST, "/auth/legacy/upgrade"),
        4 => (Method::GET, "/api/me"),
        5 => (Method::POST, "/api/echo"),
        6 => (Method::GET, "/.well-known/jwks.json"),
        7 => (Method::GET, "/healthz"),
        8 => (Method::OPTIONS, "/auth/refresh"),
        _ => (Method::POST, input.path),
    };
    if !path.starts_with('/') || path.parse::<axum::http::Uri>().is_err() {
        return;
    }
    let (access, refresh) = {
        let mut live = w.live.lock().expect("lock");
        live.2 += 1;
        if live.2 % 64 == 0 {
            let (a, r) = login(w);
            *live = (a, r, live.2);
        }
        (live.0.clone(), live.1.clone())
    };
    let mut r = request(method, path, input.body.to_vec());
    let mut splice = |name: header::HeaderName, prefix: &str, value: &str, fuzzed: Option<&[u8]>| {
        let mut v = format!("{prefix}{value}").into_bytes();
        if let Some(f) = fuzzed {
            v.extend_from_slice(f);
        }
        set(&mut r, name, &v);
    };
    match input.splice % 6 {
        1 => splice(header::AUTHORIZATION, "Bearer ", &access, input.authorization),
        2 => splice(header::AUTHORIZATION, "Bearer ", &w.legacy, input.authorization),
        3 => splice(header::COOKIE, "rt=", &refresh, input.cookie),
        4 => splice(header::COOKIE, "other=1; rt=", &refresh, input.cookie),
        _ => {}
    }
    if let Some(v) = input.cookie {
        set(&mut r, header::COOKIE, v);
    }
    if let Some(v) = input.authorization {
        set(&mut r, header::AUTHORIZATION, v);
    }
    match input.origin {
        Some(v) if input.splice & 0x40 != 0 => set(&mut r, header::ORIGIN, v),
        _ => set(&mut r, header::ORIGIN, ORIGIN.as_bytes()),
    }
    match input.content_type {
        Some(v) if input.splice & 0x80 != 0 => set(&mut r, header::CONTENT_TYPE, v),
        _ => set(&mut r, header::CONTENT_TYPE, b"application/json"),
    }
    if let Some(v) = input.second_content_type {
        set(&mut r, header::CONTENT_TYPE, v);
    }
    if input.x_requested_with {
        set(&mut r, header::HeaderName::from_static("x-requested-with"), b"tm");
    }
    let is_api = path.starts_with("/api/");
    let resp = w.rt.block_on(w.app.router.clone().oneshot(r)).expect("infallible");
    let status = resp.status();
    assert!(!status.is_server_error(), "{status} for {input:?}");
    if is_api && status == StatusCode::UNAUTHORIZED {
        assert!(resp.headers().get(header::WWW_AUTHENTICATE).is_some(), "401 without WWW-Authenticate: {input:?}");
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        assert!(resp.headers().get(header::RETRY_AFTER).is_some(), "429 without Retry-After: {input:?}");
    }
    let _ = w.rt.block_on(to_bytes(resp.into_body(), 64 << 20));
});
