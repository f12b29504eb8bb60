//! Several `auth-server` instances on one Redis (issue 12): tokens and sessions are shared, so
//! any instance answers for any session; a restart keeps them; Redis unavailable fails closed
//! with 503 and `Retry-After` and recovers by itself. In process, one manual clock for all.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auth_server::clock::ManualClock;
use auth_server::config::StoreChoice;
use common::redis::RedisServer;
use common::*;
use reqwest::StatusCode;

/// A key-encryption key file in the temporary directory (removed on drop).
struct KekFile(PathBuf);

impl KekFile {
    fn new(byte: u8) -> Self {
        let p = std::env::temp_dir().join(format!(
            "wtm-kek-{}-{byte}-{}",
            std::process::id(),
            auth_server::tokens::random_id()
        ));
        std::fs::write(&p, b64_std(&[byte; 32])).expect("write kek");
        Self(p)
    }
}

impl Drop for KekFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn b64_std(b: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)
}

async fn instance(r: &RedisServer, kek: &KekFile, clock: &Arc<ManualClock>) -> Srv {
    let (url, path) = (r.url(), kek.0.clone());
    Srv::with_clock(clock.clone(), move |c| {
        c.store = StoreChoice::Redis(url);
        c.key_encryption_key_file = Some(path);
        c.store_timeout_ms = 1000;
    })
    .await
}

async fn pair() -> (RedisServer, KekFile, Arc<ManualClock>, Srv, Srv) {
    let r = RedisServer::start();
    let kek = KekFile::new(1);
    let clock = Arc::new(ManualClock::new(T0));
    let a = instance(&r, &kek, &clock).await;
    let b = instance(&r, &kek, &clock).await;
    (r, kek, clock, a, b)
}

#[tokio::test]
async fn instances_publish_one_jwks_and_accept_each_others_tokens() {
    let (_r, _k, _c, a, b) = pair().await;
    assert_eq!(a.jwks().await, b.jwks().await);
    assert_eq!(a.kid(), b.kid(), "one signing key");
    let l = a.login().await;
    assert_eq!(b.me_status(&l.at).await, StatusCode::OK);
}

#[tokio::test]
async fn rotation_on_one_instance_and_reuse_detected_on_the_other() {
    let (_r, _k, _c, a, b) = pair().await;
    let l = a.login().await;
    let (at1, rt1) = b.refresh_ok(&l.rt).await;
    // The parent again within the grace window, on the other instance: the same child.
    let r = a.refresh(&l.rt).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(rt_cookie(r.headers()).as_deref(), Some(rt1.as_str()));
    let (_at2, _rt2) = a.refresh_ok(&rt1).await;
    a.advance(11);
    // The grandparent, on B: reuse; the whole session is revoked on both.
    assert_eq!(b.refresh(&l.rt).await.status(), StatusCode::UNAUTHORIZED);
    for s in [&a, &b] {
        assert_eq!(s.me_status(&at1).await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn logout_on_one_instance_rejects_the_sessions_tokens_on_the_other() {
    let (_r, _k, _c, a, b) = pair().await;
    let l = a.login().await;
    assert_eq!(b.me_status(&l.at).await, StatusCode::OK);
    assert_eq!(b.logout(Some(&l.rt)).await.status(), StatusCode::OK);
    assert_eq!(a.me_status(&l.at).await, StatusCode::UNAUTHORIZED);
    assert_eq!(a.refresh(&l.rt).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_restart_of_every_instance_keeps_sessions_and_access_tokens() {
    let (r, kek, clock, a, b) = pair().await;
    let l = a.login().await;
    for s in [a, b] {
        s.running.shutdown();
        let _ = s.running.handle.await;
    }
    let c = instance(&r, &kek, &clock).await;
    assert_eq!(
        c.me_status(&l.at).await,
        StatusCode::OK,
        "the key ring survived"
    );
    c.refresh_ok(&l.rt).await;
}

#[tokio::test]
async fn another_key_encryption_key_cannot_start_on_the_ring() {
    let r = RedisServer::start();
    let clock = Arc::new(ManualClock::new(T0));
    let _a = instance(&r, &KekFile::new(1), &clock).await;
    let other = KekFile::new(2);
    let mut cfg = auth_server::config::Config {
        addr: "127.0.0.1:0".parse().expect("addr"),
        ..Default::default()
    };
    cfg.store = StoreChoice::Redis(r.url());
    cfg.key_encryption_key_file = Some(other.0.clone());
    let err = auth_server::start(cfg.clone(), clock.clone())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("none opens"), "{err}");
    cfg.key_encryption_key_file = None;
    let err = auth_server::start(cfg, clock).await.expect_err("refused");
    assert!(
        err.to_string().contains("--key-encryption-key-file"),
        "{err}"
    );
}

#[tokio::test]
async fn exactly_one_instance_rotates_and_the_new_key_is_published_before_it_signs() {
    let (_r, _k, clock, a, b) = pair().await;
    let old = a.kid();
    let ra = a.running.state.rotate_shared_keys().await.expect("answers");
    let rb = b.running.state.rotate_shared_keys().await.expect("answers");
    let new = match (ra, rb) {
        (Some(k), None) | (None, Some(k)) => k,
        other => panic!("exactly one rotator: {other:?}"),
    };
    // Both reload (the maintenance tick does this every second; here, by hand).
    for s in [&a, &b] {
        s.running.state.rotate_shared_keys().await.expect("answers");
    }
    for s in [&a, &b] {
        let kids: Vec<String> = s.jwks().await["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_string())
            .collect();
        assert!(kids.contains(&new) && kids.contains(&old), "{kids:?}");
        assert_eq!(s.kid(), old, "the new key does not sign yet");
    }
    let before = a.login().await;
    clock.advance(Duration::from_secs(300)); // the JWKS max-age: the publish lead
    assert_eq!(a.kid(), new);
    assert_eq!(b.kid(), new);
    assert_eq!(
        b.me_status(&before.at).await,
        StatusCode::OK,
        "tokens of the old key stay valid"
    );
}

#[tokio::test]
async fn s25_redis_unavailable_answers_503_with_retry_after_and_recovers() {
    let (r, _k, _c, a, _b) = pair().await;
    let l = a.login().await;
    r.freeze();
    let refresh = a.refresh(&l.rt).await;
    let me = a.me(&l.at).await;
    let login = a
        .http
        .post(a.url("/auth/login"))
        .json(&serde_json::json!({ "username": "demo", "password": "demo" }))
        .send()
        .await
        .expect("login");
    for (what, res) in [("refresh", &refresh), ("bearer", &me), ("login", &login)] {
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
        let ra = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        assert!(ra.is_some_and(|s| s > 0), "{what}: Retry-After {ra:?}");
    }
    r.thaw();
    let mut recovered = false;
    for _ in 0..50 {
        if a.me_status(&l.at).await == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "answers again once Redis does");
    // The refresh that got 503 changed nothing the client cannot use: the cookie still works.
    a.refresh_ok(&l.rt).await;
}

/// With `--dpop required` on two instances sharing the key-encryption key, a server nonce one instance handed
/// out is accepted by the other (stateless nonces under a secret derived from that key): a client a load
/// balancer moves between them is not challenged again at each move. An instance with another key-encryption
/// key (another deployment) refuses it.
#[tokio::test]
async fn dpop_nonces_of_one_instance_are_accepted_by_the_other() {
    use auth_server::dpop::DpopMode;
    let r = RedisServer::start();
    let kek = KekFile::new(5);
    let clock = Arc::new(ManualClock::new(T0));
    let dpop_instance = |kek: &KekFile| {
        let (url, path, clock) = (r.url(), kek.0.clone(), clock.clone());
        Srv::with_clock(clock, move |c| {
            c.store = StoreChoice::Redis(url);
            c.key_encryption_key_file = Some(path);
            c.store_timeout_ms = 1000;
            c.dpop = DpopMode::Required;
        })
    };
    let a = dpop_instance(&kek).await;
    let b = dpop_instance(&kek).await;
    let key = DpopKey::new();
    // No nonce yet: A challenges and hands one out.
    let first = key.login(&a, None).await;
    assert_eq!(first.status(), StatusCode::BAD_REQUEST);
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_string();
    // B takes A's nonce at once, and both hand out the same one in this period.
    let login = key.login(&b, Some(&nonce)).await;
    assert_eq!(login.status(), StatusCode::OK, "B accepts A's nonce");
    assert_eq!(login.headers()["dpop-nonce"].to_str().unwrap(), nonce);
    let body: serde_json::Value = login.json().await.unwrap();
    assert_eq!(body["tokenType"], "DPoP");
    let at = body["accessToken"].as_str().unwrap();
    let me = a
        .http
        .get(a.url("/api/me"))
        .header("authorization", format!("DPoP {at}"))
        .header(
            "dpop",
            key.proof(&a, "GET", &a.url("/api/me"), Some(&nonce), Some(at)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "A accepts the proof with the same nonce"
    );
    // Another deployment (another key-encryption key, its own Redis) does not accept it.
    let r2 = RedisServer::start();
    let other_kek = KekFile::new(6);
    let (url2, path2) = (r2.url(), other_kek.0.clone());
    let other = Srv::with_clock(clock.clone(), move |c| {
        c.store = StoreChoice::Redis(url2);
        c.key_encryption_key_file = Some(path2);
        c.store_timeout_ms = 1000;
        c.dpop = DpopMode::Required;
    })
    .await;
    let refused = key.login(&other, Some(&nonce)).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce");
}

/// RFC 9449 §11.1: a proof is accepted once across the instances on one Redis, not once per instance. Both
/// instances sit behind one public origin (`--dpop-htu-base`), so a proof names the same `htu` for either; one
/// accepted by A and replayed to B is refused there.
#[tokio::test]
async fn a_dpop_proof_accepted_by_one_instance_is_refused_by_the_other() {
    use auth_server::dpop::DpopMode;
    let r = RedisServer::start();
    let kek = KekFile::new(7);
    let clock = Arc::new(ManualClock::new(T0));
    let base = "https://app.test";
    let dpop_instance = || {
        let (url, path, clock) = (r.url(), kek.0.clone(), clock.clone());
        Srv::with_clock(clock, move |c| {
            c.store = StoreChoice::Redis(url);
            c.key_encryption_key_file = Some(path);
            c.store_timeout_ms = 1000;
            c.dpop = DpopMode::Required;
            c.dpop_htu_base = Some(base.into());
        })
    };
    let a = dpop_instance().await;
    let b = dpop_instance().await;
    let key = DpopKey::new();
    let first = a
        .dpop_login(key.proof(&a, "POST", &format!("{base}/auth/login"), None, None))
        .await;
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_string();
    let login = a
        .dpop_login(key.proof(
            &a,
            "POST",
            &format!("{base}/auth/login"),
            Some(&nonce),
            None,
        ))
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    let body: serde_json::Value = login.json().await.unwrap();
    let at = body["accessToken"].as_str().unwrap().to_string();
    let proof = key.proof(
        &a,
        "GET",
        &format!("{base}/api/me"),
        Some(&nonce),
        Some(&at),
    );
    let me = |s: &Srv| {
        s.http
            .get(s.url("/api/me"))
            .header("authorization", format!("DPoP {at}"))
            .header("dpop", proof.clone())
            .send()
    };
    assert_eq!(me(&a).await.unwrap().status(), StatusCode::OK);
    let replay = me(&b).await.unwrap();
    assert_eq!(
        replay.status(),
        StatusCode::UNAUTHORIZED,
        "B refuses A's proof"
    );
    let challenge = replay.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
    // A fresh proof of the same key is fine on B.
    let fresh = key.proof(
        &b,
        "GET",
        &format!("{base}/api/me"),
        Some(&nonce),
        Some(&at),
    );
    let ok = b
        .http
        .get(b.url("/api/me"))
        .header("authorization", format!("DPoP {at}"))
        .header("dpop", fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}
