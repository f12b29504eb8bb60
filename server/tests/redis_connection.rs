//! The Redis connection under the shared store: the start-up policy check, fail-closed calls with
//! a bounded deadline, and recovery without a restart (issue 12 items 4 and 5). Each test starts
//! its own `redis-server` on a loopback port (tests/common/redis.rs).

mod common;

use std::time::Duration;

use auth_server::redis_store::{RedisConn, Unavailable};
use common::redis::RedisServer;

const DEADLINE: Duration = Duration::from_millis(300);

async fn connect(r: &RedisServer) -> RedisConn {
    RedisConn::connect(&r.url(), DEADLINE, Duration::from_secs(5))
        .await
        .expect("connects")
}

async fn ping(c: &RedisConn) -> Result<String, Unavailable> {
    c.query(&redis::cmd("PING")).await
}

/// Whether PING succeeds within 50 tries 100 ms apart (a poll, not a timing assertion).
async fn eventually_pings(c: &RedisConn) -> bool {
    for _ in 0..50 {
        if ping(c).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn s26_f15_an_evicting_policy_is_refused_with_the_reason() {
    let r = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let err = RedisConn::connect(&r.url(), DEADLINE, Duration::from_secs(5))
        .await
        .expect_err("allkeys-lru is refused");
    assert!(err.contains("\"allkeys-lru\""), "{err}");
    assert!(err.contains("noeviction"), "{err}");
    assert!(
        err.contains("un-revokes") || err.contains("revoked token valid again"),
        "{err}"
    );
    let ok = RedisServer::start();
    assert_eq!(ping(&connect(&ok).await).await.expect("ping"), "PONG");
}

#[tokio::test]
async fn no_redis_at_start_is_an_error_naming_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let err = RedisConn::connect(&url, DEADLINE, Duration::from_millis(500))
        .await
        .expect_err("nothing listens");
    assert!(err.contains(&url), "{err}");
}

#[tokio::test]
async fn a_hung_redis_fails_calls_within_the_deadline_and_they_recover_after() {
    let r = RedisServer::start();
    let c = connect(&r).await;
    r.freeze();
    // The deadline fired (the message says so) rather than the call hanging.
    let err = ping(&c).await.expect_err("a frozen Redis answers nothing");
    assert!(
        err.0.contains("no answer") || err.0.contains("timed out"),
        "{err}"
    );
    r.thaw();
    assert!(
        eventually_pings(&c).await,
        "calls succeed again after Redis answers again"
    );
}

#[tokio::test]
async fn a_restarted_redis_is_reconnected_to_by_itself() {
    let mut r = RedisServer::start();
    let c = connect(&r).await;
    let _: () = c
        .query(redis::cmd("SET").arg("k").arg("v"))
        .await
        .expect("set");
    r.kill();
    assert!(ping(&c).await.is_err(), "down is an error, not a hang");
    r.resume();
    assert!(eventually_pings(&c).await, "the same handle reconnects");
}
