//! `auth-server`: parse flags, set up logging, serve until SIGTERM or Ctrl-C, then drain and exit.

// No panics on any path, as in the library (lib.rs): scripts/test.sh runs clippy with these denied.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use auth_server::clock::SystemClock;
use auth_server::config::{Args, Config};
use clap::Parser;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let level = args
        .log
        .parse::<tracing::Level>()
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = Config::from(args);
    for (flag, dir) in [("--www", &config.www), ("--pkg", &config.pkg)] {
        if let Some(d) = dir.as_ref().filter(|d| !d.is_dir()) {
            tracing::warn!(dir = %d.display(), "{flag} is not a directory: its files will answer 404");
        }
    }
    let demo = config.demo;
    // Installed before the address is printed, so a signal sent as soon as the harness reads it
    // is handled (drained) instead of killing the process.
    let mut signals = Signals::new();
    let mut running = match auth_server::start(config, Arc::new(SystemClock)).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("auth-server: cannot start: {e}");
            std::process::exit(1);
        }
    };
    // Test harnesses parse this exact line.
    println!("listening on http://{}", running.addr);
    if demo {
        println!("demo mode: open http://{}/", running.addr);
    }
    let _ = std::io::stdout().flush();
    let signal = tokio::select! {
        name = signals.next() => name,
        _ = &mut running.handle => {
            tracing::error!("server stopped by itself");
            std::process::exit(1);
        }
    };
    tracing::info!(signal, "shutdown requested");
    // The drain logs its own start and end; a second signal cuts it short.
    running.shutdown();
    tokio::select! {
        _ = &mut running.handle => {}
        name = signals.next() => tracing::warn!(signal = name, "second signal: exiting without waiting for the drain"),
    }
    tracing::info!("exit");
}

/// SIGTERM (what service managers and test harnesses send) and SIGINT (Ctrl-C).
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// The name of the next signal received.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = recv(&mut self.term) => "SIGTERM",
                () = recv(&mut self.int) => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
