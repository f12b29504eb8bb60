//! Harness for the verifier's tests (also used by the demo API's): the real auth server in-process on
//! loopback with a manual clock (the server's own test harness, included as is), a JWKS "tap" in front
//! of it that counts fetches on the wire and can be switched to answer 503, and a verifier that shares
//! the server's clock.

#![allow(dead_code)]

#[path = "../../../server/tests/common/mod.rs"]
pub mod srv;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use auth_server::clock::Clock as _;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use token_verifier::{RevocationCheck, Verifier, VerifierConfig};

pub use srv::Srv;

/// The introspection secret the servers of these tests are started with.
pub const INTROSPECTION_SECRET: &str = "introspection-secret-for-tests";

/// A forwarding proxy for `GET /.well-known/jwks.json` on its own loopback port: counts every request
/// it receives and, while `down`, answers 503 instead of forwarding.
pub struct Tap {
    pub addr: std::net::SocketAddr,
    pub hits: Arc<AtomicU64>,
    pub down: Arc<AtomicBool>,
}

impl Tap {
    pub async fn start(upstream: String) -> Self {
        let hits = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (h, d) = (hits.clone(), down.clone());
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let (h, d, http, upstream) = (h.clone(), d.clone(), http.clone(), upstream.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    if d.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    forward(&http, &upstream).await
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("tap serves") });
        Self { addr, hits, down }
    }

    pub fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

async fn forward(http: &reqwest::Client, upstream: &str) -> Response {
    let Ok(r) = http.get(upstream).send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = StatusCode::from_u16(r.status().as_u16()).expect("status");
    let cc = r
        .headers()
        .get("cache-control")
        .map(|v| v.as_bytes().to_vec());
    let body = r.bytes().await.expect("body").to_vec();
    let mut resp = (status, body).into_response();
    if let Some(cc) = cc.and_then(|v| HeaderValue::from_bytes(&v).ok()) {
        resp.headers_mut().insert(header::CACHE_CONTROL, cc);
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A server with the introspection endpoint on, unlimited logins and refreshes, and `f` applied.
pub async fn server(f: impl FnOnce(&mut auth_server::config::Config)) -> Srv {
    let dir = std::env::temp_dir().join(format!("verifier-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    static N: AtomicU64 = AtomicU64::new(0);
    let file = dir.join(format!(
        "introspection-secret-{}",
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&file, format!("{INTROSPECTION_SECRET}\n")).expect("secret file");
    Srv::with(|c| {
        c.introspection_secret_file = Some(file);
        c.login_rate_per_min = 0;
        c.refresh_rate_per_min = 0;
        c.refresh_ip_rate_per_5min = 0;
        f(c);
    })
    .await
}

/// A verifier configuration for `s`, its JWKS at `jwks_url`, on the server's clock.
pub fn config(s: &Srv, jwks_url: String) -> VerifierConfig {
    let cfg = &s.running.state.config;
    let mut v = VerifierConfig::new(jwks_url, cfg.issuer.clone(), cfg.audience.clone());
    let clock = s.clock.clone();
    v.clock = Arc::new(move || clock.now());
    v
}

/// `v` with the revocation check on (answers cached `cache_ttl` seconds).
pub fn with_revocation(mut v: VerifierConfig, s: &Srv, cache_ttl: u64) -> VerifierConfig {
    v.revocation = Some(RevocationCheck {
        introspection_url: s.url("/auth/introspect"),
        secret: INTROSPECTION_SECRET.into(),
        cache_ttl,
    });
    v
}

pub fn verifier(v: VerifierConfig) -> Arc<Verifier> {
    Arc::new(Verifier::new(v).expect("verifier"))
}
