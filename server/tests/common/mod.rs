//! Shared harness: the real server in-process on 127.0.0.1:0 with a manual clock, and a real
//! HTTP client (reqwest, no proxy, no cookie jar: cookies are handled by hand so every test sees
//! exactly what the server set).

#![allow(dead_code)]

pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use auth_server::clock::ManualClock;
use auth_server::config::Config;
use auth_server::Running;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// A fixed start instant (2030-03-17), far from any real time.
pub const T0: u64 = 1_900_000_000;

pub struct Srv {
    pub running: Running,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
}

pub struct Login {
    pub at: String,
    pub rt: String,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Srv {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(f: impl FnOnce(&mut Config)) -> Self {
        Self::with_clock(Arc::new(ManualClock::new(T0)), f).await
    }

    /// A server on `clock` (several instances of one deployment share one clock).
    pub async fn with_clock(clock: Arc<ManualClock>, f: impl FnOnce(&mut Config)) -> Self {
        let mut cfg = Config {
            addr: "127.0.0.1:0".parse().expect("addr"),
            ..Config::default()
        };
        f(&mut cfg);
        let running = auth_server::start(cfg, clock.clone())
            .await
            .expect("server starts");
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Self {
            running,
            clock,
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.running.url(path)
    }

    /// The origin a browser on this page would send.
    pub fn origin(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    pub fn now(&self) -> u64 {
        use auth_server::clock::Clock;
        self.clock.now()
    }

    pub async fn login_as(&self, user: &str) -> Login {
        let r = self
            .http
            .post(self.url("/auth/login"))
            .json(&serde_json::json!({ "username": user, "password": user }))
            .send()
            .await
            .expect("login request");
        assert_eq!(r.status(), StatusCode::OK, "login as {user}");
        let headers = r.headers().clone();
        let rt = rt_cookie(&headers).expect("login sets the refresh cookie");
        let body: Value = r.json().await.expect("login json");
        let at = body["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_string();
        Login {
            at,
            rt,
            body,
            headers,
        }
    }

    pub async fn login(&self) -> Login {
        self.login_as("demo").await
    }

    /// `POST /auth/login` as demo/demo with this `DPoP` proof.
    pub async fn dpop_login(&self, proof: String) -> Response {
        self.http
            .post(self.url("/auth/login"))
            .header("dpop", proof)
            .json(&serde_json::json!({"username": "demo", "password": "demo"}))
            .send()
            .await
            .expect("login")
    }

    /// A browser-like refresh: custom header, same-origin Origin, the cookie.
    pub fn refresh_req(&self, rt: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.url("/auth/refresh"))
            .header("x-requested-with", "tm")
            .header("origin", self.origin())
            .header("cookie", format!("rt={rt}"))
    }

    pub async fn refresh(&self, rt: &str) -> Response {
        self.refresh_req(rt).send().await.expect("refresh request")
    }

    /// Refresh that must succeed; returns (access token, new refresh token).
    pub async fn refresh_ok(&self, rt: &str) -> (String, String) {
        let r = self.refresh(rt).await;
        assert_eq!(r.status(), StatusCode::OK, "refresh should succeed");
        let new_rt = rt_cookie(r.headers()).expect("rotated cookie");
        let body: Value = r.json().await.expect("json");
        (
            body["accessToken"]
                .as_str()
                .expect("accessToken")
                .to_string(),
            new_rt,
        )
    }

    pub async fn logout(&self, rt: Option<&str>) -> Response {
        let mut req = self
            .http
            .post(self.url("/auth/logout"))
            .header("x-requested-with", "tm")
            .header("origin", self.origin());
        if let Some(rt) = rt {
            req = req.header("cookie", format!("rt={rt}"));
        }
        req.send().await.expect("logout request")
    }

    pub async fn me(&self, at: &str) -> Response {
        self.http
            .get(self.url("/api/me"))
            .bearer_auth(at)
            .send()
            .await
            .expect("me request")
    }

    /// `GET /.well-known/jwks.json` as JSON.
    pub async fn jwks(&self) -> Value {
        self.http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("json")
    }

    pub async fn me_status(&self, at: &str) -> StatusCode {
        self.me(at).await.status()
    }

    /// A counter's value from `/metrics` (`name` includes labels, e.g. `x{outcome="ok"}`).
    pub async fn metric(&self, series: &str) -> u64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        for line in text.lines() {
            if let Some(v) = line
                .strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
            {
                return v.trim().parse().expect("counter value");
            }
        }
        panic!("metric {series} not found in:\n{text}");
    }

    pub async fn refresh_metric(&self, outcome: &str) -> u64 {
        self.metric(&format!(
            "auth_refresh_requests_total{{outcome=\"{outcome}\"}}"
        ))
        .await
    }

    /// Sign `header`/`claims` JSON with the server's current signing key (for claim-level tests).
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let now = self.now();
        let key = {
            let ring = self.running.state.keys.read().expect("keys");
            ring.signing_key(now).expect("signing key")
        };
        sign_with(key.encoding_key(), header, claims)
    }

    /// Standard valid claims for `sid` at the current time.
    pub fn claims(&self, sid: &str) -> Value {
        let now = self.now();
        let cfg = &self.running.state.config;
        serde_json::json!({
            "iss": cfg.issuer, "aud": cfg.audience, "sub": "demo", "sid": sid,
            "jti": format!("j-{now}"), "iat": now, "exp": now + cfg.access_ttl,
        })
    }

    pub fn kid(&self) -> String {
        self.running.state.signing_kid().expect("kid")
    }
}

pub fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

pub fn sign_with(key: &jsonwebtoken::EncodingKey, header: &Value, claims: &Value) -> String {
    let msg = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, jsonwebtoken::Algorithm::ES256)
        .expect("sign");
    format!("{msg}.{sig}")
}

/// The `rt` value from Set-Cookie, if any.
pub fn rt_cookie(h: &HeaderMap) -> Option<String> {
    h.get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let first = v.split(';').next()?;
            let (k, val) = first.split_once('=')?;
            (k.trim() == "rt").then(|| val.trim().to_string())
        })
}

/// The whole `rt` Set-Cookie line.
pub fn rt_set_cookie_line(h: &HeaderMap) -> Option<String> {
    h.get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("rt="))
        .map(str::to_string)
}

/// Decode a JWT segment as JSON (tests only; no verification).
pub fn segment(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("b64")).expect("json")
}

impl Srv {
    /// Sign raw header/claims JSON text (duplicate members, odd numbers) with the current key.
    pub fn sign_str(&self, header: &str, claims: &str) -> String {
        let now = self.now();
        let key = {
            let ring = self.running.state.keys.read().expect("keys");
            ring.signing_key(now).expect("signing key")
        };
        let msg = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let sig = jsonwebtoken::crypto::sign(
            msg.as_bytes(),
            key.encoding_key(),
            jsonwebtoken::Algorithm::ES256,
        )
        .expect("sign");
        format!("{msg}.{sig}")
    }

    /// The sid of a logged-in session.
    pub async fn sid_of(&self, at: &str) -> String {
        let v: Value = self.me(at).await.json().await.expect("json");
        v["sid"].as_str().expect("sid").to_string()
    }

    /// POST /demo/revoke-access with this bearer token.
    pub async fn revoke_access(&self, at: &str) -> Response {
        self.http
            .post(self.url("/demo/revoke-access"))
            .bearer_auth(at)
            .send()
            .await
            .expect("revoke")
    }
}

/// A DPoP client key pair (RFC 9449), a real P-256 key as a browser would hold it.
pub struct DpopKey {
    encoding: jsonwebtoken::EncodingKey,
    /// The public JWK.
    pub jwk: Value,
}

impl DpopKey {
    pub fn new() -> Self {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use p256::pkcs8::EncodePrivateKey;
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let der = secret.to_pkcs8_der().expect("pkcs8");
        let point = secret.public_key().to_encoded_point(false);
        Self {
            encoding: jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()),
            jwk: serde_json::json!({
                "kty": "EC", "crv": "P-256",
                "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")),
            }),
        }
    }

    /// RFC 7638 thumbprint (`cnf.jkt`).
    pub fn jkt(&self) -> String {
        let jwk = serde_json::from_value(self.jwk.clone()).expect("jwk");
        auth_server::dpop::thumbprint(&jwk).expect("jkt")
    }

    /// A proof with these claims (`typ: dpop+jwt`, ES256, this key's `jwk`).
    pub fn sign(&self, claims: &Value) -> String {
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        sign_with(&self.encoding, &header, claims)
    }

    /// A fresh proof for `htm url` now, with `nonce` and, for a resource request, the `ath` of `at`.
    pub fn proof(
        &self,
        s: &Srv,
        htm: &str,
        url: &str,
        nonce: Option<&str>,
        at: Option<&str>,
    ) -> String {
        self.proof_at(s.now(), htm, url, nonce, at)
    }

    /// As [`DpopKey::proof`] with `iat` given (a client whose clock is off).
    pub fn proof_at(
        &self,
        iat: u64,
        htm: &str,
        url: &str,
        nonce: Option<&str>,
        at: Option<&str>,
    ) -> String {
        let mut c = serde_json::json!({
            "jti": auth_server::tokens::random_id(), "htm": htm, "htu": url, "iat": iat,
        });
        if let Some(n) = nonce {
            c["nonce"] = n.into();
        }
        if let Some(at) = at {
            c["ath"] = auth_server::dpop::ath(at).into();
        }
        self.sign(&c)
    }

    /// `POST /auth/login` as demo/demo with a fresh proof of this key carrying `nonce`.
    pub async fn login(&self, s: &Srv, nonce: Option<&str>) -> Response {
        s.dpop_login(self.proof(s, "POST", &s.url("/auth/login"), nonce, None))
            .await
    }
}
