//! S42: request bodies. A declared oversize `Content-Length` is refused at once, a stalled body
//! times out, and the bytes buffered over all requests are bounded. Raw TCP clients on loopback
//! (reqwest always sends the body it declares); every wait is bounded.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound on any single wait; reaching it fails the test instead of hanging.
const SAFETY: Duration = Duration::from_secs(30);

async fn connect(s: &Srv) -> TcpStream {
    TcpStream::connect(s.running.addr).await.expect("connect")
}

/// Reads a response head (up to the blank line) within [`SAFETY`].
async fn response_head(c: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(SAFETY, async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = c.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed without an answer");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer within the safety bound");
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads until the server closes the connection; `true` if it did within [`SAFETY`].
async fn closed(c: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(SAFETY, async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

fn echo_head(at: &str, extra: &str) -> String {
    format!("POST /api/echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {at}\r\n{extra}\r\n")
}

const LOGIN_HEAD: &str =
    "POST /auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s42_declared_oversize_content_length_is_413_before_any_byte_is_read() {
    // No body deadline: without the up-front check these requests would wait for the body forever.
    let s = Srv::with(|c| c.body_timeout = 0).await;
    let l = s.login().await;
    let mut c = connect(&s).await;
    c.write_all(echo_head(&l.at, "Content-Length: 1000000000000\r\n").as_bytes())
        .await
        .expect("write");
    let head = response_head(&mut c).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    let mut c = connect(&s).await;
    c.write_all(format!("{LOGIN_HEAD}Content-Length: 1000000000000\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let head = response_head(&mut c).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // Just over each limit is refused too; nothing was buffered for any of them.
    let mut c = connect(&s).await;
    c.write_all(format!("{LOGIN_HEAD}Content-Length: 16385\r\n\r\n").as_bytes())
        .await
        .expect("write");
    assert!(response_head(&mut c).await.starts_with("HTTP/1.1 413"));
    let mut c = connect(&s).await;
    c.write_all(echo_head(&l.at, "Content-Length: 16777217\r\n").as_bytes())
        .await
        .expect("write");
    assert!(response_head(&mut c).await.starts_with("HTTP/1.1 413"));
    assert_eq!(
        s.running.state.body_budget.available_permits(),
        64 << 20,
        "the whole buffer budget is free again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s42_chunked_bodies_over_the_limit_are_413() {
    let s = Srv::start().await;
    // Login: 20 KiB in one chunk, over the 16 KiB limit.
    let mut c = connect(&s).await;
    let chunk = vec![b' '; 20 * 1024];
    c.write_all(
        format!(
            "{LOGIN_HEAD}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            chunk.len()
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let _ = c.write_all(&chunk).await;
    assert!(response_head(&mut c).await.starts_with("HTTP/1.1 413"));
    // Echo: 17 MiB in 1 MiB chunks, over the 16 MiB limit (the server may stop reading early).
    let l = s.login().await;
    let mut c = connect(&s).await;
    c.write_all(echo_head(&l.at, "Transfer-Encoding: chunked\r\n").as_bytes())
        .await
        .expect("write");
    let mib = vec![b'x'; 1 << 20];
    for _ in 0..17 {
        if c.write_all(format!("{:x}\r\n", mib.len()).as_bytes())
            .await
            .is_err()
            || c.write_all(&mib).await.is_err()
            || c.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    assert!(response_head(&mut c).await.starts_with("HTTP/1.1 413"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s42_stalled_body_gets_408_and_the_connection_is_closed() {
    let s = Srv::with(|c| {
        c.body_timeout = 1;
        c.keep_alive_timeout = 0;
        c.header_read_timeout = 0;
    })
    .await;
    let l = s.login().await;
    for head in [
        echo_head(&l.at, "Content-Length: 100\r\n"),
        format!("{LOGIN_HEAD}Content-Length: 100\r\n\r\n"),
    ] {
        let mut c = connect(&s).await;
        c.write_all(head.as_bytes()).await.expect("write");
        c.write_all(b"{\"username\":").await.expect("write"); // 12 of 100 bytes, then nothing
        let answer = response_head(&mut c).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            closed(&mut c).await,
            "the connection is closed after the 408"
        );
    }
    // The server still answers others.
    assert_eq!(s.me_status(&l.at).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s42_buffered_bytes_are_bounded_across_requests() {
    const BUDGET: usize = 1 << 20;
    const BIG: usize = 600 * 1024;
    let s = Srv::with(|c| {
        c.max_buffered_bytes = BUDGET as u64;
        c.body_timeout = 0;
        c.keep_alive_timeout = 0;
    })
    .await;
    let budget = &s.running.state.body_budget;
    let l = s.login().await;
    // A: declares 600 KiB, sends 1 KiB and stalls; it holds its declared share.
    let mut a = connect(&s).await;
    a.write_all(echo_head(&l.at, &format!("Content-Length: {BIG}\r\n")).as_bytes())
        .await
        .expect("write");
    a.write_all(&[b'a'; 1024]).await.expect("write");
    let mut reserved = false;
    for _ in 0..200 {
        if budget.available_permits() == BUDGET - BIG {
            reserved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(reserved, "the stalled upload holds its declared length");

    // B: another 600 KiB declared does not fit: 503 + Retry-After, before its body is read.
    let mut b = connect(&s).await;
    b.write_all(echo_head(&l.at, &format!("Content-Length: {BIG}\r\n")).as_bytes())
        .await
        .expect("write");
    let head = response_head(&mut b).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );

    // C: a chunked body is charged as it arrives, and refused once it no longer fits.
    let mut c = connect(&s).await;
    c.write_all(echo_head(&l.at, "Transfer-Encoding: chunked\r\n").as_bytes())
        .await
        .expect("write");
    let _ = c.write_all(format!("{BIG:x}\r\n").as_bytes()).await;
    let _ = c.write_all(&vec![b'c'; BIG]).await;
    let head = response_head(&mut c).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");

    // A small body still fits.
    let r = s
        .http
        .post(s.url("/api/echo"))
        .bearer_auth(&l.at)
        .body("small")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);

    // A completes normally; its share comes back, and a 600 KiB upload fits again.
    a.write_all(&vec![b'a'; BIG - 1024]).await.expect("write");
    let head = response_head(&mut a).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let r = s
        .http
        .post(s.url("/api/echo"))
        .bearer_auth(&l.at)
        .body(vec![b'b'; BIG])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        budget.available_permits(),
        BUDGET,
        "every share was returned"
    );
}
