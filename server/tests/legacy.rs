//! The migration off legacy never-expiring tokens (issue 10, CATALOGUE 4(d), S35–S37): real legacy keys from
//! configuration, the five phases and every transition between them, the one-time exchange (also under
//! concurrency), the kill switch, the cohort and grace ramp, the admin endpoints, the report and metrics, the
//! phase-4 alerts, and the algorithm-confusion cases.

mod common;

use std::path::PathBuf;

use auth_server::config::Config;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The old system's shared secret (as bytes: the file adds a trailing newline, which is not part of it).
const SECRET: &str = "legacy-shared-secret-2019";
const ADMIN: &str = "admin-secret-for-tests";

fn temp_file(name: &str, content: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wtm-legacy-{}", auth_server::tokens::random_id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write");
    p
}

/// A server whose legacy key is the HMAC secret file (with a trailing newline), subject claim `userId`,
/// and an admin secret.
async fn srv(f: impl FnOnce(&mut Config)) -> Srv {
    Srv::with(|c| {
        c.legacy.hmac_secret_file = Some(temp_file("secret", format!("{SECRET}\n").as_bytes()));
        c.legacy.subject_claim = "userId".into();
        c.legacy.admin_secret_file = Some(temp_file("admin", format!("{ADMIN}\n").as_bytes()));
        f(c);
    })
    .await
}

/// A typical never-expiring token: HS256, no `kid`, no `exp`, the user id in `userId`.
fn legacy_token(user: &str) -> String {
    hs256(
        &json!({ "userId": user, "iat": 1_500_000_000 }),
        SECRET.as_bytes(),
    )
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("encode")
}

impl Srv {
    async fn upgrade(&self, token: &str) -> reqwest::Response {
        self.http
            .post(self.url("/auth/legacy/upgrade"))
            .header("x-requested-with", "tm")
            .header("origin", self.origin())
            .bearer_auth(token)
            .send()
            .await
            .expect("send")
    }

    async fn me_with(&self, token: &str, client_id: &str) -> reqwest::Response {
        self.http
            .get(self.url("/api/me"))
            .bearer_auth(token)
            .header("user-agent", "legacy-app/1.0")
            .header("x-client-id", client_id)
            .send()
            .await
            .expect("me")
    }

    async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        secret: &str,
    ) -> reqwest::Response {
        let mut r = self
            .http
            .request(method.parse().expect("method"), self.url(path))
            .bearer_auth(secret);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.expect("admin")
    }

    async fn set_phase(&self, phase: u8) -> Value {
        let r = self
            .admin(
                "POST",
                "/admin/legacy/phase",
                Some(json!({ "phase": phase })),
                ADMIN,
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("json")
    }

    async fn report(&self) -> Value {
        let r = self.admin("GET", "/admin/legacy", None, ADMIN).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("json")
    }
}

async fn error_of(r: reqwest::Response) -> String {
    r.json::<Value>().await.expect("json")["error"]
        .as_str()
        .expect("error")
        .to_string()
}

fn header_of(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A user name whose cohort bucket is below (`inside`) or at/above `percent`.
fn user_in_bucket(percent: u16, inside: bool) -> String {
    (0..1000)
        .map(|i| format!("user{i}"))
        .find(|u| (auth_server::legacy::bucket(u) < percent) == inside)
        .expect("a user in range")
}

#[tokio::test]
async fn a_real_legacy_token_from_the_configured_secret_is_accepted_in_phase_0_and_counted() {
    let s = srv(|_| {}).await;
    let t = legacy_token("4711");
    let r = s.me_with(&t, "web-2019").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        header_of(&r, "deprecation").is_none(),
        "phase 0 only detects"
    );
    let me: Value = r.json().await.expect("json");
    assert_eq!(me["sub"], "4711");
    assert_eq!(me["legacy"], true);
    // An integer user id is read too.
    let n = hs256(&json!({ "userId": 42 }), SECRET.as_bytes());
    assert_eq!(s.me_with(&n, "web-2019").await.status(), StatusCode::OK);
    // The trailing newline of the file is not part of the secret.
    let with_nl = hs256(&json!({ "userId": "x" }), format!("{SECRET}\n").as_bytes());
    assert_eq!(s.me_status(&with_nl).await, StatusCode::UNAUTHORIZED);
    // The subject claim is `userId`, not `sub`.
    let sub_only = hs256(&json!({ "sub": "x" }), SECRET.as_bytes());
    assert_eq!(s.me_status(&sub_only).await, StatusCode::UNAUTHORIZED);
    assert_eq!(s.metric("auth_legacy_uses_total{phase=\"0\"}").await, 2);
    assert_eq!(s.metric("auth_legacy_users_still").await, 2);
    assert_eq!(s.metric("auth_legacy_clients_still").await, 1);
    let rep = s.report().await;
    assert_eq!(rep["phase"], 0);
    assert_eq!(rep["report"]["apiLegacyRequests"], 2);
    assert_eq!(rep["report"]["apiRequests"], 4);
    assert_eq!(rep["report"]["legacyShare"], 0.5);
    // New logins get only new tokens, and they are unaffected.
    let l = s.login().await;
    assert_eq!(segment(&l.at, 0)["alg"], "ES256");
    assert_eq!(s.me_status(&l.at).await, StatusCode::OK);
}

#[tokio::test]
async fn s35_every_phase_transition_forward_and_back_changes_what_a_legacy_token_gets() {
    let s = srv(|_| {}).await;
    // Each phase: (API status, deprecation headers?, upgrade allowed?)
    let expect = |p: u8| match p {
        0 => (StatusCode::OK, false, true),
        1 => (StatusCode::OK, true, true),
        2 => (StatusCode::UNAUTHORIZED, true, true),
        _ => (StatusCode::UNAUTHORIZED, false, false),
    };
    // An Eulerian circuit of the complete directed graph on the five phases: every one of the 20 ordered
    // transitions (forward, backward, jumps) exactly once.
    let order: Vec<u8> = vec![
        0, 4, 3, 4, 2, 4, 1, 4, 0, 3, 2, 3, 1, 3, 0, 2, 1, 2, 0, 1, 0,
    ];
    let pairs: std::collections::HashSet<(u8, u8)> =
        order.windows(2).map(|w| (w[0], w[1])).collect();
    assert_eq!(pairs.len(), 20);
    for (i, p) in order.iter().copied().enumerate() {
        if i > 0 {
            let st = s.set_phase(p).await;
            assert_eq!(st["phase"], p);
            assert_eq!(st["rolloutPercent"], 100, "grace 0: at once");
        }
        let (status, deprecated, upgradable) = expect(p);
        let t = legacy_token(&format!("walker-{i}"));
        let r = s.me_with(&t, "c").await;
        assert_eq!(r.status(), status, "API in phase {p} (step {i})");
        assert_eq!(
            header_of(&r, "deprecation").is_some(),
            deprecated,
            "Deprecation in phase {p}"
        );
        let www = header_of(&r, "www-authenticate");
        match p {
            2 => assert!(
                www.as_deref()
                    .is_some_and(|w| w.contains("error=\"invalid_token\"")
                        && w.contains("/auth/legacy/upgrade")),
                "{www:?}"
            ),
            3 | 4 => assert!(
                www.as_deref().is_some_and(
                    |w| w.contains("error=\"invalid_token\"") && !w.contains("upgrade")
                ),
                "{www:?}"
            ),
            _ => assert!(www.is_none()),
        }
        let u = s.upgrade(&t).await;
        if upgradable {
            assert_eq!(u.status(), StatusCode::OK, "upgrade in phase {p}");
            let at = u.json::<Value>().await.expect("json")["accessToken"]
                .as_str()
                .expect("at")
                .to_string();
            assert_eq!(
                s.me_status(&at).await,
                StatusCode::OK,
                "the new session works in phase {p}"
            );
        } else {
            assert_eq!(u.status(), StatusCode::UNAUTHORIZED);
            assert!(rt_cookie(u.headers()).is_none());
            assert_eq!(error_of(u).await, "legacy_token_retired");
        }
    }
    let rep = s.report().await;
    assert_eq!(rep["report"]["phaseSwitches"], order.len() as u64 - 1);
    // Accepted at the API only in phases 0 and 1; refused at the API in 2, at the API and the upgrade in 3 and 4.
    let visits = |p: u8| order.iter().filter(|&&x| x == p).count() as u64;
    for p in 0..=4u8 {
        let uses = s
            .metric(&format!("auth_legacy_uses_total{{phase=\"{p}\"}}"))
            .await;
        let refusals = s
            .metric(&format!("auth_legacy_refusals_total{{phase=\"{p}\"}}"))
            .await;
        let (want_uses, want_refusals) = match p {
            0 | 1 => (visits(p), 0),
            2 => (0, visits(p)),
            _ => (0, 2 * visits(p)),
        };
        assert_eq!((uses, refusals), (want_uses, want_refusals), "phase {p}");
    }
    assert_eq!(s.metric("auth_legacy_phase").await, 0);
}

#[tokio::test]
async fn phase_1_headers_follow_rfc_9745_and_rfc_8594() {
    let s = srv(|c| c.legacy_sunset = 86_400).await;
    s.set_phase(1).await;
    let r = s.me_with(&legacy_token("u"), "c").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_of(&r, "deprecation"), Some(format!("@{T0}")));
    let sunset = header_of(&r, "sunset").expect("Sunset");
    let at = httpdate::parse_http_date(&sunset).expect("HTTP-date");
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .expect("epoch")
        .as_secs();
    assert_eq!(secs, T0 + 86_400);
    assert_eq!(
        header_of(&r, "link").as_deref(),
        Some("</auth/legacy/upgrade>; rel=\"successor-version\"")
    );
    // A new token's responses carry none of them.
    let l = s.login().await;
    let r = s.me(&l.at).await;
    assert!(header_of(&r, "deprecation").is_none() && header_of(&r, "sunset").is_none());
}

#[tokio::test]
async fn s37_the_exchange_happens_once_and_a_later_replay_is_a_security_event() {
    let s = srv(|_| {}).await;
    s.set_phase(2).await;
    for t in [
        legacy_token("alice"),
        hs256(&json!({ "userId": "bob", "jti": "j-1" }), SECRET.as_bytes()),
    ] {
        let r = s.upgrade(&t).await;
        assert_eq!(r.status(), StatusCode::OK);
        let rt = rt_cookie(r.headers()).expect("a session cookie");
        s.refresh_ok(&rt).await;
        s.advance(11); // past --reuse-grace (10 s)
        let r = s.upgrade(&t).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(rt_cookie(r.headers()).is_none());
        assert_eq!(error_of(r).await, "invalid_grant");
    }
    assert_eq!(s.metric("auth_legacy_security_events_total").await, 2);
    assert_eq!(
        s.metric("auth_legacy_exchanges_total{outcome=\"ok\"}")
            .await,
        2
    );
    assert_eq!(
        s.metric("auth_legacy_upgrades_total{outcome=\"replay\"}")
            .await,
        2
    );
    assert_eq!(
        s.metric("auth_legacy_users_still").await,
        0,
        "upgraded users are no longer on legacy"
    );
}

#[tokio::test]
async fn s37_two_exchanges_of_one_token_at_once_make_one_session_and_no_security_event() {
    let s = srv(|_| {}).await;
    let t = legacy_token("carol");
    let (a, b) = tokio::join!(s.upgrade(&t), s.upgrade(&t));
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    let cookies = [rt_cookie(a.headers()), rt_cookie(b.headers())];
    assert_eq!(
        cookies.iter().filter(|c| c.is_some()).count(),
        1,
        "one refresh family"
    );
    let mut sids = Vec::new();
    for r in [a, b] {
        let at = r.json::<Value>().await.expect("json")["accessToken"]
            .as_str()
            .expect("at")
            .to_string();
        sids.push(s.sid_of(&at).await);
    }
    assert_eq!(sids[0], sids[1], "both answers belong to one session");
    assert_eq!(
        s.running
            .state
            .store
            .stats(s.now())
            .await
            .expect("store")
            .live_sessions,
        1
    );
    assert_eq!(s.metric("auth_legacy_security_events_total").await, 0);
    assert_eq!(
        s.metric("auth_legacy_exchanges_total{outcome=\"repeat\"}")
            .await,
        1
    );
}

#[tokio::test]
async fn s35_the_kill_switch_reverts_to_the_previous_phase_at_once() {
    let s = srv(|_| {}).await;
    s.set_phase(1).await;
    s.set_phase(2).await;
    let t = legacy_token("dave");
    assert_eq!(s.me_with(&t, "c").await.status(), StatusCode::UNAUTHORIZED);
    let r = s
        .admin("POST", "/admin/legacy/kill-switch", None, ADMIN)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["phase"].clone(), v["reverted"].clone()),
        (json!(1), json!(true))
    );
    assert_eq!(
        s.me_with(&t, "c").await.status(),
        StatusCode::OK,
        "phase 1 again, for everyone"
    );
    // Once more: back to 0; then nothing left to revert.
    s.admin("POST", "/admin/legacy/kill-switch", None, ADMIN)
        .await;
    let v: Value = s
        .admin("POST", "/admin/legacy/kill-switch", None, ADMIN)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (v["phase"].clone(), v["reverted"].clone()),
        (json!(0), json!(false))
    );
}

#[tokio::test]
async fn s35_the_cohort_and_the_grace_period_roll_a_phase_out_gradually() {
    let s = srv(|_| {}).await;
    let inside = legacy_token(&user_in_bucket(30, true));
    let outside = legacy_token(&user_in_bucket(30, false));
    // Phase 2 for 30 % of users, ramping over 100 s.
    let r = s
        .admin(
            "POST",
            "/admin/legacy/phase",
            Some(json!({ "phase": 2, "cohortPercent": 30, "graceSeconds": 100 })),
            ADMIN,
        )
        .await;
    assert_eq!(r.json::<Value>().await.expect("json")["rolloutPercent"], 0);
    assert_eq!(
        s.me_with(&inside, "c").await.status(),
        StatusCode::OK,
        "ramp not started"
    );
    s.advance(100);
    assert_eq!(s.report().await["rolloutPercent"], 30);
    assert_eq!(
        s.me_with(&inside, "c").await.status(),
        StatusCode::UNAUTHORIZED,
        "in the cohort: phase 2"
    );
    assert_eq!(
        s.me_with(&outside, "c").await.status(),
        StatusCode::OK,
        "outside: still phase 0"
    );
    // The same cohort at the upgrade endpoint, in phase 3.
    s.admin(
        "POST",
        "/admin/legacy/phase",
        Some(json!({ "phase": 3, "cohortPercent": 30 })),
        ADMIN,
    )
    .await;
    assert_eq!(
        error_of(s.upgrade(&inside).await).await,
        "legacy_token_retired"
    );
    assert_eq!(
        s.upgrade(&outside).await.status(),
        StatusCode::OK,
        "outside: phase 2, may upgrade"
    );
}

#[tokio::test]
async fn s35_after_the_sunset_legacy_tokens_are_refused_everywhere_whatever_the_phase() {
    let s = srv(|c| c.legacy_sunset = 3600).await;
    let t = legacy_token("erin");
    assert_eq!(s.me_with(&t, "c").await.status(), StatusCode::OK);
    s.advance(3600);
    assert_eq!(s.me_with(&t, "c").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(s.upgrade(&t).await).await, "legacy_token_retired");
}

#[tokio::test]
async fn admin_endpoints_need_the_secret_and_exist_only_with_the_flag() {
    let s = srv(|_| {}).await;
    for secret in [
        "wrong",
        "admin-secret-for-test",
        &format!("{ADMIN}\n")[..ADMIN.len()],
    ] {
        let ok = secret == ADMIN;
        let r = s.admin("GET", "/admin/legacy", None, secret).await;
        assert_eq!(r.status() == StatusCode::OK, ok, "{secret}");
    }
    let r = s
        .http
        .post(s.url("/admin/legacy/phase"))
        .json(&json!({ "phase": 2 }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header_of(&r, "www-authenticate").as_deref(),
        Some("Bearer realm=\"admin\"")
    );
    assert_eq!(
        s.report().await["phase"],
        0,
        "the refused switch changed nothing"
    );
    for bad in [
        json!({ "phase": 5 }),
        json!({}),
        json!({ "phase": 1, "cohortPercent": 101 }),
        json!({ "phase": 1, "x": 1 }),
    ] {
        let r = s
            .admin("POST", "/admin/legacy/phase", Some(bad.clone()), ADMIN)
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let plain = Srv::start().await;
    assert_eq!(
        plain
            .admin("GET", "/admin/legacy", None, ADMIN)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn phase_4_raises_alerts_for_legacy_tokens_reuse_bursts_and_failed_refreshes() {
    let s = srv(|c| c.reuse_grace = 0).await;
    let t = legacy_token("frank");
    s.me_with(&t, "c").await;
    s.set_phase(3).await;
    s.me_with(&t, "c").await;
    assert_eq!(
        s.metric("auth_alerts_total{kind=\"legacy_token\"}").await,
        0,
        "no alerts before phase 4"
    );
    s.set_phase(4).await;
    assert_eq!(s.me_with(&t, "c").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.upgrade(&t).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.metric("auth_alerts_total{kind=\"legacy_token\"}").await,
        2
    );
    // Refresh-token reuse.
    let l = s.login().await;
    let (_, rt2) = s.refresh_ok(&l.rt).await;
    assert_eq!(s.refresh(&l.rt).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.metric("auth_alerts_total{kind=\"rt_reuse\"}").await, 1);
    let _ = rt2;
    // A burst of rotations in one session.
    let l = s.login().await;
    let mut rt = l.rt;
    for _ in 0..auth_server::legacy::REFRESH_BURST_THRESHOLD {
        rt = s.refresh_ok(&rt).await.1;
    }
    assert_eq!(
        s.metric("auth_alerts_total{kind=\"refresh_burst\"}").await,
        1
    );
    // Failed refreshes from one client.
    for _ in 0..auth_server::legacy::REFRESH_FAILURE_THRESHOLD {
        s.refresh(&"A".repeat(43)).await;
    }
    assert_eq!(
        s.metric("auth_alerts_total{kind=\"refresh_failures\"}")
            .await,
        1
    );
}

#[tokio::test]
async fn s35_algorithm_confusion_the_hmac_secret_verifies_nothing_but_legacy_tokens() {
    let s = srv(|_| {}).await;
    let l = s.login().await;
    let sid = s.sid_of(&l.at).await;
    let kid = s.kid();
    let claims = s.claims(&sid);
    let secret = SECRET.as_bytes();
    let mut cases: Vec<(String, &str)> = Vec::new();
    // A new-style access token (current kid, at+jwt, exp) signed HS256 with the legacy secret.
    let mut h = Header::new(Algorithm::HS256);
    h.typ = Some("at+jwt".into());
    h.kid = Some(kid.clone());
    cases.push((
        jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(secret)).expect("enc"),
        "HS256 access token",
    ));
    // A legacy-shaped token that names the current signing kid.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(kid.clone());
    cases.push((
        jsonwebtoken::encode(
            &h,
            &json!({ "userId": "m" }),
            &EncodingKey::from_secret(secret),
        )
        .expect("enc"),
        "HS256 with the current kid",
    ));
    // A legacy token with exp (any exp) is not a legacy token.
    cases.push((
        hs256(&json!({ "userId": "m", "exp": s.now() + 600 }), secret),
        "HS256 with exp",
    ));
    cases.push((
        hs256(&json!({ "userId": "m", "exp": null }), secret),
        "HS256 with exp null",
    ));
    // HMAC keyed with the JWKS public key material.
    let jwks: Value = s.jwks().await;
    let x = jwks["keys"][0]["x"].as_str().expect("x").to_string();
    cases.push((
        hs256(&json!({ "userId": "m" }), x.as_bytes()),
        "HS256 keyed with the public x",
    ));
    cases.push((
        hs256(
            &json!({ "userId": "m" }),
            jwks["keys"][0].to_string().as_bytes(),
        ),
        "HS256 keyed with the JWK",
    ));
    // alg none, and an ES256 token without exp under an unrelated key.
    cases.push((
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none"}"#),
            b64(br#"{"userId":"m"}"#)
        ),
        "alg none",
    ));
    let other = auth_server::keys::KeyPair::generate("x".into(), 0, 0).expect("key");
    cases.push((
        sign_with(
            other.encoding_key(),
            &json!({ "alg": "ES256" }),
            &json!({ "userId": "m" }),
        ),
        "ES256, foreign key",
    ));
    // A future iat.
    cases.push((
        hs256(&json!({ "userId": "m", "iat": s.now() + 3600 }), secret),
        "iat in the future",
    ));
    for (t, what) in &cases {
        assert_eq!(
            s.me_status(t).await,
            StatusCode::UNAUTHORIZED,
            "API: {what}"
        );
        let r = s.upgrade(t).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "upgrade: {what}");
        assert_eq!(error_of(r).await, "invalid_token", "upgrade: {what}");
    }
    // A real access token is not a legacy token at the upgrade endpoint.
    assert_eq!(error_of(s.upgrade(&l.at).await).await, "invalid_token");
    assert_eq!(s.metric("auth_legacy_uses_total{phase=\"0\"}").await, 0);
    assert_eq!(
        s.metric("auth_legacy_exchanges_total{outcome=\"ok\"}")
            .await,
        0
    );
}

#[tokio::test]
async fn s35_algorithm_confusion_a_public_legacy_key_is_never_an_hmac_secret() {
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let pem = sk
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem");
    let der = sk.to_pkcs8_der().expect("der");
    let s =
        Srv::with(|c| c.legacy.public_key_file = Some(temp_file("pub.pem", pem.as_bytes()))).await;
    let good = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &json!({ "sub": "grace", "iat": 1 }),
        &EncodingKey::from_ec_der(der.as_bytes()),
    )
    .expect("enc");
    let r = s.me(&good).await;
    assert_eq!(r.status(), StatusCode::OK, "a real ES256 legacy token");
    assert_eq!(r.json::<Value>().await.expect("json")["sub"], "grace");
    for key in [pem.as_bytes(), pem.trim_end().as_bytes()] {
        let forged = hs256(&json!({ "sub": "mallory" }), key);
        assert_eq!(
            s.me_status(&forged).await,
            StatusCode::UNAUTHORIZED,
            "HS256 keyed with the PEM"
        );
        assert_eq!(s.upgrade(&forged).await.status(), StatusCode::UNAUTHORIZED);
    }
    // The demo endpoint cannot mint with a public key (and is absent without --demo).
    assert!(s.running.state.mint_legacy_token("x", true).is_err());
}

#[tokio::test]
async fn without_a_legacy_key_nothing_is_legacy_and_demo_generates_one() {
    let s = Srv::start().await;
    let t = legacy_token("h");
    assert_eq!(s.me_status(&t).await, StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(s.upgrade(&t).await).await, "invalid_token");
    assert!(s.running.state.mint_legacy_token("h", true).is_err());
    let d = Srv::with(|c| c.demo = true).await;
    let minted: Value = d
        .http
        .post(d.url("/demo/legacy-token"))
        .json(&json!({ "username": "demo" }))
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("json");
    let t = minted["token"].as_str().expect("token");
    let h = segment(t, 0);
    assert_eq!(h["alg"], "HS256");
    assert!(h.get("kid").is_none());
    assert!(segment(t, 1).get("exp").is_none());
    assert_eq!(d.me_status(t).await, StatusCode::OK);
    // The demo switch (no admin secret) and the stats.
    let r = d
        .http
        .post(d.url("/demo/legacy-phase"))
        .json(&json!({ "phase": 2 }))
        .send()
        .await
        .expect("phase");
    assert_eq!(r.json::<Value>().await.expect("json")["phase"], 2);
    assert_eq!(d.me_status(t).await, StatusCode::UNAUTHORIZED);
    let stats: Value = d
        .http
        .get(d.url("/demo/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["legacy"]["phase"], 2);
    assert_eq!(stats["legacy"]["report"]["usesByPhase"][0], 1);
}

/// F20: the rollout ramp, for a population of 200 legacy clients over four simulated weeks. Phase 1 for all, then
/// phase 2 (force the exchange) for 1 %, 10 %, 50 % and 100 % of users, a week apart; each week every client calls
/// the API once as the manager would (the legacy token until it has exchanged it, then an access token from its
/// refresh cookie) and exchanges its legacy token when the API refuses it. The kill switch is pulled once, right
/// after the 50 % step, and takes effect on the very next request; after the sunset nothing legacy is accepted.
#[tokio::test]
async fn f20_rollout_ramp_from_1_to_100_percent_upgrades_everyone_and_nothing_legacy_outlives_the_sunset(
) {
    const WEEK: u64 = 7 * 24 * 3600;
    let s = srv(|c| {
        c.refresh_idle_ttl = 60 * 24 * 3600; // a client renews every week in this simulation
        c.session_max = 60 * 24 * 3600;
        c.login_rate_per_min = 0;
        c.refresh_rate_per_min = 0;
        c.refresh_ip_rate_per_5min = 0;
    })
    .await;
    let users: Vec<String> = (0..200).map(|i| format!("ramp{i}")).collect();
    // Per user: the legacy token, or (after the exchange) the refresh cookie.
    let mut held: Vec<Result<String, String>> =
        users.iter().map(|u| Err(legacy_token(u))).collect();
    let (mut attempts, mut upgraded) = (0u32, 0u32);
    let mut shares = Vec::new();

    /// One week of traffic: every client calls the API once; returns (legacy calls accepted, all calls).
    async fn week(
        s: &Srv,
        held: &mut [Result<String, String>],
        attempts: &mut u32,
        upgraded: &mut u32,
    ) -> (u32, u32) {
        let mut legacy_ok = 0;
        for h in held.iter_mut() {
            match h {
                Ok(rt) => {
                    let (at, next) = s.refresh_ok(rt).await;
                    *rt = next;
                    assert_eq!(s.me_status(&at).await, StatusCode::OK);
                }
                Err(legacy) => {
                    let r = s.me_with(legacy, "ramp-client").await;
                    if r.status() == StatusCode::OK {
                        legacy_ok += 1;
                        continue;
                    }
                    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
                    *attempts += 1;
                    let up = s.upgrade(legacy).await;
                    if up.status() == StatusCode::OK {
                        *upgraded += 1;
                        let rt =
                            rt_cookie(up.headers()).expect("the exchange sets the refresh cookie");
                        let at = up.json::<Value>().await.expect("json")["accessToken"]
                            .as_str()
                            .expect("accessToken")
                            .to_string();
                        assert_eq!(
                            s.me_status(&at).await,
                            StatusCode::OK,
                            "the new session works at once"
                        );
                        *h = Ok(rt);
                    }
                }
            }
        }
        (legacy_ok, u32::try_from(held.len()).expect("few users"))
    }

    s.set_phase(1).await;
    let (legacy, all) = week(&s, &mut held, &mut attempts, &mut upgraded).await;
    shares.push(f64::from(legacy) / f64::from(all));
    for percent in [1u8, 10, 50, 100] {
        s.advance(WEEK);
        let r = s
            .admin(
                "POST",
                "/admin/legacy/phase",
                Some(json!({ "phase": 2, "cohortPercent": percent })),
                ADMIN,
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        if percent == 50 {
            // The kill switch, pulled at once: the next request of a client in the new cohort is judged by phase 1.
            let waiting = held
                .iter()
                .zip(&users)
                .find_map(|(h, u)| {
                    (h.is_err() && auth_server::legacy::bucket(u) < 50).then_some(u.clone())
                })
                .expect("a legacy client in the 50 % cohort that has not exchanged yet");
            let token = legacy_token(&waiting);
            assert_eq!(
                s.me_with(&token, "ramp-client").await.status(),
                StatusCode::UNAUTHORIZED,
                "phase 2 reached it"
            );
            let k = s
                .admin("POST", "/admin/legacy/kill-switch", None, ADMIN)
                .await;
            assert_eq!(k.json::<Value>().await.expect("json")["phase"], 1);
            assert_eq!(
                s.me_with(&token, "ramp-client").await.status(),
                StatusCode::OK,
                "the kill switch acts on the next request"
            );
            let r = s
                .admin(
                    "POST",
                    "/admin/legacy/phase",
                    Some(json!({ "phase": 2, "cohortPercent": 50 })),
                    ADMIN,
                )
                .await;
            assert_eq!(r.status(), StatusCode::OK, "the ramp resumes");
        }
        let (legacy, all) = week(&s, &mut held, &mut attempts, &mut upgraded).await;
        shares.push(f64::from(legacy) / f64::from(all));
    }
    assert_eq!(
        upgraded, attempts,
        "every exchange succeeded ({upgraded} of {attempts})"
    );
    assert_eq!(upgraded, 200, "every client moved off its legacy token");
    assert_eq!(
        shares.first().copied(),
        Some(1.0),
        "week 0: all traffic legacy"
    );
    assert!(
        shares.windows(2).all(|w| w[1] <= w[0]),
        "the legacy share falls week by week: {shares:?}"
    );
    assert!(
        shares[2] < shares[1] && shares[3] < shares[2],
        "and visibly with the cohort: {shares:?}"
    );
    assert_eq!(
        shares.last().copied(),
        Some(0.0),
        "at 100 % no legacy call is accepted"
    );
    assert_eq!(
        s.report().await["report"]["securityEvents"],
        0,
        "no replay, no alert"
    );

    // After the sunset (30 days after start by default), nothing legacy is accepted, whatever the phase.
    s.set_phase(1).await;
    s.advance(2 * WEEK);
    let late = legacy_token("never-upgraded");
    assert_eq!(
        s.me_with(&late, "ramp-client").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        error_of(s.upgrade(&late).await).await,
        "legacy_token_retired"
    );
    assert_eq!(s.report().await["sunsetPassed"], true);
}
