//! `demo-api`: the demo/test API process. Prints `listening on http://ADDR` on stdout once bound
//! (harnesses parse it); logs go to stderr.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use token_verifier::{RevocationCheck, Verifier, VerifierConfig};

/// An API that verifies the auth server's access tokens through its JWKS.
#[derive(Debug, Parser)]
#[command(name = "demo-api", version)]
struct Args {
    /// Address to listen on (port 0 = any free port).
    #[arg(long, env = "API_ADDR", default_value = "127.0.0.1:8081")]
    addr: SocketAddr,
    /// The auth server's JWKS URL.
    #[arg(
        long,
        env = "API_JWKS_URL",
        default_value = "http://127.0.0.1:8080/.well-known/jwks.json"
    )]
    jwks_url: String,
    /// The issuer (`iss`) tokens must carry: the auth server's `--issuer`.
    #[arg(
        long,
        visible_alias = "issuer",
        env = "API_ISS",
        default_value = "urn:wasm-token-manager:auth-server"
    )]
    iss: String,
    /// The audience (`aud`) tokens must include: the auth server's `--audience`.
    #[arg(
        long,
        visible_alias = "audience",
        env = "API_AUD",
        default_value = "urn:wasm-token-manager:api"
    )]
    aud: String,
    /// Leeway on `exp`/`nbf`/`iat`, seconds.
    #[arg(long, env = "API_LEEWAY", default_value_t = token_verifier::DEFAULT_LEEWAY)]
    leeway: u64,
    /// Shortest use of a fetched JWKS, seconds (at least --jwks-refetch-interval).
    #[arg(long, env = "API_JWKS_MIN_CACHE", default_value_t = 0)]
    jwks_min_cache: u64,
    /// Longest use of a fetched JWKS, seconds, whatever its Cache-Control says.
    #[arg(long, env = "API_JWKS_MAX_CACHE", default_value_t = token_verifier::DEFAULT_MAX_LIFETIME)]
    jwks_max_cache: u64,
    /// No JWKS fetch sooner than this after the previous one, seconds (bounds refetches on unknown kids).
    #[arg(long, env = "API_JWKS_REFETCH_INTERVAL", default_value_t = token_verifier::DEFAULT_REFETCH_INTERVAL)]
    jwks_refetch_interval: u64,
    /// The auth server's introspection URL; with --introspection-secret-file, every token's session
    /// is checked there (revoked sessions refused).
    #[arg(
        long,
        env = "API_INTROSPECTION_URL",
        requires = "introspection_secret_file"
    )]
    introspection_url: Option<String>,
    /// File holding the auth server's --introspection-secret-file secret.
    #[arg(
        long,
        env = "API_INTROSPECTION_SECRET_FILE",
        requires = "introspection_url"
    )]
    introspection_secret_file: Option<PathBuf>,
    /// A DPoP proof's `iat` may be this many seconds before or after this API's clock; its `jti`
    /// is remembered as long, so a replay within it is refused (the auth server's
    /// --dpop-proof-window).
    #[arg(long, env = "API_DPOP_PROOF_WINDOW", default_value_t = token_verifier::dpop::DEFAULT_PROOF_WINDOW_SECS)]
    dpop_proof_window: u64,
    /// The scheme, host and path prefix clients reach this API at (`https://api.example.com/v1`),
    /// which a DPoP proof's `htu` must start with; the request path follows it. Default: `http://`
    /// + the request's Host (the auth server's --dpop-htu-base).
    #[arg(long, env = "API_DPOP_HTU_BASE", value_parser = token_verifier::dpop::parse_htu_base)]
    dpop_htu_base: Option<String>,
    /// How long an "active" introspection answer is reused, seconds.
    #[arg(long, env = "API_REVOCATION_CACHE", default_value_t = 1)]
    revocation_cache: u64,
    /// An origin whose pages may call this API (CORS); repeatable.
    #[arg(
        long = "allowed-origin",
        env = "API_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,
    /// Log filter level.
    #[arg(long, env = "API_LOG", default_value = "info")]
    log: tracing::Level,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(args.log)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo-api: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut cfg = VerifierConfig::new(args.jwks_url, args.iss, args.aud);
    cfg.leeway = args.leeway;
    cfg.cache.min_lifetime = args.jwks_min_cache;
    cfg.cache.max_lifetime = args.jwks_max_cache;
    cfg.cache.refetch_interval = args.jwks_refetch_interval;
    cfg.dpop.proof_window = args.dpop_proof_window;
    cfg.dpop.htu_base = args.dpop_htu_base;
    if let (Some(url), Some(file)) = (args.introspection_url, args.introspection_secret_file) {
        let raw = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let secret = raw.strip_suffix('\n').unwrap_or(&raw);
        let secret = secret.strip_suffix('\r').unwrap_or(secret).to_string();
        if secret.is_empty() {
            return Err(format!("{} is empty", file.display()));
        }
        cfg.revocation = Some(RevocationCheck {
            introspection_url: url,
            secret,
            cache_ttl: args.revocation_cache,
        });
    }
    let verifier = Arc::new(Verifier::new(cfg)?);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let running =
        demo_api::start_on(listener, verifier, &args.allowed_origins).map_err(|e| e.to_string())?;
    println!("listening on http://{}", running.addr);
    tokio::select! {
        _ = running.handle => {}
        _ = shutdown_signal() => tracing::info!("exit"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
