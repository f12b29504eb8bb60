//! The demo API in front of the real auth server, both on loopback: key rotation at the auth server
//! with no failed request at the API, the RFC 6750 answers, the revocation check, CORS, and the
//! `demo-api` binary with its flags.

#[path = "../../verifier/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::srv::segment;
use common::srv::{rt_cookie, DpopKey};
use common::{config, server, verifier, with_revocation, Srv, Tap};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn api(v: Arc<token_verifier::Verifier>, origins: &[String]) -> demo_api::Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    demo_api::start_on(listener, v, origins).expect("api starts")
}

async fn me(s: &Srv, a: &demo_api::Running, token: &str) -> reqwest::Response {
    s.http
        .get(a.url("/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /api/me")
}

#[tokio::test]
async fn f14_key_rotation_at_the_auth_server_fails_no_request_at_the_api() {
    // 60 s tokens, a JWKS max-age (and publication lead) of 30 s, a new key every 100 s.
    let s = server(|c| {
        c.access_ttl = 60;
        c.leeway = 5;
        c.jwks_max_age = 30;
        c.key_rotate_every = Some(100);
    })
    .await;
    let a = api(verifier(config(&s, s.url("/.well-known/jwks.json"))), &[]).await;
    let login = s.login().await;
    let (mut rt, mut previous) = (login.rt, login.at);
    let first_kid = segment(&previous, 0)["kid"]
        .as_str()
        .expect("kid")
        .to_string();
    let (mut kids, mut requests, mut failed) = (BTreeSet::new(), 0, Vec::new());
    // 400 s in steps of 5 s: each step the maintenance runs (rotations start on schedule), the client
    // refreshes, and the API sees the new token 10 times at once and the previous one once.
    for step in 0..80 {
        s.advance(5);
        s.running.state.maintain().await;
        let (at, next_rt) = s.refresh_ok(&rt).await;
        rt = next_rt;
        kids.insert(segment(&at, 0)["kid"].as_str().expect("kid").to_string());
        let mut set = tokio::task::JoinSet::new();
        for t in std::iter::repeat_n(at.clone(), 10).chain([previous.clone()]) {
            let (http, url) = (s.http.clone(), a.url("/api/me"));
            set.spawn(async move {
                http.get(url)
                    .bearer_auth(t)
                    .send()
                    .await
                    .expect("send")
                    .status()
            });
        }
        while let Some(st) = set.join_next().await {
            requests += 1;
            let st = st.expect("task");
            if st != StatusCode::OK {
                failed.push((step, st));
            }
        }
        previous = at;
    }
    assert_eq!(
        failed,
        vec![],
        "requests refused at the API during rotation"
    );
    assert_eq!(requests, 880);
    assert!(
        kids.len() >= 4,
        "the tokens were signed by at least 4 keys in turn: {kids:?}"
    );
    let jwks: Value = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(
        !published.contains(&first_kid.as_str()),
        "the first key was retired: {published:?}"
    );
}

/// A refusal's status, challenge, `Retry-After` (exactly on 503) and JSON body.
async fn check(r: reqwest::Response, status: StatusCode, challenge: Option<&str>, error: &str) {
    assert_eq!(r.status(), status);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        challenge
    );
    let retry = r.headers().get("retry-after").is_some();
    assert_eq!(retry, status == StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"error": error})
    );
}

#[tokio::test]
async fn refusals_are_rfc6750_answers() {
    let s = server(|_| {}).await;
    let tap = Tap::start(s.url("/.well-known/jwks.json")).await;
    let a = api(verifier(config(&s, tap.url())), &[]).await;
    let login = s.login().await;

    let r = me(&s, &a, &login.at).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let sid = s.sid_of(&login.at).await;
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"sub": "demo", "sid": sid}),
        "as the auth server's /api/me"
    );

    let r = s
        .http
        .post(a.url("/api/echo"))
        .bearer_auth(&login.at)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("echo");
    assert_eq!(r.status(), StatusCode::OK);
    let e: Value = r.json().await.expect("json");
    assert_eq!(
        (e["length"].as_u64(), e["contentType"].as_str()),
        (Some(5), Some("text/plain"))
    );
    assert_eq!(
        e["sha256"],
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );

    let r = s.http.get(a.url("/api/me")).send().await.expect("send");
    check(
        r,
        StatusCode::UNAUTHORIZED,
        Some("Bearer realm=\"demo-api\""),
        "unauthorized",
    )
    .await;
    let r = me(&s, &a, "not.a.token").await;
    let challenge = "Bearer realm=\"demo-api\", error=\"invalid_token\", error_description=\"the token is not a well-formed JWS\"";
    check(
        r,
        StatusCode::UNAUTHORIZED,
        Some(challenge),
        "invalid_token",
    )
    .await;
    let r = s
        .http
        .get(a.url("/api/me"))
        .header("authorization", format!("Bearer {}", login.at))
        .header("authorization", format!("Bearer {}", login.at))
        .send()
        .await
        .expect("send");
    let challenge = "Bearer realm=\"demo-api\", error=\"invalid_request\", error_description=\"more than one Authorization header\"";
    check(
        r,
        StatusCode::BAD_REQUEST,
        Some(challenge),
        "invalid_request",
    )
    .await;
    // The echo body is not read for a refused token.
    let r = s
        .http
        .post(a.url("/api/echo"))
        .bearer_auth("x.y.z")
        .body(vec![0u8; 1 << 20])
        .send()
        .await
        .expect("echo");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // JWKS down past its max age: 503 + Retry-After, no challenge (the token is not at fault).
    tap.set_down(true);
    s.advance(s.running.state.config.jwks_max_age);
    check(
        me(&s, &a, &login.at).await,
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "temporarily_unavailable",
    )
    .await;
}

#[tokio::test]
async fn a_logged_out_session_is_refused_at_the_api_within_a_second() {
    let s = server(|_| {}).await;
    let a = api(
        verifier(with_revocation(
            config(&s, s.url("/.well-known/jwks.json")),
            &s,
            1,
        )),
        &[],
    )
    .await;
    let login = s.login().await;
    assert_eq!(me(&s, &a, &login.at).await.status(), StatusCode::OK);
    assert_eq!(s.logout(Some(&login.rt)).await.status(), StatusCode::OK);
    s.advance(1);
    let r = me(&s, &a, &login.at).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        challenge.contains("error=\"invalid_token\"") && challenge.contains("revoked"),
        "{challenge}"
    );
}

#[tokio::test]
async fn cors_only_for_listed_origins() {
    let s = server(|_| {}).await;
    let origin = "http://app.test:8080".to_string();
    let a = api(
        verifier(config(&s, s.url("/.well-known/jwks.json"))),
        std::slice::from_ref(&origin),
    )
    .await;
    let preflight = |o: &str| {
        s.http
            .request(reqwest::Method::OPTIONS, a.url("/api/me"))
            .header("origin", o)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization, dpop")
            .send()
    };
    let r = preflight(&origin).await.expect("preflight");
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], origin.as_str());
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("dpop"),
        "{allowed}"
    );
    for other in [
        "http://evil.example",
        "http://app.test:8080.evil.example",
        "null",
    ] {
        let r = preflight(other).await.expect("preflight");
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{other}"
        );
    }
    let login = s.login().await;
    let r = s
        .http
        .get(a.url("/api/me"))
        .bearer_auth(&login.at)
        .header("origin", &origin)
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["access-control-allow-origin"], origin.as_str());
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(
        exposed.contains("www-authenticate")
            && exposed.contains("retry-after")
            && exposed.contains("dpop-nonce"),
        "{exposed}"
    );
    assert!(r.headers().get_all("vary").iter().any(|v| v
        .to_str()
        .is_ok_and(|v| v.to_ascii_lowercase().contains("origin"))));
}

/// The `demo-api` binary, configured by its flags, next to an auth server on the wall clock.
#[tokio::test]
async fn the_demo_api_process_verifies_through_the_jwks_url_it_is_given() {
    use tokio::io::AsyncBufReadExt;
    let cfg = auth_server::config::Config {
        addr: "127.0.0.1:0".parse().expect("addr"),
        issuer: "urn:test:issuer".into(),
        audience: "urn:test:api".into(),
        ..Default::default()
    };
    let auth = auth_server::start(cfg, Arc::new(auth_server::clock::SystemClock))
        .await
        .expect("auth server");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo-api"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--jwks-url",
            &auth.url("/.well-known/jwks.json"),
        ])
        .args([
            "--iss",
            "urn:test:issuer",
            "--aud",
            "urn:test:api",
            "--log",
            "warn",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("demo-api starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("a line within 30 s")
        .expect("read")
        .expect("a line");
    let base = line
        .strip_prefix("listening on ")
        .expect("the listening line")
        .to_string();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let login: Value = http
        .post(auth.url("/auth/login"))
        .json(&json!({"username": "bob", "password": "bob"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let at = login["accessToken"].as_str().expect("token");
    let r = http
        .get(format!("{base}/api/me"))
        .bearer_auth(at)
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.expect("json")["sub"], "bob");
    let r = http
        .get(format!("{base}/api/me"))
        .bearer_auth(format!("{at}x"))
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    child.kill().await.expect("stop demo-api");
    auth.shutdown();
}

/// A DPoP client of the auth server: its key and the last nonce the server sent.
struct DpopClient {
    key: DpopKey,
    nonce: Option<String>,
}

impl DpopClient {
    /// Sign in at the auth server with a proof of a fresh key, answering its first
    /// `use_dpop_nonce` once. Returns the DPoP-bound access token and the refresh cookie.
    async fn login(s: &Srv) -> (Self, String, String) {
        let mut c = Self {
            key: DpopKey::new(),
            nonce: None,
        };
        for _ in 0..2 {
            let r = c.key.login(s, c.nonce.as_deref()).await;
            if let Some(n) = r.headers().get("dpop-nonce") {
                c.nonce = Some(n.to_str().expect("ascii").to_string());
            }
            if r.status() == StatusCode::OK {
                let rt = rt_cookie(r.headers()).expect("a refresh cookie");
                let body: Value = r.json().await.expect("json");
                assert_eq!(body["tokenType"], "DPoP");
                let at = body["accessToken"].as_str().expect("token").to_string();
                return (c, at, rt);
            }
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        }
        panic!("no DPoP login after a nonce retry");
    }

    /// A proof for `GET url` with the `ath` of `at` (no nonce: the API issues none).
    fn proof(&self, s: &Srv, url: &str, at: &str) -> String {
        self.key.proof(s, "GET", url, None, Some(at))
    }

    /// `GET /api/me` at `a` with `Authorization: DPoP <at>` and a fresh proof.
    async fn me(&self, s: &Srv, a: &demo_api::Running, at: &str) -> reqwest::Response {
        let proof = self.proof(s, &a.url("/api/me"), at);
        me_with(s, a, format!("DPoP {at}"), Some(&proof)).await
    }
}

async fn me_with(
    s: &Srv,
    a: &demo_api::Running,
    authorization: String,
    proof: Option<&str>,
) -> reqwest::Response {
    let mut b = s
        .http
        .get(a.url("/api/me"))
        .header("authorization", authorization);
    if let Some(p) = proof {
        b = b.header("dpop", p);
    }
    b.send().await.expect("GET /api/me")
}

/// The auth server with `--dpop required` and the demo API, both on loopback: a real P-256 key
/// signs in and calls the API with proofs; a copied token is refused without that key.
#[tokio::test]
async fn dpop_bound_tokens_are_accepted_with_a_proof_of_their_key_only() {
    let s = server(|c| c.dpop = auth_server::dpop::DpopMode::Required).await;
    let v = verifier(with_revocation(
        config(&s, s.url("/.well-known/jwks.json")),
        &s,
        0,
    ));
    let a = api(v.clone(), &[]).await;
    let (client, at, rt) = DpopClient::login(&s).await;
    let url = a.url("/api/me");

    let proof = client.proof(&s, &url, &at);
    let r = me_with(&s, &a, format!("DPoP {at}"), Some(&proof)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let claims = segment(&at, 1);
    assert_eq!(claims["cnf"]["jkt"], client.key.jkt().as_str());
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"sub": "demo", "sid": claims["sid"]})
    );

    // Refusals, in this order: the same proof again (a replay); the token copied to a client with
    // another key, which signs a valid proof of its own; the token as a bearer token, with or
    // without the key's proof beside it; no proof at all.
    let thief = DpopKey::new();
    let challenge = |error: &str, description: &str| {
        format!("DPoP realm=\"demo-api\", error=\"{error}\", error_description=\"{description}\", algs=\"ES256\"")
    };
    for (authorization, proof, error, description) in [
        (
            "DPoP",
            Some(proof),
            "invalid_dpop_proof",
            "the DPoP proof was used before",
        ),
        (
            "DPoP",
            Some(thief.proof(&s, "GET", &url, None, Some(&at))),
            "invalid_token",
            "the DPoP proof's key is not the one the token is bound to",
        ),
        (
            "Bearer",
            None,
            "invalid_token",
            "a DPoP-bound token presented as a bearer token",
        ),
        (
            "Bearer",
            Some(client.proof(&s, &url, &at)),
            "invalid_token",
            "a DPoP-bound token presented as a bearer token",
        ),
        ("DPoP", None, "invalid_dpop_proof", "no DPoP proof"),
    ] {
        let r = me_with(&s, &a, format!("{authorization} {at}"), proof.as_deref()).await;
        check(
            r,
            StatusCode::UNAUTHORIZED,
            Some(&challenge(error, description)),
            error,
        )
        .await;
    }
    // A proof for the auth server's URI instead of the API's.
    let elsewhere = client.proof(&s, &s.url("/api/me"), &at);
    let r = me_with(&s, &a, format!("DPoP {at}"), Some(&elsewhere)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"error": "invalid_dpop_proof"})
    );

    // The key holder still gets in, with a fresh proof; a POST with a body too.
    let r = client.me(&s, &a, &at).await;
    assert_eq!(r.status(), StatusCode::OK);
    let echo = a.url("/api/echo");
    let r = s
        .http
        .post(&echo)
        .header("authorization", format!("DPoP {at}"))
        .header("dpop", client.key.proof(&s, "POST", &echo, None, Some(&at)))
        .body("hello")
        .send()
        .await
        .expect("echo");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.expect("json")["length"], 5);

    // After logout the revocation check refuses the bound token, proof or not.
    let logout = s.logout(Some(&rt)).await;
    assert!(logout.status().is_success(), "{}", logout.status());
    let r = client.me(&s, &a, &at).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        v.remembered_proofs(),
        4,
        "the 4 proofs that passed the proof checks are remembered, none of the refused ones"
    );
}

/// `demo-api --dpop-htu-base` takes what the auth server's flag takes, and refuses the rest at start.
#[tokio::test]
async fn the_demo_api_process_refuses_a_bad_dpop_htu_base() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo-api"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--dpop-htu-base",
            "https://api.example.com/?x=1",
        ])
        .output()
        .await
        .expect("demo-api runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--dpop-htu-base"), "{stderr}");
    let help = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo-api"))
        .arg("--help")
        .output()
        .await
        .expect("demo-api --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--dpop-proof-window") && help.contains("--dpop-htu-base"),
        "{help}"
    );
}
