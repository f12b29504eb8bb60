//! S44: SIGTERM drains. The real binary is started; a request is in flight when SIGTERM arrives;
//! it completes with 200, new connections are refused, the process exits by itself, and the
//! start and the end of the drain are logged. Every wait is bounded.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound on any single wait; reaching it fails the test instead of hanging.
const SAFETY: Duration = Duration::from_secs(30);

struct Server {
    child: Child,
    addr: String,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_auth-server"))
            .args(["--addr", "127.0.0.1:0", "--log", "info"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn auth-server");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read stdout");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            addr,
            stderr: rx,
            seen: Vec::new(),
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Waits for a stderr line containing `needle` (bounded by [`SAFETY`]).
    fn wait_log(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = std::time::Instant::now() + SAFETY;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no log line with {needle:?}; saw:\n{}",
            self.seen.join("\n")
        );
    }

    /// Waits for the process to exit by itself (bounded); returns whether it exited with 0.
    fn wait_exit(&mut self) -> bool {
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("the server did not exit by itself");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const BODY: &str = r#"{"username":"demo","password":"demo"}"#;

/// `auth_requests_in_flight` from /metrics (the scrape itself is one of them).
async fn in_flight(addr: &str) -> u64 {
    let mut c = TcpStream::connect(addr).await.expect("connect");
    c.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let text = read_to_end(&mut c).await;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("auth_requests_in_flight ")?
                .trim()
                .parse()
                .ok()
        })
        .expect("auth_requests_in_flight")
}

/// A login whose head and first part of the body are on the wire, and which the server is
/// handling (it counts as in flight next to the scrape that checks it; bounded wait).
async fn half_sent_login(addr: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        BODY.len()
    );
    c.write_all(head.as_bytes()).await.expect("write");
    c.write_all(&BODY.as_bytes()[..10]).await.expect("write");
    for _ in 0..300 {
        if in_flight(addr).await >= 2 {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the login never became in flight");
}

async fn read_to_end(c: &mut TcpStream) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(SAFETY, c.read_to_end(&mut all))
        .await
        .expect("the server finished the answer and closed")
        .expect("read");
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn s44_sigterm_lets_the_request_in_flight_finish_then_exits() {
    let mut s = Server::start(&["--shutdown-grace", "30s"]);
    let mut c = half_sent_login(&s.addr).await;
    s.signal("-TERM");
    s.wait_log("shutdown: draining");
    // No longer accepting.
    assert!(
        TcpStream::connect(&s.addr).await.is_err(),
        "a new connection is refused once the drain started"
    );
    // The request in flight completes normally.
    c.write_all(&BODY.as_bytes()[10..]).await.expect("write");
    let answer = read_to_end(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("accessToken"), "{answer}");
    assert!(s.wait_exit(), "exit status 0");
    s.wait_log("shutdown: drained");
    s.wait_log("exit");
}

#[tokio::test]
async fn s44_ctrl_c_drains_too() {
    let mut s = Server::start(&[]);
    let mut c = half_sent_login(&s.addr).await;
    s.signal("-INT");
    s.wait_log("shutdown: draining");
    c.write_all(&BODY.as_bytes()[10..]).await.expect("write");
    assert!(read_to_end(&mut c).await.starts_with("HTTP/1.1 200"));
    assert!(s.wait_exit());
}

#[tokio::test]
async fn s44_the_drain_is_bounded_by_the_grace_period() {
    // A request that never completes (its body never comes, no body deadline) does not keep
    // the process alive past --shutdown-grace.
    let mut s = Server::start(&["--shutdown-grace", "1s", "--body-timeout", "0"]);
    let mut c = half_sent_login(&s.addr).await;
    s.signal("-TERM");
    s.wait_log("shutdown: draining");
    assert!(s.wait_exit(), "exit status 0 after the grace period");
    s.wait_log("--shutdown-grace is over");
    // The stalled connection was cut without an answer.
    assert_eq!(read_to_end(&mut c).await, "");
}

#[tokio::test]
async fn s44_idle_connections_do_not_hold_up_the_drain() {
    // No idle or header deadlines, and a long grace: only the drain itself can close these.
    let mut s = Server::start(&[
        "--shutdown-grace",
        "60s",
        "--keep-alive-timeout",
        "0",
        "--header-read-timeout",
        "0",
    ]);
    // One connection that has sent nothing, then one kept alive after an answered request (the
    // listener accepts in order, so that answer also proves the first one was accepted).
    let mut fresh = TcpStream::connect(&s.addr).await.expect("connect");
    let mut kept = TcpStream::connect(&s.addr).await.expect("connect");
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr);
    kept.write_all(req.as_bytes()).await.expect("write");
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(SAFETY, kept.read(&mut buf))
        .await
        .expect("answer")
        .expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    s.signal("-TERM");
    s.wait_log("shutdown: draining");
    assert!(s.wait_exit(), "exit status 0");
    s.wait_log("shutdown: drained");
    assert_eq!(read_to_end(&mut fresh).await, "");
    assert_eq!(read_to_end(&mut kept).await, "");
}
