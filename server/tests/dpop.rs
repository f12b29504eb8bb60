//! DPoP (RFC 9449) over HTTP on loopback, with a real P-256 key generated here: the whole flow,
//! a token or cookie copied without the key, replays, wrong htm/htu/ath, nonce rotation, and
//! `--dpop off` unchanged.

mod common;

use auth_server::config::Config;
use auth_server::dpop::DpopMode;
use common::{rt_cookie, DpopKey as Key, Srv};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

/// A DPoP client: a key, the last nonce the server sent (every proof has a fresh `jti`), and how
/// far its clock is from the server's, seconds.
struct Client {
    key: Key,
    nonce: Option<String>,
    skew: i64,
}

impl Client {
    fn new() -> Self {
        Self {
            key: Key::new(),
            nonce: None,
            skew: 0,
        }
    }

    fn proof(&mut self, s: &Srv, htm: &str, path: &str, at: Option<&str>) -> String {
        let iat = s.now().saturating_add_signed(self.skew);
        self.key
            .proof_at(iat, htm, &s.url(path), self.nonce.as_deref(), at)
    }

    /// Keep the nonce of an answer, as the client must (RFC 9449 §8.2).
    fn saw(&mut self, r: &Response) {
        if let Some(n) = r.headers().get("dpop-nonce") {
            self.nonce = Some(n.to_str().expect("ascii").to_string());
        }
    }

    async fn login_once(&mut self, s: &Srv) -> Response {
        let proof = self.proof(s, "POST", "/auth/login", None);
        let r = s.dpop_login(proof).await;
        self.saw(&r);
        r
    }

    /// Login, answering the server's first `use_dpop_nonce` once. Returns (access token, cookie).
    async fn login(&mut self, s: &Srv) -> (String, String) {
        let mut r = self.login_once(s).await;
        if r.status() == StatusCode::BAD_REQUEST {
            let body: Value = r.json().await.expect("json");
            assert_eq!(body["error"], "use_dpop_nonce");
            r = self.login_once(s).await;
        }
        assert_eq!(r.status(), StatusCode::OK);
        let rt = rt_cookie(r.headers()).expect("cookie");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["tokenType"], "DPoP");
        (body["accessToken"].as_str().expect("at").to_string(), rt)
    }

    async fn refresh(&mut self, s: &Srv, rt: &str) -> Response {
        let proof = self.proof(s, "POST", "/auth/refresh", None);
        let r = refresh_with(s, rt, proof).await;
        self.saw(&r);
        r
    }

    async fn me(&mut self, s: &Srv, at: &str) -> Response {
        let proof = self.proof(s, "GET", "/api/me", Some(at));
        let r = api_get(s, "/api/me", at, Some(proof)).await;
        self.saw(&r);
        r
    }
}

/// `GET path` with `Authorization: DPoP <at>` and, if given, a `DPoP` proof.
async fn api_get(s: &Srv, path: &str, at: &str, proof: Option<String>) -> Response {
    let mut b = s
        .http
        .get(s.url(path))
        .header("authorization", format!("DPoP {at}"));
    if let Some(p) = proof {
        b = b.header("dpop", p);
    }
    b.send().await.expect("api request")
}

/// `/auth/refresh` as a browser sends it, with a `DPoP` proof.
async fn refresh_with(s: &Srv, rt: &str, proof: String) -> Response {
    s.refresh_req(rt)
        .header("dpop", proof)
        .send()
        .await
        .expect("refresh")
}

async fn dpop_server(mode: DpopMode) -> Srv {
    Srv::with(|c: &mut Config| c.dpop = mode).await
}

fn payload(jwt: &str) -> Value {
    use base64::Engine;
    let p = jwt.split('.').nth(1).expect("payload");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(p)
        .expect("b64");
    serde_json::from_slice(&raw).expect("json")
}

fn challenge(r: &Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_string())
        .unwrap_or_default()
}

async fn error_of(r: Response) -> (StatusCode, String, String) {
    let status = r.status();
    let ch = challenge(&r);
    let body: Value = r.json().await.expect("json");
    (status, body["error"].as_str().unwrap_or("").to_string(), ch)
}

fn key_mismatches(s: &Srv) -> u64 {
    s.running
        .state
        .metrics
        .dpop_key_mismatch
        .load(Ordering::Relaxed)
}

#[tokio::test]
async fn the_whole_flow_binds_tokens_and_session_to_the_key() {
    let s = dpop_server(DpopMode::Allowed).await;
    let mut c = Client::new();
    // The first proof has no nonce: 400 use_dpop_nonce with a DPoP-Nonce to retry with.
    let r = c.login_once(&s).await;
    assert!(r.headers().contains_key("dpop-nonce"));
    assert_eq!(
        error_of(r).await,
        (
            StatusCode::BAD_REQUEST,
            "use_dpop_nonce".into(),
            String::new()
        )
    );
    let (at, rt) = c.login(&s).await;
    assert_eq!(payload(&at)["cnf"]["jkt"], c.key.jkt());

    let r = c.me(&s, &at).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.expect("json")["sub"], "demo");

    let r = c.refresh(&s, &rt).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rt2 = rt_cookie(r.headers()).expect("rotated cookie");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["tokenType"], "DPoP");
    let at2 = body["accessToken"].as_str().expect("at").to_string();
    assert_eq!(payload(&at2)["cnf"]["jkt"], c.key.jkt());
    assert_eq!(c.me(&s, &at2).await.status(), StatusCode::OK);
    assert_eq!(c.refresh(&s, &rt2).await.status(), StatusCode::OK);
    assert_eq!(key_mismatches(&s), 0);
}

#[tokio::test]
async fn an_access_token_copied_without_the_key_is_refused_at_the_api() {
    let s = dpop_server(DpopMode::Allowed).await;
    let mut c = Client::new();
    let (at, _) = c.login(&s).await;

    // As a bearer token.
    let r = s.me(&at).await;
    let (status, code, ch) = error_of(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    assert_eq!(ch, r#"DPoP error="invalid_token", algs="ES256""#);
    assert_eq!(key_mismatches(&s), 1);

    // Under the DPoP scheme with the thief's own key (the nonce is public).
    let mut thief = Client::new();
    thief.nonce = c.nonce.clone();
    let (status, code, ch) = error_of(thief.me(&s, &at).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    assert!(ch.starts_with("DPoP "), "{ch}");
    assert_eq!(key_mismatches(&s), 2);

    // Under the DPoP scheme with no proof at all.
    let r = api_get(&s, "/api/me", &at, None).await;
    let (status, code, ch) = error_of(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_dpop_proof")
    );
    assert_eq!(ch, r#"DPoP error="invalid_dpop_proof", algs="ES256""#);

    // The owner still gets through.
    assert_eq!(c.me(&s, &at).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_cookie_presented_with_another_key_or_none_is_refused_and_counted() {
    let s = dpop_server(DpopMode::Allowed).await;
    let mut c = Client::new();
    let (_, rt) = c.login(&s).await;
    let invalid_before = s.refresh_metric("invalid_grant").await;

    let mut thief = Client::new();
    thief.nonce = c.nonce.clone();
    let (status, code, _) = error_of(thief.refresh(&s, &rt).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_grant")
    );
    assert_eq!(key_mismatches(&s), 1);

    let (status, code, _) = error_of(s.refresh(&rt).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_grant")
    );
    assert_eq!(key_mismatches(&s), 2);
    assert_eq!(s.metric("auth_dpop_key_mismatch_total").await, 2);
    assert_eq!(s.refresh_metric("invalid_grant").await, invalid_before + 2);

    // The session is not revoked: the key holder refreshes with the same cookie.
    assert_eq!(c.refresh(&s, &rt).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let s = dpop_server(DpopMode::Allowed).await;
    let mut c = Client::new();
    let (at, rt) = c.login(&s).await;
    let proof = c.proof(&s, "GET", "/api/me", Some(&at));
    let r = api_get(&s, "/api/me", &at, Some(proof.clone())).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (status, code, _) = error_of(api_get(&s, "/api/me", &at, Some(proof)).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_dpop_proof")
    );

    // At the token endpoint too.
    let proof = c.proof(&s, "POST", "/auth/refresh", None);
    let r = refresh_with(&s, &rt, proof.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rt2 = rt_cookie(r.headers()).expect("cookie");
    let r = refresh_with(&s, &rt2, proof).await;
    let (status, code, _) = error_of(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
    );
    assert!(s.metric("auth_dpop_proofs_refused_total").await >= 2);
}

#[tokio::test]
async fn a_wrong_htm_htu_or_ath_is_refused() {
    let s = dpop_server(DpopMode::Allowed).await;
    let mut c = Client::new();
    let (at, rt) = c.login(&s).await;
    let (_, other_at) = {
        let mut c2 = Client::new();
        c2.login(&s).await
    };

    let cases = [
        ("GET", "/auth/refresh"),    // htm
        ("POST", "/auth/login"),     // htu: another endpoint
        ("POST", "/auth/refresh/x"), // htu: another path
    ];
    for (htm, path) in cases {
        let proof = c.proof(&s, htm, path, None);
        let r = refresh_with(&s, &rt, proof).await;
        let (status, code, _) = error_of(r).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_dpop_proof"),
            "{htm} {path}"
        );
    }
    // Another host in htu.
    let evil = "http://evil.example/auth/refresh";
    let proof = c.key.proof(&s, "POST", evil, c.nonce.as_deref(), None);
    let r = refresh_with(&s, &rt, proof).await;
    assert_eq!(error_of(r).await.1, "invalid_dpop_proof");
    // A query string in the request is ignored by the comparison.
    let proof = c.proof(&s, "GET", "/api/me", Some(&at));
    let r = api_get(&s, "/api/me?x=1", &at, Some(proof)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // ath of another token.
    let proof = c.proof(&s, "GET", "/api/me", Some(&other_at));
    let r = api_get(&s, "/api/me", &at, Some(proof)).await;
    let (status, code, _) = error_of(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_dpop_proof")
    );
    // The refresh cookie was never consumed by the refused requests.
    assert_eq!(c.refresh(&s, &rt).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn nonces_rotate_without_a_failed_request_while_answers_carry_them() {
    let s = Srv::with(|c: &mut Config| {
        c.dpop = DpopMode::Allowed;
        c.dpop_nonce_rotate = 100;
    })
    .await;
    let mut c = Client::new();
    let (at, _) = c.login(&s).await;
    let first = c.nonce.clone().expect("nonce");
    s.advance(100);
    // The old nonce is still accepted for one period; the answer carries the new one.
    let r = c.me(&s, &at).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second = c.nonce.clone().expect("nonce");
    assert_ne!(first, second);
    // A client that missed the new nonce is told once, then succeeds with it.
    s.advance(100);
    c.nonce = Some(first);
    let r = c.me(&s, &at).await;
    let (status, code, ch) = error_of(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "use_dpop_nonce")
    );
    assert_eq!(ch, r#"DPoP error="use_dpop_nonce", algs="ES256""#);
    assert_ne!(c.nonce.as_deref(), Some(second.as_str()));
    assert_eq!(c.me(&s, &at).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn required_mode_refuses_login_and_refresh_without_a_proof() {
    let s = dpop_server(DpopMode::Required).await;
    let r = s
        .http
        .post(s.url("/auth/login"))
        .json(&json!({"username": "demo", "password": "demo"}))
        .send()
        .await
        .expect("login");
    assert_eq!(error_of(r).await.1, "invalid_dpop_proof");
    let mut c = Client::new();
    let (_, rt) = c.login(&s).await;
    let (status, code, _) = error_of(s.refresh(&rt).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_dpop_proof")
    );
    assert_eq!(c.refresh(&s, &rt).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn allowed_mode_without_a_proof_gives_bearer_tokens() {
    let s = dpop_server(DpopMode::Allowed).await;
    let l = s.login().await;
    assert_eq!(l.body["tokenType"], "Bearer");
    assert!(payload(&l.at).get("cnf").is_none());
    assert_eq!(s.me_status(&l.at).await, StatusCode::OK);
    let (_, rt2) = s.refresh_ok(&l.rt).await;
    assert!(!rt2.is_empty());
}

#[tokio::test]
async fn off_ignores_dpop_as_before() {
    let s = dpop_server(DpopMode::Off).await;
    let mut c = Client::new();
    let r = c.login_once(&s).await;
    assert_eq!(r.status(), StatusCode::OK, "the DPoP header is ignored");
    assert!(!r.headers().contains_key("dpop-nonce"));
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["tokenType"], "Bearer");
    let at = body["accessToken"].as_str().expect("at").to_string();
    assert!(payload(&at).get("cnf").is_none());
    // The DPoP scheme is not understood: refused like any malformed credential, as before.
    let r = c.me(&s, &at).await;
    assert_eq!(challenge(&r), r#"Bearer error="invalid_token""#);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.me_status(&at).await, StatusCode::OK);
}

#[tokio::test]
async fn cors_allows_and_exposes_the_dpop_headers_only_when_on() {
    for (mode, on) in [(DpopMode::Off, false), (DpopMode::Allowed, true)] {
        let s = Srv::with(|c: &mut Config| {
            c.dpop = mode;
            c.allowed_origins = vec!["http://app.example".into()];
        })
        .await;
        let r = s
            .http
            .request(reqwest::Method::OPTIONS, s.url("/api/me"))
            .header("origin", "http://app.example")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization, dpop")
            .send()
            .await
            .expect("preflight");
        let allow = r.headers()["access-control-allow-headers"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert_eq!(allow.split(", ").any(|h| h == "dpop"), on, "{allow}");
        let r = s
            .http
            .get(s.url("/api/me"))
            .header("origin", "http://app.example")
            .send()
            .await
            .expect("get");
        let expose = r.headers()["access-control-expose-headers"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert_eq!(
            expose.split(", ").any(|h| h == "dpop-nonce"),
            on,
            "{expose}"
        );
        assert_eq!(r.headers().contains_key("dpop-nonce"), on);
    }
}

#[tokio::test]
async fn nonce_challenges_at_refresh_are_not_refresh_failures_for_the_alerts() {
    // Phase 4 of the legacy migration raises `refresh_failures` after 5 failed refreshes of one client.
    let s = Srv::with(|c: &mut Config| {
        c.dpop = DpopMode::Allowed;
        c.demo = true;
        c.legacy.phase = 4;
    })
    .await;
    let mut c = Client::new();
    let (_, rt) = c.login(&s).await;
    let alerts = "auth_alerts_total{kind=\"refresh_failures\"}";
    let invalid_before = s.refresh_metric("invalid_grant").await;
    let proof_before = s.refresh_metric("dpop_proof").await;
    c.nonce = None;
    for _ in 0..auth_server::legacy::REFRESH_FAILURE_THRESHOLD {
        let (status, code, _) = error_of(c.refresh(&s, &rt).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "use_dpop_nonce")
        );
        c.nonce = None;
    }
    assert_eq!(s.metric(alerts).await, 0);
    // Nor invalid grants on the dashboard: they have an outcome of their own.
    assert_eq!(s.refresh_metric("invalid_grant").await, invalid_before);
    assert_eq!(
        s.refresh_metric("dpop_proof").await,
        proof_before + auth_server::legacy::REFRESH_FAILURE_THRESHOLD as u64
    );
    for _ in 0..auth_server::legacy::REFRESH_FAILURE_THRESHOLD {
        s.refresh(&"A".repeat(43)).await;
    }
    assert_eq!(s.metric(alerts).await, 1, "real failures still raise it");
}

/// RFC 9449 §4.3 step 11: the server nonce establishes when a proof was made, so a browser whose
/// clock is minutes off (its `iat` outside `--dpop-proof-window`) signs in, calls and refreshes.
#[tokio::test]
async fn a_client_clock_minutes_off_gets_in_on_a_fresh_nonce() {
    for skew in [-600, 600] {
        let s = dpop_server(DpopMode::Required).await;
        let mut c = Client::new();
        c.skew = skew;
        // Without a nonce the proof is refused with a nonce to retry with, not as invalid.
        let r = c.login_once(&s).await;
        assert_eq!(
            error_of(r).await,
            (
                StatusCode::BAD_REQUEST,
                "use_dpop_nonce".into(),
                String::new()
            ),
            "skew {skew}"
        );
        let (at, rt) = c.login(&s).await;
        assert_eq!(c.me(&s, &at).await.status(), StatusCode::OK, "skew {skew}");
        let r = c.refresh(&s, &rt).await;
        assert_eq!(r.status(), StatusCode::OK, "skew {skew}");
        assert_eq!(s.metric("auth_dpop_proofs_refused_total").await, 0);
    }
}

/// A stale `iat` is accepted only on a nonce the server issued lately (current or previous).
#[tokio::test]
async fn a_stale_iat_without_a_fresh_nonce_is_refused() {
    let s = Srv::with(|c: &mut Config| {
        c.dpop = DpopMode::Required;
        c.dpop_nonce_rotate = 100;
    })
    .await;
    let mut c = Client::new();
    c.skew = -600;
    let (at, _) = c.login(&s).await;
    let issued = c.nonce.clone();
    for nonce in [None, Some("made-up".to_string())] {
        c.nonce = nonce.clone();
        let (status, code, _) = error_of(c.me(&s, &at).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "use_dpop_nonce"),
            "{nonce:?}"
        );
    }
    // Two rotations later the nonce of the login is no longer accepted.
    s.advance(200);
    c.nonce = issued;
    let (status, code, _) = error_of(c.me(&s, &at).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "use_dpop_nonce")
    );
    // With the nonce that answer carried, the same skewed client gets in again.
    assert_eq!(c.me(&s, &at).await.status(), StatusCode::OK);
}

/// A proof accepted on its nonce is remembered for as long as that nonce is accepted, not only
/// for `iat` + the window: the nonce rule does not reopen replays.
#[tokio::test]
async fn a_proof_cannot_be_replayed_while_its_nonce_is_accepted() {
    for skew in [0, -600] {
        let s = Srv::with(|c: &mut Config| {
            c.dpop = DpopMode::Required;
            c.dpop_nonce_rotate = 100;
            c.dpop_proof_window = 60;
        })
        .await;
        let mut c = Client::new();
        c.skew = skew;
        let (at, _) = c.login(&s).await;
        let proof = c.proof(&s, "GET", "/api/me", Some(&at));
        let r = api_get(&s, "/api/me", &at, Some(proof.clone())).await;
        assert_eq!(r.status(), StatusCode::OK, "skew {skew}");
        // Past iat + window, the nonce still accepted: only the replay cache stops it.
        s.advance(61);
        s.running.state.dpop.sweep(s.now());
        let (status, code, _) =
            error_of(api_get(&s, "/api/me", &at, Some(proof.clone())).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_dpop_proof"),
            "skew {skew}: replayed after the window"
        );
        // Once the nonce is no longer accepted, the replay is refused on it, and forgotten.
        s.advance(300);
        s.running.state.dpop.sweep(s.now());
        assert_eq!(s.running.state.dpop.remembered(), 0, "skew {skew}");
        let (status, code, _) = error_of(api_get(&s, "/api/me", &at, Some(proof)).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "use_dpop_nonce"),
            "skew {skew}"
        );
    }
}
