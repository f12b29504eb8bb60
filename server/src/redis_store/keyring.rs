//! [`SharedKeys`]: one signing-key ring for every instance, kept in Redis.
//!
//! Every instance signs with the same keys and publishes the same JWKS, so a token minted by one
//! instance verifies on any other and a restart of any (or all) of them keeps every unexpired
//! access token valid.
//!
//! - **At rest.** `wtm:keys` is a hash `kid → JSON {published_at, signs_from, retire_at, sealed}`;
//!   `sealed` is the PKCS#8 private key sealed under the key-encryption key
//!   (`--key-encryption-key-file`, [`crate::kek`], bound to `"signing-key:" + kid`), which is
//!   never written to Redis. A key that does not open under this instance's key-encryption key
//!   is not used (and the start fails when no key opens: a wrong key file is said at once).
//! - **Creation.** The first instance to start writes the first key, in a Lua script that writes
//!   only into an empty ring ([`INIT`]), so instances starting together agree on one key.
//! - **Rotation, exactly one rotator.** An instance rotates only while it holds the lease
//!   `wtm:keys:lease` (`SET NX PX`, renewed by its holder each tick, [`LEASE`]), and writes the
//!   rotated ring in a script that checks the lease first ([`WRITE`]). The schedule is
//!   [`KeyRing::rotate`]'s: a new key is published at once and signs only `publish_lead` later —
//!   at least the JWKS `max-age`, and at least [`MIN_PUBLISH_LEAD_SECS`] so that every instance
//!   has loaded it (they reload every [`SYNC_EVERY`]) before any signs with it; the key it
//!   replaces stays published until the last token it signed has expired (`access_ttl + leeway`
//!   after it stopped signing), then leaves the ring.
//! - **Every instance** reloads the ring every [`SYNC_EVERY`] and keeps the last ring it loaded
//!   while Redis does not answer.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use serde::{Deserialize, Serialize};

use super::{RedisConn, Unavailable};
use crate::kek::Kek;
use crate::keys::{new_kid, KeyPair, KeyRing};

/// How often every instance reloads the ring (the maintenance tick).
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// A new key signs no sooner than this after it was written, so every instance (reloading every
/// [`SYNC_EVERY`]) publishes it before any signs with it.
pub const MIN_PUBLISH_LEAD_SECS: u64 = 3;
/// Lifetime of the rotation lease; its holder renews it each tick, another instance takes it
/// over this long after the holder stopped.
const LEASE_TTL: Duration = Duration::from_secs(10);

const KEYS_KEY: &str = "wtm:keys";
const LEASE_KEY: &str = "wtm:keys:lease";

/// Write the first key only into an empty ring. KEYS[1] = ring; ARGV = kid, entry.
static INIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
",
    )
});

/// Take or renew the rotation lease. KEYS[1] = lease; ARGV = instance id, TTL ms.
/// Returns 1 while this instance holds it.
static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
",
    )
});

/// Replace the ring, only by the lease holder. KEYS[1] = lease, KEYS[2] = ring;
/// ARGV = instance id, then kid/entry pairs. Returns 1 when written.
static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
if #ARGV > 1 then redis.call('HSET', KEYS[2], unpack(ARGV, 2)) end
return 1
",
    )
});

/// One key as stored.
#[derive(Serialize, Deserialize)]
struct Entry {
    published_at: u64,
    signs_from: u64,
    retire_at: Option<u64>,
    /// PKCS#8 DER sealed under the key-encryption key, bound to `"signing-key:" + kid`.
    sealed: String,
}

fn aad(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// The rotation schedule, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Rotate this often (`--key-rotate-every`); `None`: only when asked.
    pub rotate_every: Option<u64>,
    /// A new key signs this long after it is published (see [`MIN_PUBLISH_LEAD_SECS`]).
    pub publish_lead: u64,
    /// A replaced key stays published this long after it stopped signing (access TTL + leeway).
    pub retire_after: u64,
}

/// The shared key ring of one instance (see the module documentation).
#[derive(Debug, Clone)]
pub struct SharedKeys {
    conn: RedisConn,
    kek: Kek,
    /// This instance's id in the lease.
    me: String,
}

/// Why the ring could not be read, written or used.
#[derive(Debug)]
pub enum SharedKeysError {
    /// Redis did not answer.
    Unavailable(Unavailable),
    /// Keys exist but none opens under this key-encryption key (another key file).
    WrongKek(usize),
    /// A key could not be generated or read back.
    Key(String),
}

impl std::fmt::Display for SharedKeysError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(e) => write!(f, "{e}"),
            Self::WrongKek(n) => write!(
                f,
                "the shared key ring holds {n} signing key(s) and none opens under this \
                 --key-encryption-key-file: every instance must use the same key file"
            ),
            Self::Key(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SharedKeysError {}

impl From<Unavailable> for SharedKeysError {
    fn from(e: Unavailable) -> Self {
        Self::Unavailable(e)
    }
}

impl SharedKeys {
    /// The ring on `conn`, private keys sealed under `kek`.
    pub fn new(conn: RedisConn, kek: Kek) -> Self {
        Self {
            conn,
            kek,
            me: new_kid(),
        }
    }

    fn entry(&self, k: &KeyPair) -> Result<String, SharedKeysError> {
        serde_json::to_string(&Entry {
            published_at: k.published_at,
            signs_from: k.signs_from,
            retire_at: k.retire_at,
            sealed: self.kek.seal(k.pkcs8_der(), &aad(&k.kid)),
        })
        .map_err(|e| SharedKeysError::Key(e.to_string()))
    }

    /// The ring as stored. Keys that do not open are skipped (logged); none opening while some
    /// are stored is [`SharedKeysError::WrongKek`].
    pub async fn load(&self) -> Result<KeyRing, SharedKeysError> {
        let stored: Vec<(String, String)> =
            self.conn.query(redis::cmd("HGETALL").arg(KEYS_KEY)).await?;
        let mut keys = Vec::with_capacity(stored.len());
        for (kid, json) in &stored {
            let opened = serde_json::from_str::<Entry>(json).ok().and_then(|e| {
                let der = self.kek.open(&e.sealed, &aad(kid)).ok()?;
                KeyPair::from_pkcs8_der(
                    kid.clone(),
                    &der,
                    e.published_at,
                    e.signs_from,
                    e.retire_at,
                )
                .ok()
            });
            match opened {
                Some(k) => keys.push(k),
                None => {
                    tracing::warn!(kid = %kid, "shared signing key does not open under this key-encryption key: not used")
                }
            }
        }
        if keys.is_empty() && !stored.is_empty() {
            return Err(SharedKeysError::WrongKek(stored.len()));
        }
        keys.sort_by_key(|k| (k.signs_from, k.published_at));
        Ok(KeyRing::from_keys(keys))
    }

    /// At start: the stored ring, after writing a first key (signing from `now`) if the ring is
    /// empty. Instances starting together end up with the same single first key.
    pub async fn bootstrap(&self, now: u64) -> Result<KeyRing, SharedKeysError> {
        let first = KeyPair::generate(new_kid(), now, now)
            .map_err(|e| SharedKeysError::Key(e.to_string()))?;
        let mut inv = INIT.key(KEYS_KEY);
        inv.arg(&first.kid).arg(self.entry(&first)?);
        let wrote: i64 = self.conn.script(&inv).await?;
        if wrote == 1 {
            tracing::info!(kid = %first.kid, "shared key ring created");
        }
        self.load().await
    }

    /// Whether this instance holds the rotation lease now (taking it if free, renewing it if held).
    pub async fn hold_lease(&self) -> Result<bool, SharedKeysError> {
        let mut inv = LEASE.key(LEASE_KEY);
        inv.arg(&self.me)
            .arg(u64::try_from(LEASE_TTL.as_millis()).unwrap_or(u64::MAX));
        let held: i64 = self.conn.script(&inv).await?;
        Ok(held == 1)
    }

    async fn write(&self, ring: &KeyRing) -> Result<bool, SharedKeysError> {
        let mut inv = WRITE.key(LEASE_KEY);
        inv.key(KEYS_KEY).arg(&self.me);
        for k in ring.keys() {
            inv.arg(&k.kid).arg(self.entry(k)?);
        }
        let wrote: i64 = self.conn.script(&inv).await?;
        Ok(wrote == 1)
    }

    /// One maintenance tick at `now`: the lease holder rotates when due (or when `force`) and
    /// drops retired keys; then every instance returns the ring as stored. Returns the ring and
    /// the kid of a rotation this call started.
    pub async fn tick(
        &self,
        now: u64,
        schedule: Schedule,
        force: bool,
    ) -> Result<(KeyRing, Option<String>), SharedKeysError> {
        let mut ring = self.load().await?;
        let mut started = None;
        if self.hold_lease().await? {
            let lead = schedule.publish_lead.max(MIN_PUBLISH_LEAD_SECS);
            let before: Vec<String> = ring.keys().iter().map(|k| k.kid.clone()).collect();
            started = if force {
                Some(
                    ring.rotate(now, lead, schedule.retire_after)
                        .map_err(|e| SharedKeysError::Key(e.to_string()))?,
                )
                .filter(|kid| !before.contains(kid))
            } else {
                ring.maintain(now, schedule.rotate_every, lead, schedule.retire_after)
            };
            let after: Vec<String> = ring.keys().iter().map(|k| k.kid.clone()).collect();
            if (after != before || started.is_some()) && self.write(&ring).await? {
                if let Some(kid) = &started {
                    tracing::info!(kid = %kid, "shared signing key rotation started (this instance holds the lease)");
                }
                ring = self.load().await?;
            } else {
                started = None;
            }
        }
        Ok((ring, started))
    }
}
