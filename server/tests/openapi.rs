//! server/openapi.json is the server's HTTP contract; these tests keep it true.
//!
//! 1. The operations it describes are exactly the routes the router declares (read from server/src/routes/).
//! 2. Against the real server on loopback, every operation is driven into every status it documents, and every
//!    answer the server gives is documented: its status, its media type, its required headers (`Set-Cookie`,
//!    `Retry-After`, `WWW-Authenticate`, `Cache-Control`) and, when present, its optional ones (the legacy
//!    migration's `Deprecation`, `Sunset`, `Link`) with their `const`/`enum` values, and its body, validated
//!    against the schema. The validator below knows the keywords the spec uses and refuses any other, so the
//!    spec cannot say something this test silently ignores; `pattern` alone is left to schemathesis
//!    (scripts/api-fuzz.sh), which validates the same answers with a complete JSON Schema implementation.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Srv;
use reqwest::{Method, Response};
use serde_json::{json, Value};

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let text = std::fs::read_to_string(path).expect("server/openapi.json");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// The (METHOD, path) pairs of the spec.
fn spec_operations(spec: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// The (METHOD, path) pairs the router declares: every `.route("<path>", get(…).post(…))` in the routes
/// (rustfmt may break the line after `.route(`).
fn router_operations() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes");
    let mut ops = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("src/routes") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = rest[at + 7..].trim_start();
            let Some(quoted) = rest.strip_prefix('"') else {
                continue;
            };
            rest = quoted;
            let end = rest.find('"').expect("closing quote");
            let path = rest[..end].to_string();
            // The method router: up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let mut close = rest.len();
            for (i, c) in rest[end..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    close = end + i;
                    break;
                }
            }
            let handler = &rest[end..close];
            for m in METHODS {
                let call = format!("{m}(");
                let found = handler.match_indices(&call).any(|(i, _)| {
                    i == 0
                        || !handler.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && handler.as_bytes()[i - 1] != b'_'
                });
                if found {
                    ops.insert((m.to_uppercase(), path.clone()));
                }
            }
            rest = &rest[close..];
        }
    }
    ops
}

#[test]
fn openapi_describes_exactly_the_routes_the_router_serves() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let described = spec_operations(&spec);
    let served = router_operations();
    assert!(
        served.len() >= 14,
        "the route scan found too little: {served:?}"
    );
    let undocumented: Vec<_> = served.difference(&described).collect();
    let phantom: Vec<_> = described.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes the router serves but server/openapi.json does not describe: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "operations server/openapi.json describes but the router does not serve: {phantom:?}"
    );
    // Every operation has an id, a security requirement (possibly none) and documented answers.
    for (m, p) in &described {
        let op = &spec["paths"][p][m.to_lowercase()];
        assert!(op["operationId"].is_string(), "{m} {p}: operationId");
        assert!(
            op["security"].is_array(),
            "{m} {p}: security (use [] for none)"
        );
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{m} {p}: responses"
        );
    }
}

// ------------------------------------------------------------------ a small JSON Schema validator

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let ptr = r.strip_prefix('#').expect("local $ref");
            resolve(
                spec,
                spec.pointer(ptr)
                    .unwrap_or_else(|| panic!("dangling $ref {r}")),
            )
        }
        None => v,
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type {other}"),
    }
}

/// Validates `v` against `schema`; returns the violations (empty when valid).
fn validate(spec: &Value, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    let Some(obj) = schema.as_object() else {
        if schema == &Value::Bool(false) {
            out.push(format!("{at}: no value allowed"));
        }
        return;
    };
    for (k, s) in obj {
        match k.as_str() {
            "$ref" | "description" | "examples" | "example" | "title" => {}
            // Checked by schemathesis (scripts/api-fuzz.sh) with a full implementation; see the module doc.
            "pattern" => {}
            "type" => {
                let ok = match s {
                    Value::String(t) => type_matches(t, v),
                    Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().expect("type name"), v)),
                    _ => panic!("bad type {s}"),
                };
                if !ok {
                    out.push(format!("{at}: {v} is not of type {s}"));
                }
            }
            "const" => {
                if v != s {
                    out.push(format!("{at}: {v} is not {s}"));
                }
            }
            "enum" => {
                if !s.as_array().expect("enum").contains(v) {
                    out.push(format!("{at}: {v} is not one of {s}"));
                }
            }
            "oneOf" => {
                let subs = s.as_array().expect("oneOf");
                let valid = subs
                    .iter()
                    .filter(|sub| {
                        let mut e = Vec::new();
                        validate(spec, sub, v, at, &mut e);
                        e.is_empty()
                    })
                    .count();
                if valid != 1 {
                    out.push(format!("{at}: {v} matches {valid} of the {} oneOf schemas, not exactly one", subs.len()));
                }
            }
            "allOf" => {
                for sub in s.as_array().expect("allOf") {
                    validate(spec, sub, v, at, out);
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for name in s.as_array().expect("required") {
                        let name = name.as_str().expect("name");
                        if !o.contains_key(name) {
                            out.push(format!("{at}: missing {name}"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (name, sub) in s.as_object().expect("properties") {
                        if let Some(x) = o.get(name) {
                            validate(spec, sub, x, &format!("{at}.{name}"), out);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let known: BTreeSet<&str> = obj
                        .get("properties")
                        .and_then(Value::as_object)
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    for (name, x) in o {
                        if !known.contains(name.as_str()) {
                            match s {
                                Value::Bool(false) => out.push(format!("{at}: unexpected member {name}")),
                                Value::Bool(true) => {}
                                sub => validate(spec, sub, x, &format!("{at}.{name}"), out),
                            }
                        }
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    for (i, x) in a.iter().enumerate() {
                        validate(spec, s, x, &format!("{at}[{i}]"), out);
                    }
                }
            }
            "minLength" => {
                if v.as_str().is_some_and(|t| (t.chars().count() as u64) < s.as_u64().expect("n")) {
                    out.push(format!("{at}: shorter than {s}"));
                }
            }
            "minimum" => {
                if v.as_f64().is_some_and(|x| x < s.as_f64().expect("n")) {
                    out.push(format!("{at}: {v} < {s}"));
                }
            }
            "maximum" => {
                if v.as_f64().is_some_and(|x| x > s.as_f64().expect("n")) {
                    out.push(format!("{at}: {v} > {s}"));
                }
            }
            other => panic!("{at}: the spec uses the keyword {other:?}, which this test does not check: teach validate() or avoid it"),
        }
    }
}

#[test]
fn the_validator_refuses_what_it_should() {
    let spec = spec();
    let token = json!({"$ref": "#/components/schemas/TokenResponse"});
    let mut e = Vec::new();
    for kind in ["Bearer", "DPoP"] {
        validate(
            &spec,
            &token,
            &json!({"accessToken": "a.b.c", "expiresIn": 600, "tokenType": kind}),
            "$",
            &mut e,
        );
    }
    assert!(e.is_empty(), "{e:?}");
    for bad in [
        json!({"accessToken": "a.b.c", "expiresIn": 600}),
        json!({"accessToken": "a.b.c", "expiresIn": "600", "tokenType": "Bearer"}),
        json!({"accessToken": "a.b.c", "expiresIn": 0, "tokenType": "Bearer"}),
        json!({"accessToken": "a.b.c", "expiresIn": 600, "tokenType": "bearer"}),
        json!({"accessToken": "a.b.c", "expiresIn": 600, "tokenType": "Bearer", "refreshToken": "x"}),
    ] {
        let mut e = Vec::new();
        validate(&spec, &token, &bad, "$", &mut e);
        assert!(!e.is_empty(), "{bad} passed");
    }
    // `/api/me` answers either an access token's caller or a legacy one, never a mix.
    let me = json!({"$ref": "#/components/schemas/Me"});
    for good in [
        json!({"sub": "demo", "sid": "s1"}),
        json!({"sub": "demo", "sid": null, "legacy": true}),
    ] {
        let mut e = Vec::new();
        validate(&spec, &me, &good, "$", &mut e);
        assert!(e.is_empty(), "{good}: {e:?}");
    }
    for bad in [
        json!({"sub": "demo", "sid": null}),
        json!({"sub": "demo", "sid": "s1", "legacy": true}),
        json!({"sub": "demo", "sid": null, "legacy": false}),
        json!({"sub": "demo"}),
    ] {
        let mut e = Vec::new();
        validate(&spec, &me, &bad, "$", &mut e);
        assert!(!e.is_empty(), "{bad} passed");
    }
}

// ------------------------------------------------------------------ the live contract

struct Contract {
    spec: Value,
    /// (METHOD, path, status) seen.
    seen: BTreeSet<(String, String, String)>,
}

impl Contract {
    /// Checks one answer against the spec and records it.
    async fn check(&mut self, method: &str, path: &str, r: Response) -> (u16, Value) {
        let status = r.status().as_u16().to_string();
        let what = format!("{method} {path} → {status}");
        let op = &self.spec["paths"][path][method.to_lowercase()];
        assert!(
            op.is_object(),
            "{method} {path} is not in server/openapi.json"
        );
        let doc = op["responses"]
            .get(&status)
            .unwrap_or_else(|| panic!("{what}: status not documented in server/openapi.json"));
        let doc = resolve(&self.spec, doc).clone();
        // Headers.
        if let Some(hs) = doc.get("headers").and_then(Value::as_object) {
            for (name, h) in hs {
                let h = resolve(&self.spec, h);
                let got = r
                    .headers()
                    .get(name.as_str())
                    .map(|v| v.to_str().expect("ASCII header").to_string());
                match got {
                    None if h["required"] == true => {
                        panic!("{what}: required header {name} missing")
                    }
                    None => {}
                    Some(v) => {
                        let mut e = Vec::new();
                        validate(
                            &self.spec,
                            &h["schema"],
                            &Value::String(v.clone()),
                            name,
                            &mut e,
                        );
                        assert!(e.is_empty(), "{what}: header {name}: {v:?}: {e:?}");
                    }
                }
            }
        }
        // Media type and body.
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let bytes = r.bytes().await.expect("body");
        let content = doc.get("content").and_then(Value::as_object);
        let body = match (content, ct) {
            (None, _) => {
                assert!(
                    bytes.is_empty(),
                    "{what}: a body where the spec documents none"
                );
                Value::Null
            }
            (Some(c), Some(ct)) => {
                let media = c.get(&ct).or_else(|| c.get("*/*")).unwrap_or_else(|| {
                    panic!(
                        "{what}: Content-Type {ct} not documented (documented: {:?})",
                        c.keys()
                    )
                });
                let value = if ct == "application/json" {
                    serde_json::from_slice(&bytes)
                        .unwrap_or_else(|e| panic!("{what}: not JSON ({e})"))
                } else {
                    Value::String(String::from_utf8(bytes.to_vec()).expect("UTF-8 text"))
                };
                let mut e = Vec::new();
                validate(&self.spec, &media["schema"], &value, "$", &mut e);
                assert!(
                    e.is_empty(),
                    "{what}: body {value} violates the schema: {e:?}"
                );
                value
            }
            (Some(_), None) => panic!("{what}: no Content-Type"),
        };
        self.seen
            .insert((method.to_string(), path.to_string(), status.clone()));
        (status.parse().expect("status"), body)
    }

    /// Every documented (operation, status) must have been seen.
    fn assert_all_seen(&self) {
        let mut missing = Vec::new();
        for (m, p) in spec_operations(&self.spec) {
            for status in self.spec["paths"][&p][m.to_lowercase()]["responses"]
                .as_object()
                .expect("responses")
                .keys()
            {
                if !self.seen.contains(&(m.clone(), p.clone(), status.clone())) {
                    missing.push(format!("{m} {p} → {status}"));
                }
            }
        }
        assert!(missing.is_empty(), "documented but never produced by this test (drive them, or drop them from the spec): {missing:?}");
    }
}

const ORIGIN: &str = "http://app.test";

/// A request with the CSRF headers of a browser on the allowed origin.
fn send(s: &Srv, method: &str, path: &str) -> reqwest::RequestBuilder {
    s.http
        .request(
            Method::from_bytes(method.as_bytes()).expect("method"),
            s.url(path),
        )
        .header("x-requested-with", "tm")
        .header("origin", ORIGIN)
}

fn json_body(b: reqwest::RequestBuilder, v: Value) -> reqwest::RequestBuilder {
    b.header("content-type", "application/json")
        .body(v.to_string())
}

async fn go(b: reqwest::RequestBuilder) -> Response {
    b.send().await.expect("send")
}

/// A request whose body has no declared length (`Transfer-Encoding: chunked`, which reqwest never sends for a
/// body it holds): `head` is the request line and headers, `body` goes in 1 MiB chunks. The answer is read to the
/// end (`Connection: close`) and handed over as a reqwest response.
async fn chunked(s: &Srv, head: &str, body: &[u8]) -> Response {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(s.running.addr)
        .await
        .expect("connect");
    let head = format!("{head}Host: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.write_all(head.as_bytes()).await.expect("write");
    // The server may answer and stop reading before the end: later writes may fail.
    for chunk in body.chunks(1 << 20) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if c.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = c.write_all(b"0\r\n\r\n").await;
    let mut raw = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut buf = [0u8; 8192];
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("an answer within 30 s");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8(raw[..split].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let mut r = axum::http::Response::builder().status(status);
    let mut is_chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').expect("header line");
        is_chunked |= name.eq_ignore_ascii_case("transfer-encoding")
            && value.trim().eq_ignore_ascii_case("chunked");
        if !name.eq_ignore_ascii_case("transfer-encoding")
            && !name.eq_ignore_ascii_case("content-length")
        {
            r = r.header(name.trim(), value.trim());
        }
    }
    let mut rest = &raw[split + 4..];
    let body = if is_chunked {
        let mut out = Vec::new();
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line");
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..eol]).expect("hex").trim(), 16)
                    .expect("size");
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 2 + size + 2..];
        }
        out
    } else {
        rest.to_vec()
    };
    Response::from(r.body(body).expect("response"))
}

/// The migration's secrets, written to files as the server reads them (as in tests/legacy.rs).
const LEGACY_SECRET: &str = "openapi-legacy-shared-secret";
const ADMIN: &str = "openapi-admin-secret";
const INTROSPECTION: &str = "openapi-introspection-secret";

fn temp_file(name: &str, content: &[u8]) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("wtm-openapi-{}", auth_server::tokens::random_id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write");
    p
}

/// A legacy token for `user` from `/demo/legacy-token` (checked against the spec like any answer).
async fn legacy_token(k: &mut Contract, s: &Srv, user: &str) -> String {
    let r = go(json_body(
        s.http.post(s.url("/demo/legacy-token")),
        json!({ "username": user }),
    ))
    .await;
    let (st, body) = k.check("POST", "/demo/legacy-token", r).await;
    assert_eq!(st, 200);
    body["token"].as_str().expect("legacy token").to_string()
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn every_answer_is_documented_and_every_documented_answer_happens() {
    let s = Srv::with(|c| {
        c.demo = true;
        // The migration as an operator configures it: a legacy HMAC key file and an admin secret file
        // (phase 0 at start; the test switches phases through /admin/* and /demo/*).
        c.legacy.hmac_secret_file =
            Some(temp_file("legacy", format!("{LEGACY_SECRET}\n").as_bytes()));
        c.legacy.admin_secret_file = Some(temp_file("admin", format!("{ADMIN}\n").as_bytes()));
        c.introspection_secret_file = Some(temp_file(
            "introspection",
            format!("{INTROSPECTION}\n").as_bytes(),
        ));
        c.allowed_origins = vec![ORIGIN.into()];
        c.login_rate_per_min = 0;
        c.refresh_rate_per_min = 0;
        c.refresh_ip_rate_per_5min = 0;
    })
    .await;
    let mut k = Contract {
        spec: spec(),
        seen: BTreeSet::new(),
    };
    let creds = json!({"username": "demo", "password": "demo"});

    // Login.
    let (_, login) = k
        .check(
            "POST",
            "/auth/login",
            go(json_body(send(&s, "POST", "/auth/login"), creds.clone())).await,
        )
        .await;
    let at = login["accessToken"].as_str().expect("token").to_string();
    let r = go(json_body(send(&s, "POST", "/auth/login"), creds.clone())).await;
    let rt = common::rt_cookie(r.headers()).expect("cookie");
    k.check("POST", "/auth/login", r).await;
    let wrong = json!({"username": "demo", "password": "nope"});
    assert_eq!(
        k.check(
            "POST",
            "/auth/login",
            go(json_body(send(&s, "POST", "/auth/login"), wrong)).await
        )
        .await
        .0,
        401
    );
    let mistyped = json!({"username": 1, "password": "demo"});
    assert_eq!(
        k.check(
            "POST",
            "/auth/login",
            go(json_body(send(&s, "POST", "/auth/login"), mistyped)).await
        )
        .await
        .0,
        400
    );
    let plain = send(&s, "POST", "/auth/login")
        .header("content-type", "text/plain")
        .body(creds.to_string());
    assert_eq!(k.check("POST", "/auth/login", go(plain).await).await.0, 415);
    let evil = json_body(
        s.http
            .post(s.url("/auth/login"))
            .header("origin", "https://evil.example"),
        creds.clone(),
    );
    assert_eq!(k.check("POST", "/auth/login", go(evil).await).await.0, 403);
    let big = send(&s, "POST", "/auth/login")
        .header("content-type", "application/json")
        .body(vec![b' '; 17 * 1024]);
    let r = go(big).await;
    assert_eq!(
        header(&r, "content-type"),
        Some("text/plain; charset=utf-8"),
        "declared: refused before reading"
    );
    assert_eq!(k.check("POST", "/auth/login", r).await.0, 413);
    let r = chunked(
        &s,
        "POST /auth/login HTTP/1.1\r\nContent-Type: application/json\r\n",
        &vec![b' '; 17 * 1024],
    )
    .await;
    let (st, e) = k.check("POST", "/auth/login", r).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (413, Some("payload_too_large")),
        "chunked: refused once over"
    );

    // Refresh.
    let cookie = |b: reqwest::RequestBuilder, rt: &str| b.header("cookie", format!("rt={rt}"));
    let r = go(cookie(send(&s, "POST", "/auth/refresh"), &rt)).await;
    let rt2 = common::rt_cookie(r.headers()).expect("rotated");
    assert_eq!(k.check("POST", "/auth/refresh", r).await.0, 200);
    assert_eq!(
        k.check(
            "POST",
            "/auth/refresh",
            go(send(&s, "POST", "/auth/refresh")).await
        )
        .await
        .0,
        401
    );
    let no_xrw = s
        .http
        .post(s.url("/auth/refresh"))
        .header("origin", ORIGIN)
        .header("cookie", format!("rt={rt2}"));
    assert_eq!(
        k.check("POST", "/auth/refresh", go(no_xrw).await).await.0,
        403
    );
    let form = cookie(send(&s, "POST", "/auth/refresh"), &rt2)
        .header("content-type", "application/x-www-form-urlencoded");
    assert_eq!(
        k.check("POST", "/auth/refresh", go(form).await).await.0,
        415
    );
    let fail = json_body(
        s.http.post(s.url("/demo/fail-refresh")),
        json!({"seconds": 5}),
    );
    assert_eq!(
        k.check("POST", "/demo/fail-refresh", go(fail).await)
            .await
            .0,
        200
    );
    assert_eq!(
        k.check(
            "POST",
            "/auth/refresh",
            go(cookie(send(&s, "POST", "/auth/refresh"), &rt2)).await
        )
        .await
        .0,
        503
    );
    let end = json_body(
        s.http.post(s.url("/demo/fail-refresh")),
        json!({"seconds": 0}),
    );
    assert_eq!(
        k.check("POST", "/demo/fail-refresh", go(end).await).await.0,
        200
    );
    let bad = json_body(
        s.http.post(s.url("/demo/fail-refresh")),
        json!({"seconds": -1}),
    );
    assert_eq!(
        k.check("POST", "/demo/fail-refresh", go(bad).await).await.0,
        400
    );

    // API.
    let bearer =
        |b: reqwest::RequestBuilder, t: &str| b.header("authorization", format!("Bearer {t}"));
    assert_eq!(
        k.check(
            "GET",
            "/api/me",
            go(bearer(s.http.get(s.url("/api/me")), &at)).await
        )
        .await
        .0,
        200
    );
    assert_eq!(
        k.check("GET", "/api/me", go(s.http.get(s.url("/api/me"))).await)
            .await
            .0,
        401
    );
    let echo = bearer(s.http.post(s.url("/api/echo")), &at)
        .header("content-type", "text/plain")
        .body("hello");
    let (_, e) = k.check("POST", "/api/echo", go(echo).await).await;
    assert_eq!(e["length"], 5);
    assert_eq!(
        k.check(
            "POST",
            "/api/echo",
            go(bearer(s.http.post(s.url("/api/echo")), "nope")).await
        )
        .await
        .0,
        401
    );
    let huge = bearer(s.http.post(s.url("/api/echo")), &at).body(vec![0u8; 16 * 1024 * 1024 + 1]);
    let r = go(huge).await;
    assert_eq!(
        header(&r, "content-type"),
        Some("text/plain; charset=utf-8"),
        "declared: refused before reading"
    );
    assert_eq!(k.check("POST", "/api/echo", r).await.0, 413);
    let r = chunked(
        &s,
        &format!("POST /api/echo HTTP/1.1\r\nAuthorization: Bearer {at}\r\n"),
        &vec![0u8; 16 * 1024 * 1024 + 1],
    )
    .await;
    let (st, e) = k.check("POST", "/api/echo", r).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (413, Some("payload_too_large")),
        "chunked: refused once over"
    );

    // Keys and operations.
    assert_eq!(
        k.check(
            "GET",
            "/.well-known/jwks.json",
            go(s.http.get(s.url("/.well-known/jwks.json"))).await
        )
        .await
        .0,
        200
    );
    assert_eq!(
        k.check("GET", "/metrics", go(s.http.get(s.url("/metrics"))).await)
            .await
            .0,
        200
    );
    assert_eq!(
        k.check("GET", "/healthz", go(s.http.get(s.url("/healthz"))).await)
            .await
            .0,
        200
    );
    assert_eq!(
        k.check(
            "GET",
            "/demo/stats",
            go(s.http.get(s.url("/demo/stats"))).await
        )
        .await
        .0,
        200
    );

    // Introspection (RFC 7662), for APIs behind the JWKS.
    let form = |secret: &str, body: String| {
        s.http
            .post(s.url("/auth/introspect"))
            .header("authorization", format!("Bearer {secret}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let (st, active) = k
        .check(
            "POST",
            "/auth/introspect",
            go(form(INTROSPECTION, format!("token={at}"))).await,
        )
        .await;
    assert_eq!(
        (st, active["active"].as_bool(), active["sub"].as_str()),
        (200, Some(true), Some("demo"))
    );
    let (st, inactive) = k
        .check(
            "POST",
            "/auth/introspect",
            go(form(
                INTROSPECTION,
                "token=nope&token_type_hint=access_token".into(),
            ))
            .await,
        )
        .await;
    assert_eq!((st, inactive), (200, json!({"active": false})));
    for body in [
        String::new(),
        "token=".into(),
        format!("token={at}&token={at}"),
    ] {
        assert_eq!(
            k.check(
                "POST",
                "/auth/introspect",
                go(form(INTROSPECTION, body.clone())).await
            )
            .await
            .0,
            400,
            "{body:.12}"
        );
    }
    for secret in ["wrong-secret", ADMIN] {
        assert_eq!(
            k.check(
                "POST",
                "/auth/introspect",
                go(form(secret, format!("token={at}"))).await
            )
            .await
            .0,
            401
        );
    }
    let no_secret = s
        .http
        .post(s.url("/auth/introspect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={at}"));
    assert_eq!(
        k.check("POST", "/auth/introspect", go(no_secret).await)
            .await
            .0,
        401
    );
    let as_json = json_body(
        s.http
            .post(s.url("/auth/introspect"))
            .bearer_auth(INTROSPECTION),
        json!({ "token": at }),
    );
    assert_eq!(
        k.check("POST", "/auth/introspect", go(as_json).await)
            .await
            .0,
        415
    );
    assert_eq!(
        k.check(
            "POST",
            "/auth/introspect",
            go(form(INTROSPECTION, "x".repeat(17 * 1024))).await
        )
        .await
        .0,
        413
    );

    // Demo controls.
    let (_, legacy) = k
        .check(
            "POST",
            "/demo/legacy-token",
            go(json_body(
                s.http.post(s.url("/demo/legacy-token")),
                json!({}),
            ))
            .await,
        )
        .await;
    let legacy = legacy["token"].as_str().expect("legacy").to_string();
    let bad = json_body(
        s.http.post(s.url("/demo/legacy-token")),
        json!({"username": 5}),
    );
    assert_eq!(
        k.check("POST", "/demo/legacy-token", go(bad).await).await.0,
        400
    );
    for p in [
        "/demo/fail-refresh",
        "/demo/legacy-token",
        "/demo/legacy-phase",
    ] {
        let big = s
            .http
            .post(s.url(p))
            .header("content-type", "application/json")
            .body(vec![b' '; 17 * 1024]);
        assert_eq!(k.check("POST", p, go(big).await).await.0, 413, "{p}");
    }
    let (_, login2) = k
        .check(
            "POST",
            "/auth/login",
            go(json_body(send(&s, "POST", "/auth/login"), creds.clone())).await,
        )
        .await;
    let at2 = login2["accessToken"].as_str().expect("token").to_string();
    assert_eq!(
        k.check(
            "POST",
            "/demo/revoke-access",
            go(bearer(s.http.post(s.url("/demo/revoke-access")), &at2)).await
        )
        .await
        .0,
        200
    );
    assert_eq!(
        k.check(
            "POST",
            "/demo/revoke-access",
            go(s.http.post(s.url("/demo/revoke-access"))).await
        )
        .await
        .0,
        401
    );

    // Legacy migration, phase 0: a legacy token is its user at the API (no session), and nothing is announced.
    let me = |t: &str| bearer(s.http.get(s.url("/api/me")), t);
    let echo = |t: &str| {
        bearer(s.http.post(s.url("/api/echo")), t)
            .header("content-type", "text/plain")
            .body("hi")
    };
    let r = go(me(&legacy)).await;
    assert_eq!(header(&r, "deprecation"), None, "phase 0 announces nothing");
    let (st, who) = k.check("GET", "/api/me", r).await;
    assert_eq!(
        (st, who),
        (200, json!({"sub": "demo", "sid": null, "legacy": true}))
    );

    // Admin: the bearer admin secret, and nothing without it.
    let admin = |m: &str, p: &str, secret: Option<&str>| {
        let b = s
            .http
            .request(Method::from_bytes(m.as_bytes()).expect("method"), s.url(p));
        match secret {
            Some(x) => b.header("authorization", format!("Bearer {x}")),
            None => b,
        }
    };
    for secret in [None, Some("wrong-secret"), Some(LEGACY_SECRET)] {
        assert_eq!(
            k.check(
                "GET",
                "/admin/legacy",
                go(admin("GET", "/admin/legacy", secret)).await
            )
            .await
            .0,
            401,
            "{secret:?}"
        );
        let r = go(json_body(
            admin("POST", "/admin/legacy/phase", secret),
            json!({"phase": 4}),
        ))
        .await;
        assert_eq!(
            k.check("POST", "/admin/legacy/phase", r).await.0,
            401,
            "{secret:?}"
        );
        let r = go(admin("POST", "/admin/legacy/kill-switch", secret)).await;
        assert_eq!(
            k.check("POST", "/admin/legacy/kill-switch", r).await.0,
            401,
            "{secret:?}"
        );
    }
    let (st, report) = k
        .check(
            "GET",
            "/admin/legacy",
            go(admin("GET", "/admin/legacy", Some(ADMIN))).await,
        )
        .await;
    assert_eq!(
        (st, report["phase"].as_u64(), report["legacyKey"].as_bool()),
        (200, Some(0), Some(true))
    );
    assert_eq!(report["report"]["apiLegacyRequests"], 1, "{report}");
    let set = |b: reqwest::RequestBuilder, v: Value| json_body(b, v);
    let (st, report) = k
        .check(
            "POST",
            "/admin/legacy/phase",
            go(set(
                admin("POST", "/admin/legacy/phase", Some(ADMIN)),
                json!({"phase": 1}),
            ))
            .await,
        )
        .await;
    assert_eq!(
        (
            st,
            report["phase"].as_u64(),
            report["previousPhase"].as_u64()
        ),
        (200, Some(1), Some(0))
    );
    for bad in [
        json!({"phase": 5}),
        json!({"phase": 1, "cohortPercent": 101}),
        json!({"phase": 1, "other": 1}),
        json!({}),
    ] {
        let r = go(set(
            admin("POST", "/admin/legacy/phase", Some(ADMIN)),
            bad.clone(),
        ))
        .await;
        assert_eq!(
            k.check("POST", "/admin/legacy/phase", r).await.0,
            400,
            "{bad}"
        );
    }
    let big = admin("POST", "/admin/legacy/phase", Some(ADMIN))
        .header("content-type", "application/json")
        .body(vec![b' '; 17 * 1024]);
    assert_eq!(
        k.check("POST", "/admin/legacy/phase", go(big).await)
            .await
            .0,
        413
    );
    let (st, back) = k
        .check(
            "POST",
            "/admin/legacy/kill-switch",
            go(admin("POST", "/admin/legacy/kill-switch", Some(ADMIN))).await,
        )
        .await;
    assert_eq!(
        (st, back["reverted"].as_bool(), back["phase"].as_u64()),
        (200, Some(true), Some(0))
    );
    // The same switch through /demo/* (no secret; only with --demo).
    let demo_phase = |v: Value| json_body(s.http.post(s.url("/demo/legacy-phase")), v);
    let (st, report) = k
        .check(
            "POST",
            "/demo/legacy-phase",
            go(demo_phase(json!({"phase": 1}))).await,
        )
        .await;
    assert_eq!((st, report["phase"].as_u64()), (200, Some(1)));
    assert_eq!(
        k.check(
            "POST",
            "/demo/legacy-phase",
            go(demo_phase(json!({"phase": "1"}))).await
        )
        .await
        .0,
        400
    );

    // Phase 1: still its user, now with Deprecation, Sunset and Link.
    for r in [go(me(&legacy)).await, go(echo(&legacy)).await] {
        for h in ["deprecation", "sunset", "link"] {
            assert!(
                r.headers().contains_key(h),
                "phase 1 announces the migration: {h}"
            );
        }
        let path = r.url().path().to_string();
        let m = if path == "/api/me" { "GET" } else { "POST" };
        assert_eq!(k.check(m, &path, r).await.0, 200, "{path}");
    }

    // Legacy upgrade: the first exchange starts a session, the same token at once gets that session again
    // (no cookie), and after the reuse grace it is a replay.
    let up = |t: &str| bearer(send(&s, "POST", "/auth/legacy/upgrade"), t);
    let r = go(up(&legacy)).await;
    assert!(
        common::rt_cookie(r.headers()).is_some(),
        "the first exchange sets the cookie"
    );
    assert_eq!(k.check("POST", "/auth/legacy/upgrade", r).await.0, 200);
    let r = go(up(&legacy)).await;
    assert_eq!(
        header(&r, "set-cookie"),
        None,
        "a concurrent repeat starts no second session"
    );
    assert_eq!(k.check("POST", "/auth/legacy/upgrade", r).await.0, 200);
    s.advance(s.running.state.config.reuse_grace + 1);
    let (st, replay) = k
        .check("POST", "/auth/legacy/upgrade", go(up(&legacy)).await)
        .await;
    assert_eq!((st, replay["error"].as_str()), (401, Some("invalid_grant")));
    let (st, not_legacy) = k
        .check("POST", "/auth/legacy/upgrade", go(up(&at)).await)
        .await;
    assert_eq!(
        (st, not_legacy["error"].as_str()),
        (401, Some("invalid_token"))
    );
    let no_origin = bearer(
        s.http
            .post(s.url("/auth/legacy/upgrade"))
            .header("x-requested-with", "tm"),
        &legacy,
    );
    assert_eq!(
        k.check("POST", "/auth/legacy/upgrade", go(no_origin).await)
            .await
            .0,
        403
    );
    assert_eq!(
        k.check(
            "POST",
            "/auth/legacy/upgrade",
            go(up(&legacy).header("content-type", "text/plain")).await
        )
        .await
        .0,
        415
    );

    // Phase 2: refused at the API with a challenge that names the upgrade, which still works.
    let (st, _) = k
        .check(
            "POST",
            "/demo/legacy-phase",
            go(demo_phase(json!({"phase": 2}))).await,
        )
        .await;
    assert_eq!(st, 200);
    let grace = legacy_token(&mut k, &s, "grace").await;
    for r in [go(me(&grace)).await, go(echo(&grace)).await] {
        assert!(
            header(&r, "www-authenticate").is_some_and(|c| c.contains("/auth/legacy/upgrade")),
            "phase 2 challenge"
        );
        assert!(
            r.headers().contains_key("deprecation") && r.headers().contains_key("link"),
            "phase 2 headers"
        );
        let path = r.url().path().to_string();
        let m = if path == "/api/me" { "GET" } else { "POST" };
        assert_eq!(k.check(m, &path, r).await.0, 401, "{path}");
    }
    assert_eq!(
        k.check("POST", "/auth/legacy/upgrade", go(up(&grace)).await)
            .await
            .0,
        200
    );

    // Phase 3: refused everywhere, the upgrade included.
    let r = go(set(
        admin("POST", "/admin/legacy/phase", Some(ADMIN)),
        json!({"phase": 3, "graceSeconds": null, "cohortPercent": 100}),
    ))
    .await;
    assert_eq!(k.check("POST", "/admin/legacy/phase", r).await.0, 200);
    let late = legacy_token(&mut k, &s, "late").await;
    let r = go(me(&late)).await;
    assert!(
        header(&r, "www-authenticate").is_some_and(|c| c.contains("no longer accepted")),
        "phase 3 challenge"
    );
    assert_eq!(header(&r, "deprecation"), None);
    assert_eq!(k.check("GET", "/api/me", r).await.0, 401);
    let (st, retired) = k
        .check("POST", "/auth/legacy/upgrade", go(up(&late)).await)
        .await;
    assert_eq!(
        (st, retired["error"].as_str()),
        (401, Some("legacy_token_retired"))
    );
    let (st, back) = k
        .check(
            "POST",
            "/demo/legacy-kill-switch",
            go(s.http.post(s.url("/demo/legacy-kill-switch"))).await,
        )
        .await;
    assert_eq!(
        (st, back["reverted"].as_bool(), back["phase"].as_u64()),
        (200, Some(true), Some(2))
    );
    let (_, stats) = k
        .check(
            "GET",
            "/demo/stats",
            go(s.http.get(s.url("/demo/stats"))).await,
        )
        .await;
    assert_eq!(stats["legacy"]["report"]["upgrades"], 2, "{stats}");

    // 409: with a public legacy key the demo cannot mint.
    let pem = {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
        sk.public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem")
    };
    let public = Srv::with(|c| {
        c.demo = true;
        c.legacy.public_key_file = Some(temp_file("pub.pem", pem.as_bytes()));
    })
    .await;
    let r = go(json_body(
        public.http.post(public.url("/demo/legacy-token")),
        json!({}),
    ))
    .await;
    let (st, e) = k.check("POST", "/demo/legacy-token", r).await;
    assert_eq!((st, e["error"].as_str()), (409, Some("cannot_mint")));

    // Logout.
    assert_eq!(
        k.check(
            "POST",
            "/auth/logout",
            go(cookie(send(&s, "POST", "/auth/logout"), &rt2)).await
        )
        .await
        .0,
        200
    );
    let no_xrw = s.http.post(s.url("/auth/logout")).header("origin", ORIGIN);
    assert_eq!(
        k.check("POST", "/auth/logout", go(no_xrw).await).await.0,
        403
    );
    assert_eq!(
        k.check(
            "POST",
            "/auth/logout",
            go(send(&s, "POST", "/auth/logout").header("content-type", "text/plain")).await
        )
        .await
        .0,
        415
    );

    // 431 on every operation: an oversized Cookie is refused before anything else.
    let fat = format!("x={}", "a".repeat(9 * 1024));
    for (m, p) in spec_operations(&k.spec) {
        let r = go(send(&s, &m, &p).header("cookie", fat.clone())).await;
        assert_eq!(k.check(&m, &p, r).await.0, 431, "{m} {p}");
    }

    // 429: a second server with budgets of one.
    let limited = Srv::with(|c| {
        c.allowed_origins = vec![ORIGIN.into()];
        c.login_rate_per_min = 1;
        c.refresh_ip_rate_per_5min = 1;
    })
    .await;
    let mut statuses = BTreeMap::new();
    for _ in 0..2 {
        let r = go(json_body(
            send(&limited, "POST", "/auth/login"),
            creds.clone(),
        ))
        .await;
        *statuses
            .entry(("login", k.check("POST", "/auth/login", r).await.0))
            .or_insert(0) += 1;
        // The per-IP budget is charged by a well-formed cookie (an unknown one here), not by a missing one.
        let r = go(cookie(
            send(&limited, "POST", "/auth/refresh"),
            &"A".repeat(43),
        ))
        .await;
        *statuses
            .entry(("refresh", k.check("POST", "/auth/refresh", r).await.0))
            .or_insert(0) += 1;
    }
    assert_eq!(statuses.get(&("login", 429)), Some(&1), "{statuses:?}");
    assert_eq!(statuses.get(&("refresh", 429)), Some(&1), "{statuses:?}");

    // DPoP (`--dpop allowed`): the nonce challenge, a DPoP-bound token, refused proofs and DPoP challenges.
    let dp = Srv::with(|c| {
        c.allowed_origins = vec![ORIGIN.into()];
        c.dpop = auth_server::dpop::DpopMode::Allowed;
        c.demo = true;
    })
    .await;
    let key = common::DpopKey::new();
    let login_proof =
        |nonce: Option<&str>| key.proof(&dp, "POST", &dp.url("/auth/login"), nonce, None);
    let r = go(json_body(send(&dp, "POST", "/auth/login"), creds.clone())
        .header("dpop", login_proof(None)))
    .await;
    let nonce = header(&r, "dpop-nonce").expect("DPoP-Nonce").to_string();
    let (st, e) = k.check("POST", "/auth/login", r).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("use_dpop_nonce")));
    let r = go(json_body(send(&dp, "POST", "/auth/login"), creds.clone())
        .header("dpop", login_proof(Some(&nonce))))
    .await;
    let drt = common::rt_cookie(r.headers()).expect("cookie");
    let (st, body) = k.check("POST", "/auth/login", r).await;
    assert_eq!((st, body["tokenType"].as_str()), (200, Some("DPoP")));
    let dat = body["accessToken"].as_str().expect("token").to_string();
    let r =
        go(cookie(send(&dp, "POST", "/auth/refresh"), &drt).header("dpop", "not-a-proof")).await;
    let (st, e) = k.check("POST", "/auth/refresh", r).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_dpop_proof")));
    let dpop = |b: reqwest::RequestBuilder, path: &str, htm: &str| {
        let proof = key.proof(&dp, htm, &dp.url(path), Some(&nonce), Some(&dat));
        b.header("authorization", format!("DPoP {dat}"))
            .header("dpop", proof)
    };
    let (st, _) = k
        .check(
            "GET",
            "/api/me",
            go(dpop(dp.http.get(dp.url("/api/me")), "/api/me", "GET")).await,
        )
        .await;
    assert_eq!(st, 200);
    let r = go(json_body(
        dpop(dp.http.post(dp.url("/api/echo")), "/api/echo", "POST"),
        json!({"a": 1}),
    ))
    .await;
    assert_eq!(k.check("POST", "/api/echo", r).await.0, 200);
    for (auth, proof, code) in [
        (format!("Bearer {dat}"), None, "invalid_token"),
        (format!("DPoP {dat}"), None, "invalid_dpop_proof"),
        (
            format!("DPoP {dat}"),
            Some(key.proof(&dp, "GET", &dp.url("/api/me"), None, Some(&dat))),
            "use_dpop_nonce",
        ),
    ] {
        let mut b = dp.http.get(dp.url("/api/me")).header("authorization", auth);
        if let Some(p) = proof {
            b = b.header("dpop", p);
        }
        let r = go(b).await;
        let challenge = header(&r, "www-authenticate")
            .expect("challenge")
            .to_string();
        let (st, e) = k.check("GET", "/api/me", r).await;
        assert_eq!((st, e["error"].as_str()), (401, Some(code)));
        assert!(challenge.starts_with("DPoP "), "{challenge}");
    }

    // A DPoP-bound token sent as a bearer token to a demo control: the same DPoP challenge.
    let r = go(dp
        .http
        .post(dp.url("/demo/revoke-access"))
        .header("authorization", format!("Bearer {dat}")))
    .await;
    assert_eq!(
        header(&r, "www-authenticate"),
        Some(r#"DPoP error="invalid_token", algs="ES256""#)
    );
    assert_eq!(k.check("POST", "/demo/revoke-access", r).await.0, 401);

    // 503: a server that holds one session record at most refuses the next login and upgrade.
    let full = Srv::with(|c| {
        c.legacy.hmac_secret_file = Some(temp_file(
            "legacy-full",
            format!("{LEGACY_SECRET}\n").as_bytes(),
        ));
        c.allowed_origins = vec![ORIGIN.into()];
        c.max_sessions = 1;
    })
    .await;
    let r = go(json_body(send(&full, "POST", "/auth/login"), creds.clone())).await;
    assert_eq!(k.check("POST", "/auth/login", r).await.0, 200);
    let r = go(json_body(send(&full, "POST", "/auth/login"), creds.clone())).await;
    assert_eq!(k.check("POST", "/auth/login", r).await.0, 503);
    let legacy = full
        .running
        .state
        .mint_legacy_token("demo", true)
        .expect("legacy token");
    let r = go(bearer(send(&full, "POST", "/auth/legacy/upgrade"), &legacy)).await;
    assert_eq!(k.check("POST", "/auth/legacy/upgrade", r).await.0, 503);

    k.assert_all_seen();
}
