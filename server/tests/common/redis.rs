//! A throwaway `redis-server` for the store tests: Debian's `redis-server` (installed by
//! `scripts/bootstrap.sh`; `$WTM_REDIS_SERVER` or `PATH`) on a free loopback port, with a temporary
//! directory and no persistence (`--save ''`, `--appendonly no`). Dropping the handle kills the
//! process and removes the directory, also when the test panicked.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh `redis-server` may take to answer `PING`.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running `redis-server`; killed (and its directory removed) on drop.
pub struct RedisServer {
    child: Option<Child>,
    /// The loopback port it listens on.
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

fn binary() -> String {
    std::env::var("WTM_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One RESP command over a fresh connection; the first reply line (e.g. `+PONG`).
pub fn command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

impl RedisServer {
    /// Start one; panics (naming the cause) when `redis-server` is missing or does not answer.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Start one with more command-line options (e.g. `["--maxmemory-policy", "allkeys-lru"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        let n = std::process::id();
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("wtm-redis-{n}-{t}"));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let mut me = Self {
            child: None,
            port: 0,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        let mut last = String::new();
        for _ in 0..3 {
            me.port = free_port();
            match me.spawn() {
                Ok(()) => return me,
                Err(e) => last = e,
            }
        }
        panic!("{last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let mut args: Vec<&str> = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        let mut child = Command::new(binary())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run {}: {e} (scripts/bootstrap.sh installs redis-server)",
                    binary()
                )
            })?;
        let started = Instant::now();
        while started.elapsed() < READY_WITHIN {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server on port {port} exited: {status}"));
            }
            if command(self.port, &["PING"]).is_ok_and(|r| r.starts_with("+PONG")) {
                self.child = Some(child);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!(
            "redis-server on port {port} did not answer PING within {READY_WITHIN:?}"
        ))
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kill the process (an outage); [`RedisServer::resume`] starts it again on the same port, empty.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port after [`RedisServer::kill`].
    pub fn resume(&mut self) {
        self.spawn().expect("redis-server restarts on its port");
    }

    /// Stop answering without closing connections (SIGSTOP): a hung Redis.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Answer again after [`RedisServer::freeze`] (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .args([format!("-{sig}"), c.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill -{sig} {}", c.id());
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A frozen process must be resumed for SIGKILL to reap promptly.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
