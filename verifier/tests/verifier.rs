//! The verifier against the real auth server on loopback (in-process, manual clock shared by both):
//! JWKS caching and refetching, alg confusion, claims and time rules, and the revocation check.

mod common;

use std::sync::Arc;

use common::srv::{b64, segment, sign_with};
use common::{config, server, verifier, with_revocation, Tap};
use serde_json::{json, Value};
use token_verifier::{Verifier, VerifyError};

/// A token naming `kid` with valid claims; its signature is junk (an unknown `kid` is refused first).
fn with_kid(s: &common::Srv, kid: &str) -> String {
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
    let claims = s.claims("sid-forged");
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn header(s: &common::Srv) -> Value {
    json!({"alg": "ES256", "typ": "at+jwt", "kid": s.kid()})
}

async fn verify_all(v: &Arc<Verifier>, tokens: Vec<String>) -> Vec<Result<(), VerifyError>> {
    let mut set = tokio::task::JoinSet::new();
    for t in tokens {
        let v = v.clone();
        set.spawn(async move { v.verify_bearer(&t).await.map(|_| ()) });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.expect("task"));
    }
    out
}

#[tokio::test]
async fn the_servers_tokens_verify_with_one_jwks_fetch() {
    let s = server(|_| {}).await;
    let tap = Tap::start(s.url("/.well-known/jwks.json")).await;
    let v = verifier(config(&s, tap.url()));
    let mut tokens = Vec::new();
    for user in ["demo", "alice", "bob"] {
        tokens.push(s.login_as(user).await.at);
    }
    let claims = v
        .verify_bearer(&tokens[1])
        .await
        .expect("alice's token verifies");
    assert_eq!((claims.sub.as_str(), claims.sid.is_some()), ("alice", true));
    let many: Vec<String> = tokens.iter().cycle().take(60).cloned().collect();
    assert!(verify_all(&v, many).await.iter().all(Result::is_ok));
    assert_eq!(
        tap.hits(),
        1,
        "one fetch serves every token while the set is fresh"
    );
    assert_eq!(v.stats().jwks_fetches, 1);
    assert_eq!(v.cached_kids(), vec![s.kid()]);
}

#[tokio::test]
async fn s08_f14_forged_kids_refetch_at_most_once_per_interval() {
    let s = server(|_| {}).await;
    let tap = Tap::start(s.url("/.well-known/jwks.json")).await;
    let v = verifier(config(&s, tap.url()));
    let at = s.login().await.at;
    v.verify_bearer(&at).await.expect("valid");
    assert_eq!(tap.hits(), 1);
    let interval = v.config().cache.refetch_interval;
    for round in 1..=2u64 {
        // Within the interval of the last fetch: 1,000 forged kids fetch nothing.
        let forged: Vec<String> = (0..1000)
            .map(|i| with_kid(&s, &format!("forged-{round}-{i}")))
            .collect();
        let results = verify_all(&v, forged.clone()).await;
        assert!(
            results.iter().all(|r| *r == Err(VerifyError::UnknownKey)),
            "{:?}",
            &results[..3]
        );
        assert_eq!(
            tap.hits(),
            round,
            "round {round}: no fetch within the interval"
        );
        // Once the interval has passed: 1,000 more, concurrently, cause exactly one refetch.
        s.advance(interval);
        let results = verify_all(&v, forged).await;
        assert!(results.iter().all(|r| *r == Err(VerifyError::UnknownKey)));
        assert_eq!(
            tap.hits(),
            round + 1,
            "round {round}: one refetch for 1,000 forged kids"
        );
        v.verify_bearer(&at)
            .await
            .expect("the real token still verifies");
    }
    // Tokens the verifier refuses before any key lookup never fetch, whenever they come.
    s.advance(interval);
    let none = format!(
        "{}.{}.c2ln",
        b64(br#"{"alg":"none","typ":"at+jwt","kid":"n"}"#),
        b64(b"{}")
    );
    let hs = format!(
        "{}.{}.c2ln",
        b64(br#"{"alg":"HS256","typ":"at+jwt","kid":"h"}"#),
        b64(b"{}")
    );
    for t in [none, hs] {
        assert_eq!(
            v.verify_bearer(&t).await,
            Err(VerifyError::AlgorithmMismatch)
        );
    }
    assert_eq!(tap.hits(), 3);
    assert_eq!(v.stats().jwks_fetches, 3);
}

#[tokio::test]
async fn jwks_endpoint_down_cached_keys_work_until_max_age_then_fail_closed() {
    let s = server(|_| {}).await;
    let max_age = s.running.state.config.jwks_max_age;
    assert!(
        s.running.state.config.access_ttl > max_age + 10,
        "tokens outlive the cache here"
    );
    let tap = Tap::start(s.url("/.well-known/jwks.json")).await;
    let v = verifier(config(&s, tap.url()));
    let at = s.login().await.at;
    v.verify_bearer(&at).await.expect("valid");
    tap.set_down(true);
    s.advance(max_age - 1);
    v.verify_bearer(&at)
        .await
        .expect("cached keys keep working until their max age");
    let fresh = s.login().await.at;
    v.verify_bearer(&fresh)
        .await
        .expect("a new token of the same key too");
    assert_eq!(tap.hits(), 1, "no fetch while the set is fresh");
    s.advance(1);
    assert_eq!(
        v.verify_bearer(&at).await,
        Err(VerifyError::KeysUnavailable),
        "fail closed at max age"
    );
    assert_eq!(tap.hits(), 2, "one attempt");
    let e = VerifyError::KeysUnavailable;
    assert_eq!(
        (e.status().as_u16(), e.retry_after().is_some()),
        (503, true)
    );
    // While down, retried at most once per interval: a burst costs no further fetch.
    let results = verify_all(&v, vec![fresh.clone(); 100]).await;
    assert!(results
        .iter()
        .all(|r| *r == Err(VerifyError::KeysUnavailable)));
    assert_eq!(tap.hits(), 2);
    // Back up: the next attempt after the interval recovers.
    tap.set_down(false);
    s.advance(v.config().cache.refetch_interval);
    v.verify_bearer(&fresh).await.expect("recovered");
    assert_eq!(tap.hits(), 3);
}

#[tokio::test]
async fn auth_server_gone_cached_keys_work_until_max_age_then_fail_closed() {
    let s = server(|_| {}).await;
    let max_age = s.running.state.config.jwks_max_age;
    let v = verifier(config(&s, s.url("/.well-known/jwks.json")));
    let at = s.login().await.at;
    v.verify_bearer(&at).await.expect("valid");
    s.running.shutdown();
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while !s.running.handle.is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the auth server stops");
    s.advance(max_age - 1);
    v.verify_bearer(&at)
        .await
        .expect("the auth server is gone, its keys are still fresh");
    s.advance(1);
    assert_eq!(
        v.verify_bearer(&at).await,
        Err(VerifyError::KeysUnavailable)
    );
    assert_eq!(v.stats().jwks_fetch_failures, 1);
}

#[tokio::test]
async fn alg_confusion_is_refused() {
    let s = server(|_| {}).await;
    let v = verifier(config(&s, s.url("/.well-known/jwks.json")));
    let kid = s.kid();
    let claims = s.claims("sid-x");
    v.verify_bearer(&s.sign_raw(&header(&s), &claims))
        .await
        .expect("the control token verifies");
    let jwks: Value = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let jwk = jwks["keys"][0].clone();
    let public_x = jwk["x"].as_str().expect("x").to_string();
    let public_y = jwk["y"].as_str().expect("y").to_string();
    // HS256 keyed with the public key, in every form an attacker might try.
    let raw = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .expect("b64")
    };
    let point = [vec![4u8], raw(&public_x), raw(&public_y)].concat();
    for secret in [
        jwk.to_string().into_bytes(),
        jwks.to_string().into_bytes(),
        point,
    ] {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(kid.clone());
        let t = jsonwebtoken::encode(
            &h,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .expect("hs256");
        assert_eq!(
            v.verify_bearer(&t).await,
            Err(VerifyError::AlgorithmMismatch)
        );
    }
    // Another asymmetric alg under the P-256 key, and `none`, with the real kid and a real payload.
    let body = b64(claims.to_string().as_bytes());
    for alg in ["ES384", "RS256", "PS256", "EdDSA", "none", "None", "es256"] {
        let h = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
        let real_sig = s
            .sign_raw(&header(&s), &claims)
            .rsplit('.')
            .next()
            .expect("sig")
            .to_string();
        let t = format!("{}.{body}.{real_sig}", b64(h.to_string().as_bytes()));
        assert_eq!(
            v.verify_bearer(&t).await,
            Err(VerifyError::AlgorithmMismatch),
            "{alg}"
        );
    }
    let unsigned = format!("{}.{body}.", b64(br#"{"alg":"none","typ":"at+jwt"}"#));
    assert_eq!(
        v.verify_bearer(&unsigned).await,
        Err(VerifyError::Malformed)
    );
    // The right alg, someone else's key: with the real kid, or with the attacker's key embedded.
    let attacker = auth_server::keys::KeyPair::generate("attacker".into(), 0, 0).expect("key");
    let forged = sign_with(attacker.encoding_key(), &header(&s), &claims);
    assert_eq!(
        v.verify_bearer(&forged).await,
        Err(VerifyError::BadSignature)
    );
    let embedded = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "jwk": attacker.public_jwk(),
                          "jku": s.url("/.well-known/jwks.json")});
    let forged = sign_with(attacker.encoding_key(), &embedded, &claims);
    assert_eq!(
        v.verify_bearer(&forged).await,
        Err(VerifyError::BadSignature),
        "jwk/jku are ignored"
    );
    // A real token with one payload byte changed.
    let real = s.sign_raw(&header(&s), &claims);
    let mut parts: Vec<String> = real.split('.').map(str::to_string).collect();
    parts[1] = b64(claims.to_string().replace("sid-x", "sid-y").as_bytes());
    assert_eq!(
        v.verify_bearer(&parts.join(".")).await,
        Err(VerifyError::BadSignature)
    );
}

#[tokio::test]
async fn time_claims_with_leeway() {
    let s = server(|_| {}).await;
    let mut cfg = config(&s, s.url("/.well-known/jwks.json"));
    cfg.leeway = 30;
    let v = verifier(cfg);
    let now = s.now();
    let with = |changes: Value| {
        let mut c = s.claims("sid-t");
        for (k, x) in changes.as_object().expect("obj") {
            c[k] = x.clone();
        }
        s.sign_raw(&header(&s), &c)
    };
    let cases = [
        (json!({"exp": now - 29}), Ok(())),
        (json!({"exp": now - 30}), Err(VerifyError::Expired)),
        (json!({"exp": now}), Ok(())),
        (json!({"nbf": now + 30}), Ok(())),
        (json!({"nbf": now + 31}), Err(VerifyError::NotYetValid)),
        (json!({"iat": now + 30}), Ok(())),
        (json!({"iat": now + 31}), Err(VerifyError::NotYetValid)),
        (
            json!({"exp": (now + 60) as f64 + 0.5}),
            Err(VerifyError::BadClaims),
        ),
        (json!({"exp": null}), Err(VerifyError::BadClaims)),
    ];
    for (changes, want) in cases {
        let got = v.verify_bearer(&with(changes.clone())).await.map(|_| ());
        assert_eq!(got, want, "{changes}");
    }
    // A real token through its life: accepted until exp + leeway, refused from then on.
    let at = s.login().await.at;
    let exp = segment(&at, 1)["exp"].as_u64().expect("exp");
    s.advance(exp + 29 - s.now());
    v.verify_bearer(&at).await.expect("within the leeway");
    s.advance(1);
    assert_eq!(
        v.verify_bearer(&at).await.map(|_| ()),
        Err(VerifyError::Expired)
    );
}

#[tokio::test]
async fn wrong_iss_aud_typ_and_dpop_bound_tokens_are_refused() {
    let s = server(|_| {}).await;
    let v = verifier(config(&s, s.url("/.well-known/jwks.json")));
    let aud = s.running.state.config.audience.clone();
    let claim = |k: &str, x: Value| {
        let mut c = s.claims("sid-c");
        c[k] = x;
        c
    };
    let cases = [
        (
            header(&s),
            claim("iss", json!("https://evil.example")),
            Err(VerifyError::WrongIssuer),
        ),
        (
            header(&s),
            claim("aud", json!("urn:other-api")),
            Err(VerifyError::WrongAudience),
        ),
        (
            header(&s),
            claim("aud", json!(["urn:other-api", aud])),
            Ok(()),
        ),
        (
            header(&s),
            claim("aud", json!([])),
            Err(VerifyError::WrongAudience),
        ),
        (
            header(&s),
            claim(
                "cnf",
                json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
            ),
            Err(VerifyError::DpopBoundAsBearer),
        ),
        (
            json!({"alg": "ES256", "typ": "JWT", "kid": s.kid()}),
            s.claims("sid-c"),
            Err(VerifyError::BadHeader),
        ),
        (
            json!({"alg": "ES256", "kid": s.kid()}),
            s.claims("sid-c"),
            Err(VerifyError::BadHeader),
        ),
        (
            json!({"alg": "ES256", "typ": "application/at+jwt", "kid": s.kid()}),
            s.claims("sid-c"),
            Ok(()),
        ),
        (
            json!({"alg": "ES256", "typ": "at+jwt"}),
            s.claims("sid-c"),
            Err(VerifyError::BadHeader),
        ),
        (
            json!({"alg": "ES256", "typ": "at+jwt", "kid": s.kid(), "crit": ["x"], "x": 1}),
            s.claims("sid-c"),
            Err(VerifyError::BadHeader),
        ),
    ];
    for (h, c, want) in cases {
        let got = v.verify_bearer(&s.sign_raw(&h, &c)).await.map(|_| ());
        assert_eq!(got, want, "{h} {c}");
    }
    let mut no_sub = s.claims("sid-c");
    no_sub.as_object_mut().expect("obj").remove("sub");
    assert_eq!(
        v.verify_bearer(&s.sign_raw(&header(&s), &no_sub))
            .await
            .map(|_| ()),
        Err(VerifyError::BadClaims)
    );
    // A verifier configured for another issuer refuses the server's real tokens.
    let mut other = config(&s, s.url("/.well-known/jwks.json"));
    other.issuer = "urn:another-issuer".into();
    let at = s.login().await.at;
    assert_eq!(
        verifier(other).verify_bearer(&at).await.map(|_| ()),
        Err(VerifyError::WrongIssuer)
    );
}

#[tokio::test]
async fn revoked_sessions_and_tokens_are_refused_with_the_revocation_check() {
    let s = server(|_| {}).await;
    let v = verifier(with_revocation(
        config(&s, s.url("/.well-known/jwks.json")),
        &s,
        1,
    ));
    let plain = verifier(config(&s, s.url("/.well-known/jwks.json")));
    let login = s.login().await;
    let (second, rt) = s.refresh_ok(&login.rt).await;
    v.verify_bearer(&login.at).await.expect("active");
    v.verify_bearer(&login.at)
        .await
        .expect("active, from the cache");
    assert_eq!(
        v.stats().introspections,
        1,
        "the answer is reused within its second"
    );
    assert_eq!(s.logout(Some(&rt)).await.status(), 200, "logout");
    // Within the cache's second the old answer stands; after it, both tokens of the session are refused.
    v.verify_bearer(&login.at).await.expect("still cached");
    s.advance(1);
    for t in [&login.at, &second] {
        assert_eq!(
            v.verify_bearer(t).await.map(|_| ()),
            Err(VerifyError::Revoked)
        );
    }
    assert_eq!(v.stats().introspections, 3);
    assert_eq!(
        v.verify_bearer(&second).await.map(|_| ()),
        Err(VerifyError::Revoked)
    );
    assert_eq!(
        v.stats().introspections,
        3,
        "a refusal is cached until the token expires"
    );
    plain
        .verify_bearer(&second)
        .await
        .expect("without the check the signature alone is trusted");
    // One token revoked by its jti (the demo control) is refused; its session's other tokens are not.
    let s2 = server(|c| c.demo = true).await;
    let v2 = verifier(with_revocation(
        config(&s2, s2.url("/.well-known/jwks.json")),
        &s2,
        0,
    ));
    let l2 = s2.login().await;
    let (other, _) = s2.refresh_ok(&l2.rt).await;
    assert_eq!(s2.revoke_access(&l2.at).await.status(), 200);
    assert_eq!(
        v2.verify_bearer(&l2.at).await.map(|_| ()),
        Err(VerifyError::Revoked)
    );
    v2.verify_bearer(&other)
        .await
        .expect("the session lives on");
    // The check fails closed: a wrong secret or an unreachable endpoint refuses with 503.
    let mut wrong = with_revocation(config(&s2, s2.url("/.well-known/jwks.json")), &s2, 1);
    if let Some(r) = wrong.revocation.as_mut() {
        r.secret = "not-the-secret".into();
    }
    assert_eq!(
        verifier(wrong).verify_bearer(&other).await.map(|_| ()),
        Err(VerifyError::RevocationUnavailable)
    );
    let mut gone = with_revocation(config(&s2, s2.url("/.well-known/jwks.json")), &s2, 1);
    if let Some(r) = gone.revocation.as_mut() {
        r.introspection_url = s.url("/nowhere");
    }
    assert_eq!(
        verifier(gone).verify_bearer(&other).await.map(|_| ()),
        Err(VerifyError::RevocationUnavailable)
    );
}
