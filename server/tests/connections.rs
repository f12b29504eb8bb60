//! S41: hostile connections. Slow request heads and idle keep-alive connections are closed by
//! deadlines while a control client keeps being answered; the connection cap refuses extra
//! connections and counts them. Raw TCP clients on loopback; every wait is bounded.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound on any single wait in these tests; reaching it fails the test instead of hanging.
const SAFETY: Duration = Duration::from_secs(30);

/// The server's counter, read in-process (so it can be read while the connection cap is full).
fn metric(s: &Srv, series: &str) -> u64 {
    let text = s.running.state.metrics.render();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("metric {series} not found"))
}

async fn connect(s: &Srv) -> TcpStream {
    TcpStream::connect(s.running.addr).await.expect("connect")
}

/// A connection from another loopback address (127.0.0.2), as another client would have.
async fn connect_from(s: &Srv, local: &str) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{local}:0").parse().expect("addr"))
        .expect("bind");
    sock.connect(s.running.addr).await.expect("connect")
}

/// Reads until the server closes the connection; returns what was read, or `None` if the
/// connection was still open after [`SAFETY`].
async fn read_until_closed(c: &mut TcpStream) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let res = tokio::time::timeout(SAFETY, async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    res.ok().map(|()| all)
}

/// Sends one complete `GET /healthz` and reads its response head; the connection stays open.
async fn one_request(c: &mut TcpStream) -> String {
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(SAFETY, async {
        while !got.ends_with(b"ok\n") {
            let n = c.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before the response");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("response within the safety bound");
    String::from_utf8_lossy(&got).into_owned()
}

async fn healthz(s: &Srv) -> StatusCode {
    s.http
        .get(s.url("/healthz"))
        .send()
        .await
        .expect("control request")
        .status()
}

/// Sends a request head one byte at a time, a byte every 200 ms, until the server closes the
/// connection or the head runs out (60 bytes of padding: 12 s, far beyond the 1 s deadline).
/// Returns whether the server closed it first.
async fn trickle_head(mut c: TcpStream) -> bool {
    if c.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .await
        .is_err()
    {
        return true;
    }
    let mut buf = [0u8; 256];
    for _ in 0..60 {
        if c.write_all(b"a").await.is_err() {
            return true;
        }
        match tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await {
            Err(_) => {} // nothing from the server yet: keep trickling
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // Whatever the server says (a 408), the head was never completed: wait for the close.
            Ok(Ok(_)) => return read_until_closed(&mut c).await.is_some(),
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s41_slow_request_heads_are_closed_while_others_are_served() {
    // The slow clients come from another address (127.0.0.2), without a per-address cap, so
    // only the deadline can free their connections.
    let s = Srv::with(|c| {
        c.header_read_timeout = 1;
        c.keep_alive_timeout = 0;
        c.max_connections_per_ip = 0;
    })
    .await;
    const SLOW: usize = 200;
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        slow.push(tokio::spawn(trickle_head(
            connect_from(&s, "127.0.0.2").await,
        )));
    }
    // While they trickle, a control client is answered every time.
    for _ in 0..20 {
        assert_eq!(healthz(&s).await, StatusCode::OK);
    }
    for h in slow {
        assert!(
            h.await.expect("task"),
            "a slow head was still open after 60 bytes"
        );
    }
    assert!(
        metric(&s, "auth_connection_timeouts_total{reason=\"header_read\"}") >= SLOW as u64,
        "each slow head is counted"
    );
    assert_eq!(healthz(&s).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s41_idle_keep_alive_connections_are_closed_while_others_are_served() {
    let s = Srv::with(|c| {
        c.header_read_timeout = 0;
        c.keep_alive_timeout = 1;
        c.max_connections_per_ip = 0;
    })
    .await;
    const IDLE: usize = 100;
    let mut idle = Vec::new();
    for i in 0..IDLE {
        let mut c = connect_from(&s, "127.0.0.2").await;
        // Half of them after one request (kept alive), half without ever sending anything.
        if i % 2 == 0 {
            let head = one_request(&mut c).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        }
        idle.push(c);
    }
    for _ in 0..20 {
        assert_eq!(healthz(&s).await, StatusCode::OK);
    }
    for mut c in idle {
        let rest = read_until_closed(&mut c)
            .await
            .expect("the server closed the idle connection");
        assert!(rest.is_empty(), "no response to an idle connection");
    }
    assert!(metric(&s, "auth_connection_timeouts_total{reason=\"keep_alive\"}") >= IDLE as u64);
    assert_eq!(healthz(&s).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s41_a_connection_in_use_is_not_closed_as_idle() {
    // A request whose body pauses longer than the keep-alive deadline (but inside the request
    // deadlines) is answered: only connections with nothing in flight are idle.
    let s = Srv::with(|c| c.keep_alive_timeout = 1).await;
    let l = s.login().await;
    let mut c = connect(&s).await;
    let head = format!(
        "POST /api/echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Length: 3\r\n\r\n",
        l.at
    );
    c.write_all(head.as_bytes()).await.expect("write");
    for b in [b"a", b"b", b"c"] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        c.write_all(b).await.expect("write");
    }
    let mut got = vec![0u8; 512];
    let n = tokio::time::timeout(SAFETY, c.read(&mut got))
        .await
        .expect("answer")
        .expect("read");
    let text = String::from_utf8_lossy(&got[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s41_connection_cap_refuses_extra_connections_and_counts_them() {
    const CAP: usize = 5;
    let s = Srv::with(|c| {
        c.max_connections = CAP as u32;
        c.keep_alive_timeout = 0;
        c.header_read_timeout = 0;
    })
    .await;
    // CAP connections, each proven accepted by an answered request, then held open.
    let mut held = Vec::new();
    for _ in 0..CAP {
        let mut c = connect(&s).await;
        one_request(&mut c).await;
        held.push(c);
    }
    assert_eq!(metric(&s, "auth_connections_open"), CAP as u64);
    // One more: the server closes it without an answer.
    let mut extra = connect(&s).await;
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let got = read_until_closed(&mut extra)
        .await
        .expect("the extra connection was closed");
    assert!(got.is_empty(), "no answer beyond the cap");
    assert!(metric(&s, "auth_connections_refused_total{limit=\"total\"}") >= 1);
    // The held connections were not disturbed.
    let head = one_request(&mut held[0]).await;
    assert!(head.starts_with("HTTP/1.1 200"));
    // Once they go away, a new client is served again (the server notices the closes on its own
    // schedule: retry a bounded number of times).
    drop(held);
    let mut served = false;
    for _ in 0..100 {
        if let Ok(r) = s.http.get(s.url("/healthz")).send().await {
            served = r.status() == StatusCode::OK;
            if served {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "a client is served once the cap frees up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s41_one_address_cannot_take_every_connection() {
    let s = Srv::with(|c| {
        c.max_connections = 10;
        c.max_connections_per_ip = 3;
        c.keep_alive_timeout = 0;
        c.header_read_timeout = 0;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from(&s, "127.0.0.2").await;
        one_request(&mut c).await;
        held.push(c);
    }
    // The fourth from the same address is closed without an answer...
    let mut extra = connect_from(&s, "127.0.0.2").await;
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let got = read_until_closed(&mut extra)
        .await
        .expect("the extra connection was closed");
    assert!(got.is_empty(), "no answer beyond the per-address cap");
    assert_eq!(
        metric(&s, "auth_connections_refused_total{limit=\"per_ip\"}"),
        1
    );
    // ...while another address is served, and the held ones still work.
    assert_eq!(healthz(&s).await, StatusCode::OK);
    assert!(one_request(&mut held[0]).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s41_trusted_proxies_are_not_limited_per_address() {
    let s = Srv::with(|c| {
        c.max_connections_per_ip = 2;
        c.keep_alive_timeout = 0;
        c.trusted_proxies =
            vec![auth_server::clientip::parse_trusted_proxy("127.0.0.2").expect("net")];
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut c = connect_from(&s, "127.0.0.2").await;
        assert!(one_request(&mut c).await.starts_with("HTTP/1.1 200"));
        held.push(c);
    }
    assert_eq!(
        metric(&s, "auth_connections_refused_total{limit=\"per_ip\"}"),
        0
    );
}
