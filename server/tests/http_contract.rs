//! The HTTP contract the client, the demo and the e2e tests rely on: names, shapes, headers,
//! the `listening on` line, demo controls, static files, metrics (CATALOGUE S40 for the JWKS).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn s40_jwks_has_public_members_only_and_a_bounded_max_age() {
    let s = Srv::start().await;
    let r = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let cc = r
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .expect("cache-control")
        .to_string();
    let max_age: u64 = cc
        .split("max-age=")
        .nth(1)
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .expect("max-age");
    // max-age must not exceed the publication lead of a new key (the rotation overlap).
    assert!(max_age <= s.running.state.config.jwks_max_age, "{cc}");
    let v: Value = r.json().await.expect("json");
    let keys = v["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    for k in keys {
        for m in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(k.get(m).is_none(), "private member {m}");
        }
        assert_eq!(k["use"], "sig");
        assert_eq!(k["alg"], "ES256");
        assert_eq!(k["kty"], "EC");
        assert_eq!(k["crv"], "P-256");
        assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()));
    }
}

#[tokio::test]
async fn me_returns_sub_and_sid() {
    let s = Srv::start().await;
    let l = s.login_as("alice").await;
    let r = s.me(&l.at).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["sub"], "alice");
    assert_eq!(v["sid"], segment(&l.at, 1)["sid"]);
}

#[tokio::test]
async fn echo_hashes_the_raw_body_including_a_10_mb_blob() {
    let s = Srv::start().await;
    let l = s.login().await;
    let blob: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let want: String = Sha256::digest(&blob)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let r = s
        .http
        .post(s.url("/api/echo"))
        .bearer_auth(&l.at)
        .header("content-type", "application/octet-stream")
        .body(blob.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["sha256"], want.as_str());
    assert_eq!(v["length"], blob.len());
    assert_eq!(v["contentType"], "application/octet-stream");
    // Empty body, no content type.
    let v: Value = s
        .http
        .post(s.url("/api/echo"))
        .bearer_auth(&l.at)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(v["length"], 0);
    assert_eq!(
        v["sha256"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert!(v["contentType"].is_null());
    // Without a token: 401 before the body matters.
    let r = s
        .http
        .post(s.url("/api/echo"))
        .body("x")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn metrics_expose_every_documented_series() {
    let s = Srv::start().await;
    let text = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    for series in [
        "auth_logins_total ",
        "auth_refresh_requests_total{outcome=\"ok\"} ",
        "auth_refresh_requests_total{outcome=\"invalid_grant\"} ",
        "auth_refresh_requests_total{outcome=\"rate_limited\"} ",
        "auth_refresh_requests_total{outcome=\"csrf\"} ",
        "auth_refresh_requests_total{outcome=\"grace\"} ",
        "auth_refresh_requests_total{outcome=\"unavailable\"} ",
        "auth_rt_reuse_detected_total ",
        "auth_family_revocations_total ",
        "auth_revocations_total ",
        "auth_rate_limited_total{route=\"login\"} ",
        "auth_rate_limited_total{route=\"refresh\"} ",
        "auth_api_requests_total{outcome=\"ok\"} ",
        "auth_api_requests_total{outcome=\"unauthorized\"} ",
        "auth_connections_refused_total{limit=\"total\"} ",
        "auth_connections_refused_total{limit=\"per_ip\"} ",
        "auth_connection_timeouts_total{reason=\"header_read\"} ",
        "auth_connection_timeouts_total{reason=\"keep_alive\"} ",
        "auth_connections_open ",
        "auth_requests_in_flight ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(series)),
            "missing {series}"
        );
    }
    assert!(text.contains("# TYPE auth_refresh_requests_total counter"));
}

#[tokio::test]
async fn every_refresh_request_is_counted_under_exactly_one_outcome() {
    let s = Srv::with(|c| {
        c.demo = true;
        c.refresh_rate_per_min = 2;
    })
    .await;
    let l = s.login().await;
    let (_, rt1) = s.refresh_ok(&l.rt).await; // ok
    s.refresh(&l.rt).await; // grace
    s.http
        .post(s.url("/auth/refresh"))
        .send()
        .await
        .expect("send"); // csrf
    s.refresh("garbage").await; // invalid_grant
    let (_, rt2) = s.refresh_ok(&rt1).await; // ok
    s.refresh(&rt2).await; // rate_limited (2 rotations per minute)
    s.http
        .post(s.url("/demo/fail-refresh"))
        .json(&serde_json::json!({ "seconds": 30 }))
        .send()
        .await
        .expect("send");
    s.refresh(&rt2).await; // unavailable
    let mut total = 0;
    for (o, want) in [
        ("ok", 2),
        ("grace", 1),
        ("csrf", 1),
        ("invalid_grant", 1),
        ("rate_limited", 1),
        ("unavailable", 1),
    ] {
        let got = s.refresh_metric(o).await;
        assert_eq!(got, want, "{o}");
        total += got;
    }
    let stats: Value = s
        .http
        .get(s.url("/demo/stats"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["refreshCalls"], total);
    assert_eq!(stats["refreshOk"], 2);
}

#[tokio::test]
async fn demo_endpoints_are_404_without_demo_mode() {
    let s = Srv::start().await;
    let l = s.login().await;
    let r = s.revoke_access(&l.at).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    for (m, p) in [
        ("POST", "/demo/fail-refresh"),
        ("GET", "/demo/stats"),
        ("POST", "/demo/legacy-token"),
        ("POST", "/demo/legacy-phase"),
        ("POST", "/demo/legacy-kill-switch"),
        ("GET", "/admin/legacy"),
        ("POST", "/admin/legacy/phase"),
    ] {
        let r = s
            .http
            .request(m.parse().expect("method"), s.url(p))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{p}");
    }
    assert_eq!(s.me_status(&l.at).await, StatusCode::OK);
}

#[tokio::test]
async fn demo_revoke_access_forces_a_transparent_refresh() {
    let s = Srv::with(|c| c.demo = true).await;
    let l = s.login().await;
    assert_eq!(s.revoke_access(&l.at).await.status(), StatusCode::OK);
    assert_eq!(s.me_status(&l.at).await, StatusCode::UNAUTHORIZED);
    let (at, _) = s.refresh_ok(&l.rt).await;
    assert_eq!(s.me_status(&at).await, StatusCode::OK);
    let stats: Value = s
        .http
        .get(s.url("/demo/stats"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["api401"], 1);
    assert_eq!(stats["apiCalls"], 2);
    assert_eq!(stats["refreshCalls"], 1);
    assert_eq!(stats["refreshOk"], 1);
    assert_eq!(stats["reuseDetected"], 0);
    assert_eq!(stats["logouts"], 0);
    // Without a valid token the endpoint answers 401.
    assert_eq!(
        s.revoke_access("nope").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn demo_fail_refresh_answers_503_with_retry_after_and_keeps_the_token() {
    let s = Srv::with(|c| c.demo = true).await;
    let l = s.login().await;
    let r = s
        .http
        .post(s.url("/demo/fail-refresh"))
        .json(&serde_json::json!({ "seconds": 30 }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let r = s.refresh(&l.rt).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("30")
    );
    assert!(rt_cookie(r.headers()).is_none());
    s.advance(20);
    let r = s.refresh(&l.rt).await;
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("10")
    );
    s.advance(10);
    let (_, _) = s.refresh_ok(&l.rt).await; // the same token still works: first rotation
    assert_eq!(s.refresh_metric("unavailable").await, 2);
    assert_eq!(s.refresh_metric("grace").await, 0);
}

#[tokio::test]
async fn demo_mode_defaults_to_short_access_tokens() {
    let cfg = auth_server::config::Config::from(
        <auth_server::config::Args as clap::Parser>::parse_from(["auth-server", "--demo"]),
    );
    assert_eq!(cfg.access_ttl, 20);
    let s = Srv::with(|c| {
        *c = auth_server::config::Config {
            addr: c.addr,
            ..cfg
        }
    })
    .await;
    let l = s.login().await;
    assert_eq!(l.body["expiresIn"], 20);
    let stats: Value = s
        .http
        .get(s.url("/demo/stats"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    for k in [
        "apiCalls",
        "api401",
        "refreshCalls",
        "refreshOk",
        "reuseDetected",
        "logouts",
    ] {
        assert!(stats[k].is_u64(), "{k}");
    }
}

#[tokio::test]
async fn insecure_cookie_flag_drops_only_secure() {
    let s = Srv::with(|c| c.insecure_cookie = true).await;
    let l = s.login().await;
    let line = rt_set_cookie_line(&l.headers).expect("cookie");
    assert!(!line.contains("Secure"), "{line}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/auth"] {
        assert!(line.contains(attr), "{line}");
    }
}

#[tokio::test]
async fn static_directories_are_served_with_module_and_wasm_types() {
    let dir = std::env::temp_dir().join(format!("auth-server-static-{}", std::process::id()));
    let (www, pkg) = (dir.join("www"), dir.join("pkg"));
    std::fs::create_dir_all(&www).expect("mkdir");
    std::fs::create_dir_all(&pkg).expect("mkdir");
    std::fs::write(www.join("index.html"), "<!doctype html><title>demo</title>").expect("write");
    std::fs::write(www.join("app.js"), "export const x = 1;").expect("write");
    std::fs::write(pkg.join("index.js"), "export default 1;").expect("write");
    std::fs::write(pkg.join("index_bg.wasm"), b"\0asm\x01\0\0\0").expect("write");
    let (w, p) = (www.clone(), pkg.clone());
    let s = Srv::with(move |c| {
        c.www = Some(w);
        c.pkg = Some(p);
    })
    .await;
    let ct = |r: &reqwest::Response| {
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let r = s.http.get(s.url("/")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(ct(&r).starts_with("text/html"));
    let r = s.http.get(s.url("/app.js")).send().await.expect("send");
    assert!(ct(&r).starts_with("text/javascript"), "{}", ct(&r));
    let r = s
        .http
        .get(s.url("/pkg/index.js"))
        .send()
        .await
        .expect("send");
    assert!(ct(&r).starts_with("text/javascript"));
    let r = s
        .http
        .get(s.url("/pkg/index_bg.wasm"))
        .send()
        .await
        .expect("send");
    assert_eq!(ct(&r), "application/wasm");
    assert_eq!(r.bytes().await.expect("bytes").as_ref(), b"\0asm\x01\0\0\0");
    assert_eq!(
        s.http
            .get(s.url("/pkg/missing.js"))
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.http
            .get(s.url("/pkg/../../etc/passwd"))
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::NOT_FOUND
    );
    // API routes still win over the static fallback.
    assert_eq!(
        s.http
            .get(s.url("/api/me"))
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The binary binds port 0 and prints the bound address as `listening on http://127.0.0.1:PORT`.
#[test]
fn binary_prints_the_bound_address_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auth-server"))
        .args(["--addr", "127.0.0.1:0", "--demo", "--log", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).expect("read");
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .map(str::to_string);
    let port_ok = url
        .as_deref()
        .and_then(|u| u.strip_prefix("http://127.0.0.1:"))
        .and_then(|p| p.parse::<u16>().ok())
        .is_some_and(|p| p != 0);
    let health = url.as_deref().map(|u| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let c = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client");
            c.get(format!("{u}/demo/stats"))
                .send()
                .await
                .map(|r| r.status())
        })
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(port_ok, "first stdout line was {first:?}");
    assert!(matches!(health, Some(Ok(StatusCode::OK))), "{health:?}");
}

#[test]
fn binary_flags_have_env_equivalents() {
    let out = Command::new(env!("CARGO_BIN_EXE_auth-server"))
        .arg("--help")
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--addr",
        "--access-ttl",
        "--refresh-idle-ttl",
        "--session-max",
        "--reuse-grace",
        "--www",
        "--pkg",
        "--demo",
        "--insecure-cookie",
        "--allowed-origin",
        "--login-rate-per-min",
        "--refresh-rate-per-min",
        "--refresh-ip-rate-per-5min",
        "--key-rotate-every",
        "--leeway",
        "--legacy-hmac-secret-file",
        "--legacy-public-key-file",
        "--legacy-subject-claim",
        "--legacy-phase",
        "--legacy-grace",
        "--legacy-cohort-percent",
        "--legacy-sunset",
        "--admin-secret-file",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    for env in [
        "AUTH_ADDR",
        "AUTH_ACCESS_TTL",
        "AUTH_REUSE_GRACE",
        "AUTH_DEMO",
        "AUTH_LEGACY_HMAC_SECRET_FILE",
        "AUTH_LEGACY_PUBLIC_KEY_FILE",
        "AUTH_LEGACY_SUBJECT_CLAIM",
        "AUTH_LEGACY_PHASE",
        "AUTH_LEGACY_GRACE",
        "AUTH_ADMIN_SECRET_FILE",
    ] {
        assert!(help.contains(env), "{env} missing from --help");
    }
}

/// Every flag added for issues 8, 9 and 14 (DPoP) is in `--help` with its environment variable, and in
/// server/README.md's flag table with both on one line.
#[test]
fn hardening_flags_are_in_help_and_in_the_readme() {
    let out = Command::new(env!("CARGO_BIN_EXE_auth-server"))
        .arg("--help")
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("server/README.md");
    for (flag, env) in [
        ("--header-read-timeout", "AUTH_HEADER_READ_TIMEOUT"),
        ("--keep-alive-timeout", "AUTH_KEEP_ALIVE_TIMEOUT"),
        ("--max-connections", "AUTH_MAX_CONNECTIONS"),
        ("--max-connections-per-ip", "AUTH_MAX_CONNECTIONS_PER_IP"),
        ("--body-timeout", "AUTH_BODY_TIMEOUT"),
        ("--max-buffered-bytes", "AUTH_MAX_BUFFERED_BYTES"),
        ("--shutdown-grace", "AUTH_SHUTDOWN_GRACE"),
        ("--trusted-proxy", "AUTH_TRUSTED_PROXIES"),
        ("--client-ip-header", "AUTH_CLIENT_IP_HEADER"),
        ("--cookie-path", "AUTH_COOKIE_PATH"),
        ("--dpop", "AUTH_DPOP"),
        ("--dpop-proof-window", "AUTH_DPOP_PROOF_WINDOW"),
        ("--dpop-nonce-rotate", "AUTH_DPOP_NONCE_ROTATE"),
        ("--dpop-htu-base", "AUTH_DPOP_HTU_BASE"),
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
        assert!(help.contains(env), "{env} missing from --help");
        assert!(
            readme
                .lines()
                .any(|l| l.starts_with(&format!("| `{flag}`")) && l.contains(&format!("`{env}`"))),
            "{flag} / {env} missing from the README's flag table"
        );
    }
}
