//! [`RedisStore`]: the session store shared by every instance, on Redis.
//!
//! **Atomicity: Lua scripts.** A refresh loads the family holding the presented hash (one read
//! script), applies the same pure rule as the in-memory store ([`family::decide`]) in Rust, and
//! writes the record it returns with a compare-and-set script ([`CAS`]) that checks the record's
//! version and writes everything (record, child index, sealed grace value) as one step inside
//! Redis. A writer that lost the race re-reads and decides again: of any number of instances
//! racing on one token exactly one rotates, and the others then see the token as the immediate
//! parent within the grace window (the grace answer) or as reuse, never a second live child.
//! Scripts rather than `WATCH`/`MULTI`, because `WATCH` belongs to a connection and this one
//! connection is multiplexed across all requests.
//!
//! **Keys** (`wtm:` prefix; one Redis primary, not Redis Cluster: the read script derives the
//! family's keys from the index):
//! - `fam:{sid}`: the family record (a hash; refresh tokens only as hex SHA-256), expiring at
//!   [`FamilyRecord::keep_until`]: after its last access token and (unless revoked) its refresh
//!   token can no longer be used.
//! - `rt:{hex sha256}` → sid for every refresh token the family issued (replays of old tokens
//!   are recognised), expiring with the family's absolute expiry plus the access-token life.
//! - `grace:{sid}`: the raw current child while its grace window is open, sealed under the
//!   key-encryption key ([`crate::kek`], bound to the sid), expiring when the window closes.
//! - `user:{base64url(sub)}`: the user's live sessions by login time, for
//!   `--max-sessions-per-user` (a login beyond it revokes the oldest).
//! - `bl:{base64url(iss)}:{jti}` → the entry's deadline: the access token's `exp` plus the
//!   verifier's leeway, as the key's expiry too; keyed by the claims, never by the token text.

use std::sync::LazyLock;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use redis::{Script, Value};

use super::{RedisConn, Unavailable, RETRY_AFTER_SECS};
use crate::family::{self, FamilyRecord};
use crate::kek::Kek;
use crate::store::{
    Admission, NewSession, RefreshOutcome, RefreshPolicy, Retention, SessionInfo, SessionStore,
    StoreError, StoreStats, SweepReport,
};
use crate::tokens::{RefreshToken, TokenHash};

/// Prefix of every key this server writes.
pub const PREFIX: &str = "wtm:";
/// Writers racing on one family retry at most this often before answering 503.
const MAX_CAS_ATTEMPTS: usize = 32;

/// Read the family holding a refresh-token hash, and its sealed grace value, in one step.
/// KEYS[1] = `rt:{hash}`; ARGV[1] = prefix. Returns nil, or `{sid, HGETALL fam, grace or ""}`.
static LOAD_BY_HASH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local sid = redis.call('GET', KEYS[1])
if not sid then return false end
local fam = redis.call('HGETALL', ARGV[1] .. 'fam:' .. sid)
local grace = redis.call('GET', ARGV[1] .. 'grace:' .. sid)
return {sid, fam, grace or ''}
",
    )
});

/// Compare-and-set of one family record, all of it or nothing (Lua: Redis runs a script as one
/// step; no other client's command runs in between).
/// KEYS: 1 `fam:{sid}`, 2 `grace:{sid}`, 3 `rt:{hash of the current token}`.
/// ARGV: 1 expected `ver` ("" = the record must not exist), 2 record TTL ms, 3 sealed grace
/// value ("" = none), 4 its TTL ms, 5 sid, 6 index TTL ms, 7… field/value pairs of the record.
/// Returns 1 when written, 0 when the version differed (another writer won: read again).
static CAS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ver = redis.call('HGET', KEYS[1], 'ver')
if (ver or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
else
  redis.call('DEL', KEYS[2])
end
redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[6])
return 1
",
    )
});

/// Block `(iss, jti)` until ARGV[1] (Unix seconds, kept as the value), expiring after ARGV[2] ms;
/// a later deadline already stored is kept. KEYS[1] = `bl:…`.
static BLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
",
    )
});

/// The session store on Redis (see the module documentation).
#[derive(Debug, Clone)]
pub struct RedisStore {
    conn: RedisConn,
    kek: Kek,
    retention: Retention,
}

fn unavailable(e: Unavailable) -> StoreError {
    tracing::warn!(error = %e, "session store call failed: answering 503");
    StoreError::Unavailable {
        retry_after: RETRY_AFTER_SECS,
    }
}

fn hex(h: &TokenHash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<TokenHash> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Milliseconds from `now` to `until` (Unix seconds), at least 1 (Redis refuses 0).
fn ttl_ms(until: u64, now: u64) -> u64 {
    until.saturating_sub(now).saturating_mul(1000).max(1)
}

fn fam_key(sid: &str) -> String {
    format!("{PREFIX}fam:{sid}")
}

/// The user's live sessions by login time (`--max-sessions-per-user`).
fn user_key(sub: &str) -> String {
    format!("{PREFIX}user:{}", URL_SAFE_NO_PAD.encode(sub))
}

fn grace_key(sid: &str) -> String {
    format!("{PREFIX}grace:{sid}")
}

fn rt_key(h: &TokenHash) -> String {
    format!("{PREFIX}rt:{}", hex(h))
}

/// The blocklist key of `(iss, jti)`: the issuer in base64url (no `:`), so the pair is unambiguous.
fn bl_key(iss: &str, jti: &str) -> String {
    format!("{PREFIX}bl:{}:{jti}", URL_SAFE_NO_PAD.encode(iss))
}

fn grace_aad(sid: &str) -> String {
    format!("grace:{sid}")
}

/// A record as read: the record, and its version for the compare-and-set.
struct Loaded {
    record: FamilyRecord,
    ver: String,
}

impl RedisStore {
    /// A store on `conn`; grace values sealed under `kek`; records kept as `retention` says.
    pub fn new(conn: RedisConn, kek: Kek, retention: Retention) -> Self {
        Self {
            conn,
            kek,
            retention,
        }
    }

    /// The connection (shared with the key ring).
    pub fn conn(&self) -> &RedisConn {
        &self.conn
    }

    /// Parse `HGETALL` pairs and the sealed grace value into a record. A record that does not
    /// parse (written by something else) reads as absent: the token is refused, never honoured.
    fn parse(&self, sid: &str, pairs: &[Value], sealed: &str) -> Option<Loaded> {
        let mut f = std::collections::HashMap::new();
        for kv in pairs.chunks(2) {
            if let [k, v] = kv {
                let k: String = redis::from_redis_value_ref(k).ok()?;
                let v: String = redis::from_redis_value_ref(v).ok()?;
                f.insert(k, v);
            }
        }
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
        let parent = match f.get("par").map(String::as_str) {
            None | Some("") => None,
            Some(h) => Some(unhex(h)?),
        };
        // The DPoP key the family is bound to (RFC 9449), stored as "" when none.
        let jkt = match f.get("jkt").map(String::as_str) {
            None | Some("") => None,
            Some(h) => Some(unhex(h)?),
        };
        let grace_child = if sealed.is_empty() {
            None
        } else {
            self.kek
                .open(sealed, &grace_aad(sid))
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|s| RefreshToken::parse(&s))
        };
        Some(Loaded {
            record: FamilyRecord {
                sid: sid.to_string(),
                sub: f.get("sub")?.clone(),
                created_at: num("created")?,
                absolute_expires_at: num("abs")?,
                idle_expires_at: num("idle")?,
                revoked: f.get("revoked")? == "1",
                current: unhex(f.get("cur")?)?,
                parent,
                grace_child,
                grace_until: num("gu")?,
                generation: u32::try_from(num("gen")?).ok()?,
                rotated_at: num("rot")?,
                jkt,
            },
            ver: f.get("ver")?.clone(),
        })
    }

    async fn load_by_hash(&self, h: &TokenHash) -> Result<Option<Loaded>, StoreError> {
        let mut inv = LOAD_BY_HASH.key(rt_key(h));
        inv.arg(PREFIX);
        let v: Value = self.conn.script(&inv).await.map_err(unavailable)?;
        let Value::Array(parts) = v else {
            return Ok(None);
        };
        let [sid, fam, grace] = parts.as_slice() else {
            return Ok(None);
        };
        let sid: String = redis::from_redis_value_ref(sid).unwrap_or_default();
        let sealed: String = redis::from_redis_value_ref(grace).unwrap_or_default();
        let Value::Array(pairs) = fam else {
            return Ok(None);
        };
        Ok(self.parse(&sid, pairs, &sealed))
    }

    async fn load_by_sid(&self, sid: &str) -> Result<Option<Loaded>, StoreError> {
        let (pairs, sealed): (Vec<Value>, Option<String>) = self
            .conn
            .pipeline(
                redis::pipe()
                    .atomic()
                    .cmd("HGETALL")
                    .arg(fam_key(sid))
                    .cmd("GET")
                    .arg(grace_key(sid)),
            )
            .await
            .map_err(unavailable)?;
        Ok(self.parse(sid, &pairs, sealed.as_deref().unwrap_or("")))
    }

    /// Write `rec` if the stored version is still `expected` ("" = not stored yet).
    /// `Ok(false)`: another writer came first.
    async fn cas(&self, rec: &FamilyRecord, expected: &str, now: u64) -> Result<bool, StoreError> {
        let next_ver = expected.parse::<u64>().unwrap_or(0).saturating_add(1);
        let keep = rec.keep_until(self.retention.access_lifetime, self.retention.grace);
        let index_until = rec
            .absolute_expires_at
            .saturating_add(self.retention.grace)
            .saturating_add(self.retention.access_lifetime);
        let sealed = match &rec.grace_child {
            Some(raw) if now < rec.grace_until => {
                self.kek.seal(raw.expose().as_bytes(), &grace_aad(&rec.sid))
            }
            _ => String::new(),
        };
        let mut inv = CAS.key(fam_key(&rec.sid));
        inv.key(grace_key(&rec.sid)).key(rt_key(&rec.current));
        inv.arg(expected)
            .arg(ttl_ms(keep, now))
            .arg(sealed)
            .arg(ttl_ms(rec.grace_until, now))
            .arg(&rec.sid)
            .arg(ttl_ms(index_until, now));
        let par = rec.parent.as_ref().map(hex).unwrap_or_default();
        let jkt = rec.jkt.as_ref().map(hex).unwrap_or_default();
        for (k, v) in [
            ("sub", rec.sub.clone()),
            ("created", rec.created_at.to_string()),
            ("abs", rec.absolute_expires_at.to_string()),
            ("idle", rec.idle_expires_at.to_string()),
            ("revoked", u8::from(rec.revoked).to_string()),
            ("cur", hex(&rec.current)),
            ("par", par),
            ("gu", rec.grace_until.to_string()),
            ("gen", rec.generation.to_string()),
            ("rot", rec.rotated_at.to_string()),
            ("jkt", jkt),
            ("ver", next_ver.to_string()),
        ] {
            inv.arg(k).arg(v);
        }
        let written: i64 = self.conn.script(&inv).await.map_err(unavailable)?;
        Ok(written == 1)
    }

    async fn load(&self, which: Which<'_>) -> Result<Option<Loaded>, StoreError> {
        match which {
            Which::Hash(h) => self.load_by_hash(h).await,
            Which::Sid(sid) => self.load_by_sid(sid).await,
        }
    }

    /// Revoke a family (re-reading it after a lost race); the session if it was not revoked yet.
    async fn revoke(&self, which: Which<'_>, now: u64) -> Result<Option<SessionInfo>, StoreError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(Loaded { mut record, ver }) = self.load(which).await? else {
                return Ok(None);
            };
            if !record.revoke() {
                return Ok(None);
            }
            if self.cas(&record, &ver, now).await? {
                let _: i64 = self
                    .conn
                    .query(
                        redis::cmd("ZREM")
                            .arg(user_key(&record.sub))
                            .arg(&record.sid),
                    )
                    .await
                    .map_err(unavailable)?;
                return Ok(Some(record.info()));
            }
        }
        Err(contended())
    }

    /// `--max-sessions-per-user`: before a login of `sub`, revoke its oldest live sessions (by
    /// login time) so that the new one makes at most the maximum. The user's sessions are a sorted
    /// set `wtm:user:{sub}` (score: login time); members no longer live are dropped on the way.
    /// Two logins of one user racing on two instances may each keep one more than the maximum.
    async fn evict_oldest_of(&self, sub: &str, now: u64) -> Result<(), StoreError> {
        let key = user_key(sub);
        let sids: Vec<String> = self
            .conn
            .query(redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1))
            .await
            .map_err(unavailable)?;
        if sids.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        for sid in &sids {
            p.cmd("HGET").arg(fam_key(sid)).arg("revoked");
        }
        let revoked: Vec<Option<String>> = self.conn.pipeline(&p).await.map_err(unavailable)?;
        let mut live = Vec::with_capacity(sids.len());
        for (sid, r) in sids.into_iter().zip(revoked) {
            if r.as_deref() == Some("0") {
                live.push(sid);
            } else {
                let _: i64 = self
                    .conn
                    .query(redis::cmd("ZREM").arg(&key).arg(&sid))
                    .await
                    .map_err(unavailable)?;
            }
        }
        let excess = (live.len() + 1).saturating_sub(self.retention.max_sessions_per_user);
        for sid in live.iter().take(excess) {
            if self.revoke(Which::Sid(sid), now).await?.is_some() {
                tracing::info!(sid = %sid, "session evicted: --max-sessions-per-user reached");
            }
        }
        Ok(())
    }
}

fn contended() -> StoreError {
    tracing::warn!("a family stayed contended for {MAX_CAS_ATTEMPTS} attempts: answering 503");
    StoreError::Unavailable {
        retry_after: RETRY_AFTER_SECS,
    }
}

/// Which family to read: the one holding a refresh-token hash, or a session id.
#[derive(Clone, Copy)]
enum Which<'a> {
    Hash(&'a TokenHash),
    Sid(&'a str),
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, s: NewSession) -> Result<SessionInfo, StoreError> {
        let now = s.now;
        let mut record = FamilyRecord::start(
            s.sid,
            s.sub,
            s.token.hash(),
            s.now,
            s.idle_ttl,
            s.session_max,
        );
        record.jkt = s.jkt;
        if self.retention.max_sessions_per_user > 0 {
            self.evict_oldest_of(&record.sub, now).await?;
        }
        if !self.cas(&record, "", now).await? {
            // A session id collision (128 random bits): refuse rather than overwrite.
            return Err(contended());
        }
        let until = record
            .absolute_expires_at
            .saturating_add(self.retention.grace)
            .saturating_add(self.retention.access_lifetime);
        let key = user_key(&record.sub);
        let _: () = self
            .conn
            .pipeline(
                redis::pipe()
                    .atomic()
                    .cmd("ZADD")
                    .arg(&key)
                    .arg(record.created_at)
                    .arg(&record.sid)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(ttl_ms(until, now))
                    .arg("GT")
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(ttl_ms(until, now))
                    .arg("NX")
                    .ignore(),
            )
            .await
            .map_err(unavailable)?;
        Ok(record.info())
    }

    async fn refresh(
        &self,
        presented: &TokenHash,
        child: RefreshToken,
        policy: RefreshPolicy,
        admit: Admission<'_>,
    ) -> Result<RefreshOutcome, StoreError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let loaded = self.load_by_hash(presented).await?;
            let decided = family::decide(
                loaded.as_ref().map(|l| &l.record),
                presented,
                &child,
                policy,
                |sid: &str| admit(sid),
            );
            let (Some(record), Some(l)) = (decided.record, loaded) else {
                return Ok(decided.outcome);
            };
            if self.cas(&record, &l.ver, policy.now).await? {
                return Ok(decided.outcome);
            }
        }
        Err(contended())
    }

    async fn revoke_by_token(
        &self,
        presented: &TokenHash,
        now: u64,
    ) -> Result<Option<SessionInfo>, StoreError> {
        self.revoke(Which::Hash(presented), now).await
    }

    async fn revoke_session(&self, sid: &str, now: u64) -> Result<bool, StoreError> {
        Ok(self.revoke(Which::Sid(sid), now).await?.is_some())
    }

    async fn session_rejected(&self, sid: &str) -> Result<bool, StoreError> {
        let revoked: Option<String> = self
            .conn
            .query(redis::cmd("HGET").arg(fam_key(sid)).arg("revoked"))
            .await
            .map_err(unavailable)?;
        Ok(revoked.as_deref() != Some("0"))
    }

    async fn block_jti(
        &self,
        iss: &str,
        jti: &str,
        until: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        if until <= now {
            return Ok(false);
        }
        let mut inv = BLOCK.key(bl_key(iss, jti));
        inv.arg(until).arg(ttl_ms(until, now));
        let _: i64 = self.conn.script(&inv).await.map_err(unavailable)?;
        Ok(true)
    }

    async fn admit_dpop_proof(
        &self,
        id: &[u8; 32],
        until: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        if until <= now {
            return Ok(true); // nothing could accept it again: nothing to remember
        }
        // `SET NX PX`: one round trip, atomic across instances; the key expires with the nonce.
        let key = ["wtm:dpop:", &URL_SAFE_NO_PAD.encode(id)].concat();
        let set: Option<String> = self
            .conn
            .query(
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms(until, now)),
            )
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    async fn jti_blocked(&self, iss: &str, jti: &str, now: u64) -> Result<bool, StoreError> {
        let until: Option<u64> = self
            .conn
            .query(redis::cmd("GET").arg(bl_key(iss, jti)))
            .await
            .map_err(unavailable)?;
        Ok(until.is_some_and(|u| now < u))
    }

    async fn generation(&self, sid: &str) -> Result<Option<u32>, StoreError> {
        let g: Option<u32> = self
            .conn
            .query(redis::cmd("HGET").arg(fam_key(sid)).arg("gen"))
            .await
            .map_err(unavailable)?;
        Ok(g)
    }

    /// Counts by scanning the keys (for the demo's statistics and tests; O(number of sessions)).
    async fn stats(&self, now: u64) -> Result<StoreStats, StoreError> {
        let mut stats = StoreStats::default();
        for (pattern, is_family) in [
            (format!("{PREFIX}fam:*"), true),
            (format!("{PREFIX}bl:*"), false),
        ] {
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = self
                    .conn
                    .query(
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000),
                    )
                    .await
                    .map_err(unavailable)?;
                if !keys.is_empty() {
                    let mut p = redis::pipe();
                    for k in &keys {
                        if is_family {
                            p.cmd("HMGET").arg(k).arg("revoked").arg("idle").arg("abs");
                        } else {
                            p.cmd("GET").arg(k);
                        }
                    }
                    if is_family {
                        let rows: Vec<(Option<String>, Option<u64>, Option<u64>)> =
                            self.conn.pipeline(&p).await.map_err(unavailable)?;
                        stats.sessions += rows.len();
                        stats.live_sessions += rows
                            .iter()
                            .filter(|(r, i, a)| {
                                r.as_deref() == Some("0")
                                    && i.zip(*a).is_some_and(|(i, a)| now < i.min(a))
                            })
                            .count();
                    } else {
                        let rows: Vec<Option<u64>> =
                            self.conn.pipeline(&p).await.map_err(unavailable)?;
                        stats.blocked_jtis += rows.iter().flatten().filter(|u| now < **u).count();
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(stats)
    }

    /// Nothing to do: every key carries its own expiry.
    async fn sweep(&self, _now: u64) -> Result<SweepReport, StoreError> {
        Ok(SweepReport::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_through_hex() {
        let h = RefreshToken::generate().hash();
        assert_eq!(unhex(&hex(&h)), Some(h));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
    }

    #[test]
    fn blocklist_keys_are_the_claims_not_the_token() {
        assert_ne!(bl_key("a:b", "c"), bl_key("a", "b:c"));
        assert_eq!(bl_key("https://i", "j1"), "wtm:bl:aHR0cHM6Ly9p:j1");
    }

    #[test]
    fn ttls_are_never_zero() {
        assert_eq!(ttl_ms(10, 10), 1);
        assert_eq!(ttl_ms(5, 10), 1);
        assert_eq!(ttl_ms(12, 10), 2000);
    }
}
