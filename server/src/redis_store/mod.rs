//! The shared store on Redis (`--store redis://HOST:PORT/DB`): one multiplexed connection per
//! process that reconnects by itself, every call bounded by a deadline, and the start-up checks.
//!
//! Every call goes through [`RedisConn`], which turns a refused connection, a dropped one, an error
//! reply from a Redis that is loading or read-only, and a call that has not answered within the
//! deadline into [`Unavailable`]: the handlers answer those with 503 and `Retry-After` (fail closed,
//! never an answer from a guess). The connection is redis-rs's `ConnectionManager`: one multiplexed
//! connection shared by all requests, re-established in the background after an I/O error, so the
//! server recovers by itself within about a second of Redis answering again.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, Pipeline, ScriptInvocation};

mod keyring;
mod sessions;
pub use keyring::{Schedule, SharedKeys, SharedKeysError, MIN_PUBLISH_LEAD_SECS, SYNC_EVERY};
pub use sessions::RedisStore;

/// Default bound on one Redis call (`--store-timeout`): past it the request fails closed with 503.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long the server waits for Redis to answer at start before refusing to start.
pub const CONNECT_AT_START: Duration = Duration::from_secs(10);
/// Bound on one connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest pause between reconnection attempts after Redis went away.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// `Retry-After` (seconds) sent with a 503 caused by an unavailable store.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The store could not be asked or did not answer in time: nothing was decided, answer 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the session store is unavailable: {}", self.0)
    }
}

impl std::error::Error for Unavailable {}

/// A handle on Redis: cheap to clone (all clones share one multiplexed connection).
#[derive(Clone)]
pub struct RedisConn {
    conn: ConnectionManager,
    timeout: Duration,
    url: String,
}

impl fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConn")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `redis://host:port/db` without a password, for logs and errors.
pub fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://[redacted]@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

impl RedisConn {
    /// Connect to `url` (`redis://HOST:PORT/DB`), waiting at most `connect_for` for Redis to
    /// answer, and check that it may hold revocations ([`RedisConn::check_policy`]).
    /// Errors are sentences for the operator: the server refuses to start with them.
    pub async fn connect(
        url: &str,
        timeout: Duration,
        connect_for: Duration,
    ) -> Result<Self, String> {
        let shown = redacted_url(url);
        let client = redis::Client::open(url)
            .map_err(|e| format!("--store {shown}: not a Redis URL (redis://HOST:PORT/DB): {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(MAX_RECONNECT_DELAY);
        let started = tokio::time::Instant::now();
        let conn = loop {
            match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                Ok(c) => break c,
                Err(e) if started.elapsed() >= connect_for => {
                    return Err(format!(
                        "--store {shown}: Redis did not answer within {} s: {e}",
                        connect_for.as_secs()
                    ))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let me = Self {
            conn,
            timeout,
            url: shown,
        };
        me.check_policy().await?;
        Ok(me)
    }

    /// Refuse a Redis whose `maxmemory-policy` is not `noeviction`: under any other policy Redis
    /// deletes keys when memory runs out, and a deleted blocklist entry or revoked-session record
    /// silently un-revokes tokens. Read from `INFO memory` (allowed where `CONFIG` is renamed).
    pub async fn check_policy(&self) -> Result<(), String> {
        let info: String = self
            .query(&redis::cmd("INFO").arg("memory").to_owned())
            .await
            .map_err(|e| format!("--store {}: {e}", self.url))?;
        let policy = info
            .lines()
            .find_map(|l| l.strip_prefix("maxmemory_policy:"))
            .map(str::trim)
            .unwrap_or("");
        if policy == "noeviction" {
            Ok(())
        } else {
            Err(format!(
                "--store {}: Redis's maxmemory-policy is {:?}, it must be \"noeviction\": an evicting \
                 policy deletes keys under memory pressure, and a deleted revocation silently makes a \
                 revoked token valid again (set `maxmemory-policy noeviction` in redis.conf, or \
                 CONFIG SET maxmemory-policy noeviction)",
                self.url,
                if policy.is_empty() { "(not reported)" } else { policy }
            ))
        }
    }

    /// The deadline of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Unavailable(format!("{what}: {e}"))),
            Err(_) => Err(Unavailable(format!(
                "{what}: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// One command, bounded by the deadline.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Unavailable> {
        let mut c = self.conn.clone();
        self.bounded("redis", cmd.query_async(&mut c)).await
    }

    /// A pipeline (one round trip; `MULTI`/`EXEC` when built with `.atomic()`), bounded.
    pub async fn pipeline<T: FromRedisValue>(&self, p: &Pipeline) -> Result<T, Unavailable> {
        let mut c = self.conn.clone();
        self.bounded("redis pipeline", p.query_async(&mut c)).await
    }

    /// A Lua script (`EVALSHA`, loading it on `NOSCRIPT`), bounded: it runs atomically in Redis.
    pub async fn script<T: FromRedisValue>(
        &self,
        inv: &ScriptInvocation<'_>,
    ) -> Result<T, Unavailable> {
        let mut c = self.conn.clone();
        self.bounded("redis script", inv.invoke_async(&mut c)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_hide_the_password() {
        assert_eq!(
            redacted_url("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://[redacted]@10.0.0.1:6379/0"
        );
        assert_eq!(
            redacted_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
    }
}
