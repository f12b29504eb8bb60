//! `auth-server`: parse flags, set up logging, serve until Ctrl-C.

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
    let running = match auth_server::start(config, Arc::new(SystemClock)).await {
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
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate() => {}
        _ = running.handle => {}
    }
}

/// SIGTERM (what test harnesses send) ends the process cleanly too.
async fn terminate() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await
}
