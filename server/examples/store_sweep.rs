//! A bounded bench of the in-memory store's sweep (issue 9 item 4): how long the store's lock is held by a
//! sweep with nothing due and by one that expires 1% of the sessions, next to a walk over every session
//! (what the sweep did before it took expired entries from deadline-ordered queues; `stats` still walks).
//!
//!   cargo run --release -p auth-server --example store_sweep [SESSIONS]   # default 200000, at most 2000000
//!
//! Prints one line per measurement; figures go in the README with this command, never in a test.

use std::time::Instant;

use auth_server::store::{MemoryStore, NewSession, Retention, SessionStore};
use auth_server::tokens::RefreshToken;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 200_000,
    };
    let n = n.clamp(100, 2_000_000);
    let store = MemoryStore::with_retention(Retention {
        access_lifetime: 630,
        grace: 10,
        max_sessions_per_user: 0,
        max_sessions: 0,
    });
    let due = n / 100;
    for i in 0..n {
        // 1% idle-expire at 3600 s, the rest at 7200 s.
        let idle_ttl = if i < due { 3600 } else { 7200 };
        store
            .create(NewSession {
                sid: format!("s{i}"),
                sub: format!("u{i}"),
                token: RefreshToken::generate(),
                now: 0,
                idle_ttl,
                session_max: 86_400,
            })
            .await?;
    }
    let t = Instant::now();
    let idle = store.sweep(1).await?;
    let idle_time = t.elapsed();
    let t = Instant::now();
    let stats = store.stats(1).await?;
    let walk_time = t.elapsed();
    let t = Instant::now();
    let swept = store.sweep(3600).await?;
    let swept_time = t.elapsed();
    println!("sessions: {n} ({} live)", stats.live_sessions);
    println!(
        "sweep, nothing due: {:?} ({} entries examined)",
        idle_time, idle.examined
    );
    println!(
        "sweep, {due} due: {:?} ({} examined, {} removed)",
        swept_time, swept.examined, swept.removed
    );
    println!("walk over every session (stats): {walk_time:?}");
    Ok(())
}
