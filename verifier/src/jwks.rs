//! The JWKS as values: which keys of a published set are usable and with which algorithm, how long
//! a fetched set may be used (`Cache-Control`), and the cache's decision for a `kid` at a given
//! time. No I/O here: [`crate::Verifier`] fetches and reports back; the clock is a parameter.

use std::collections::HashMap;
use std::sync::Arc;

use http::header::{HeaderMap, AGE, CACHE_CONTROL};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// Largest JWKS body read, in bytes; a larger answer counts as a failed fetch.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Longest `kid` accepted, in bytes (header and JWKS alike).
pub const MAX_KID_LEN: usize = 256;

/// One verification key and the only algorithm it verifies (RFC 8725 §3.1).
pub struct PinnedKey {
    /// The JWK's `kid`.
    pub kid: String,
    /// The one algorithm this key verifies, from the JWK's `kty`/`crv` (and `alg`, which must agree).
    pub alg: Algorithm,
    pub(crate) key: DecodingKey,
}

impl std::fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Members that only a private or symmetric JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4). A JWKS that
/// publishes one is misconfigured; such a key is not used.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The algorithm a public JWK verifies, or why it is not used. EC P-256 → ES256, EC P-384 →
/// ES384, OKP Ed25519 → EdDSA; RSA needs an explicit `alg` (RS256/384/512 or PS256/384/512),
/// since its type alone does not say which. A present `alg` must agree with the type. Symmetric
/// (`oct`) keys, keys with private members, keys whose `use` is not `sig` or whose `key_ops` lacks
/// `verify` are refused.
pub fn pin_algorithm(jwk: &serde_json::Map<String, Value>) -> Result<Algorithm, &'static str> {
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err("private or symmetric key material");
    }
    if jwk.get("use").is_some_and(|u| u != "sig") {
        return Err("use is not sig");
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o == "verify"));
        if !verify {
            return Err("key_ops without verify");
        }
    }
    let s = |m: &str| jwk.get(m).and_then(Value::as_str);
    let alg = s("alg");
    let by_type = match (s("kty"), s("crv")) {
        (Some("EC"), Some("P-256")) => Algorithm::ES256,
        (Some("EC"), Some("P-384")) => Algorithm::ES384,
        (Some("OKP"), Some("Ed25519")) => Algorithm::EdDSA,
        (Some("RSA"), _) => {
            return match alg {
                Some("RS256") => Ok(Algorithm::RS256),
                Some("RS384") => Ok(Algorithm::RS384),
                Some("RS512") => Ok(Algorithm::RS512),
                Some("PS256") => Ok(Algorithm::PS256),
                Some("PS384") => Ok(Algorithm::PS384),
                Some("PS512") => Ok(Algorithm::PS512),
                _ => Err("RSA key without an RSA alg"),
            }
        }
        _ => return Err("unsupported kty/crv"),
    };
    match alg {
        None => Ok(by_type),
        Some(a) if a == alg_name(by_type) => Ok(by_type),
        Some(_) => Err("alg disagrees with kty/crv"),
    }
}

/// The JOSE name of an algorithm (`ES256`, …).
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
    }
}

/// The usable keys of a JWKS document (`{"keys": [...]}`), by `kid`. Keys that cannot be pinned
/// are skipped (logged at `debug`); a `kid` that appears twice is dropped altogether, since which
/// key it names would be a guess. `Err` when the document is not a JWKS at all.
pub fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<PinnedKey>>, &'static str> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| "JWKS is not JSON")?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("JWKS without a keys array")?;
    let mut out: HashMap<String, Arc<PinnedKey>> = HashMap::new();
    let mut twice = Vec::new();
    for k in keys {
        match pin_key(k) {
            Ok(key) => {
                if out.contains_key(&key.kid) {
                    twice.push(key.kid.clone());
                }
                out.insert(key.kid.clone(), Arc::new(key));
            }
            Err(why) => tracing::debug!(reason = why, "JWKS key skipped"),
        }
    }
    for kid in twice {
        tracing::debug!(kid = %kid, "JWKS kid published twice: dropped");
        out.remove(&kid);
    }
    Ok(out)
}

fn pin_key(v: &Value) -> Result<PinnedKey, &'static str> {
    let obj = v.as_object().ok_or("not an object")?;
    let kid = match obj.get("kid") {
        Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_KID_LEN => k.clone(),
        _ => return Err("no usable kid"),
    };
    let alg = pin_algorithm(obj)?;
    let jwk: Jwk = serde_json::from_value(v.clone()).map_err(|_| "not a JWK jsonwebtoken reads")?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "key parameters invalid")?;
    Ok(PinnedKey { kid, alg, key })
}

/// How long an answer may be used, in seconds, from `Cache-Control` (RFC 9111 §5.2.2): `max-age`
/// less `Age`; zero for `no-store`, `no-cache`, a repeated or unparsable `max-age` (RFC 9111
/// §4.2.1: treat as stale); `None` without `max-age`. `s-maxage` is for shared caches and ignored.
pub fn freshness(headers: &HeaderMap) -> Option<u64> {
    let mut max_age = None;
    let mut seen = 0;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(text) = value.to_str() else {
            return Some(0);
        };
        for directive in text.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(0);
            }
            if name.eq_ignore_ascii_case("max-age") {
                seen += 1;
                max_age = arg.and_then(delta_seconds);
            }
        }
    }
    match (seen, max_age) {
        (0, _) => None,
        (1, Some(secs)) => {
            let age = headers
                .get(AGE)
                .and_then(|v| v.to_str().ok())
                .and_then(delta_seconds)
                .unwrap_or(0);
            Some(secs.saturating_sub(age))
        }
        _ => Some(0),
    }
}

/// RFC 9111 §1.2.2 delta-seconds: digits only; a value beyond 2^31 counts as 2^31.
fn delta_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX).min(1 << 31))
}

/// The cache's lifetime rules, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Shortest use of a fetched JWKS, whatever `Cache-Control` says (also used without `max-age`).
    pub min_lifetime: u64,
    /// Longest use of a fetched JWKS.
    pub max_lifetime: u64,
    /// No fetch starts sooner than this after the previous one, successful or not: an unknown
    /// `kid` triggers at most one refetch per interval, and an unreachable endpoint is retried at
    /// most once per interval. The effective floor is at least this long.
    pub refetch_interval: u64,
}

impl CachePolicy {
    /// How long a set fetched with this freshness (see [`freshness`]) is used.
    pub fn lifetime(&self, freshness: Option<u64>) -> u64 {
        let floor = self.min_lifetime.max(self.refetch_interval);
        let ceiling = self.max_lifetime.max(floor);
        freshness.unwrap_or(floor).clamp(floor, ceiling)
    }
}

/// What the cache says about a `kid` now.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The key, from a set still within its lifetime.
    Key(Arc<PinnedKey>),
    /// Fetch the JWKS now, then look up again without fetching.
    Fetch,
    /// The set is fresh and has no such `kid`; a refetch is not allowed yet.
    Unknown,
    /// No set within its lifetime, and a fetch is not allowed yet: fail closed.
    Unavailable,
}

/// The cached key set and the fetch schedule. Calling contract: [`KeyCache::lookup`]; on
/// [`Lookup::Fetch`] fetch once, report exactly one of [`KeyCache::fetched`] or
/// [`KeyCache::failed`], then [`KeyCache::lookup`] again with `may_fetch: false`.
#[derive(Debug, Default)]
pub struct KeyCache {
    keys: HashMap<String, Arc<PinnedKey>>,
    /// The set may be used while `now < fresh_until`; `None` until a fetch succeeds.
    fresh_until: Option<u64>,
    last_attempt: Option<u64>,
}

impl KeyCache {
    /// The decision for `kid` at `now` (seconds since the epoch).
    pub fn lookup(&self, kid: &str, now: u64, policy: &CachePolicy, may_fetch: bool) -> Lookup {
        let can_fetch = may_fetch
            && self
                .last_attempt
                .is_none_or(|t| now >= t.saturating_add(policy.refetch_interval));
        match self.fresh_until {
            Some(until) if now < until => match self.keys.get(kid) {
                Some(k) => Lookup::Key(k.clone()),
                None if can_fetch => Lookup::Fetch,
                None => Lookup::Unknown,
            },
            _ if can_fetch => Lookup::Fetch,
            _ => Lookup::Unavailable,
        }
    }

    /// A fetch that started at `now` succeeded with these keys and this freshness.
    pub fn fetched(
        &mut self,
        keys: HashMap<String, Arc<PinnedKey>>,
        freshness: Option<u64>,
        now: u64,
        policy: &CachePolicy,
    ) {
        self.keys = keys;
        self.fresh_until = Some(now.saturating_add(policy.lifetime(freshness)));
        self.last_attempt = Some(now);
    }

    /// A fetch that started at `now` failed; the set held (if any) keeps its lifetime.
    pub fn failed(&mut self, now: u64) {
        self.last_attempt = Some(now);
    }

    /// The `kid`s of the set held, in no particular order.
    pub fn kids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn cc(values: &[&str], age: Option<&str>) -> Option<u64> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CACHE_CONTROL, HeaderValue::from_str(v).expect("value"));
        }
        if let Some(a) = age {
            h.insert(AGE, HeaderValue::from_str(a).expect("age"));
        }
        freshness(&h)
    }

    #[test]
    fn cache_control_is_read_as_rfc9111_says() {
        assert_eq!(cc(&["public, max-age=300"], None), Some(300));
        assert_eq!(cc(&["Public, MAX-AGE=\"300\""], None), Some(300));
        assert_eq!(cc(&["public, max-age=300"], Some("120")), Some(180));
        assert_eq!(cc(&["max-age=300"], Some("900")), Some(0));
        assert_eq!(cc(&["public", "max-age=60"], None), Some(60));
        assert_eq!(
            cc(&["max-age=60, max-age=90"], None),
            Some(0),
            "repeated: stale"
        );
        assert_eq!(cc(&["max-age=-1"], None), Some(0), "unparsable: stale");
        assert_eq!(cc(&["max-age=300, no-cache"], None), Some(0));
        assert_eq!(cc(&["no-store"], None), Some(0));
        assert_eq!(cc(&["s-maxage=300"], None), None);
        assert_eq!(cc(&[], None), None);
        assert_eq!(cc(&["max-age=99999999999999999999"], None), Some(1 << 31));
    }

    #[test]
    fn lifetime_is_clamped_to_floor_and_ceiling() {
        let p = CachePolicy {
            min_lifetime: 10,
            max_lifetime: 3600,
            refetch_interval: 30,
        };
        assert_eq!(p.lifetime(Some(300)), 300);
        assert_eq!(
            p.lifetime(Some(0)),
            30,
            "the floor is at least the refetch interval"
        );
        assert_eq!(p.lifetime(None), 30);
        assert_eq!(p.lifetime(Some(1 << 31)), 3600);
    }

    fn es256_jwk(kid: &str) -> Value {
        // RFC 7515 Appendix A.3's public key.
        json!({"kty": "EC", "crv": "P-256", "kid": kid,
               "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
               "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
    }

    #[test]
    fn algorithms_are_pinned_per_key() {
        let obj = |v: Value| v.as_object().expect("object").clone();
        assert_eq!(pin_algorithm(&obj(es256_jwk("a"))), Ok(Algorithm::ES256));
        let mut with_alg = es256_jwk("a");
        with_alg["alg"] = json!("ES256");
        assert_eq!(pin_algorithm(&obj(with_alg.clone())), Ok(Algorithm::ES256));
        for (member, value) in [
            ("alg", json!("HS256")),
            ("alg", json!("ES384")),
            ("alg", json!("none")),
            ("use", json!("enc")),
            ("key_ops", json!(["sign"])),
            ("d", json!("private")),
        ] {
            let mut bad = with_alg.clone();
            bad[member] = value.clone();
            assert!(pin_algorithm(&obj(bad)).is_err(), "{member}: {value}");
        }
        assert!(
            pin_algorithm(&obj(json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}))).is_err()
        );
        assert!(pin_algorithm(&obj(json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}))).is_err());
        assert_eq!(
            pin_algorithm(&obj(json!({"kty": "RSA", "alg": "PS256"}))),
            Ok(Algorithm::PS256)
        );
    }

    #[test]
    fn parse_keeps_usable_keys_and_drops_ambiguous_kids() {
        let doc = json!({"keys": [
            es256_jwk("one"),
            es256_jwk("dup"), es256_jwk("dup"),
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-256", "kid": "broken", "x": "not base64!", "y": "AA"},
            "not a key",
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).expect("jwks");
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["one"]);
        assert!(parse_jwks(b"{\"keys\": 1}").is_err());
        assert!(parse_jwks(b"[]").is_err());
    }

    #[test]
    fn cache_refetches_an_unknown_kid_once_per_interval_and_fails_closed_when_stale() {
        let p = CachePolicy {
            min_lifetime: 0,
            max_lifetime: 1000,
            refetch_interval: 10,
        };
        let mut c = KeyCache::default();
        assert!(matches!(c.lookup("a", 100, &p, true), Lookup::Fetch));
        let keys =
            parse_jwks(json!({"keys": [es256_jwk("a")]}).to_string().as_bytes()).expect("jwks");
        c.fetched(keys.clone(), Some(300), 100, &p);
        assert!(matches!(c.lookup("a", 100, &p, true), Lookup::Key(_)));
        assert!(matches!(c.lookup("forged", 105, &p, true), Lookup::Unknown));
        assert!(matches!(c.lookup("forged", 110, &p, true), Lookup::Fetch));
        c.fetched(keys, Some(300), 110, &p);
        assert!(matches!(c.lookup("forged", 119, &p, true), Lookup::Unknown));
        assert!(matches!(
            c.lookup("forged", 120, &p, false),
            Lookup::Unknown
        ));
        // Stale at 410: fetch; it fails; fail closed until the interval has passed.
        assert!(matches!(c.lookup("a", 409, &p, true), Lookup::Key(_)));
        assert!(matches!(c.lookup("a", 410, &p, true), Lookup::Fetch));
        c.failed(410);
        assert!(matches!(c.lookup("a", 415, &p, true), Lookup::Unavailable));
        assert!(matches!(c.lookup("a", 420, &p, true), Lookup::Fetch));
    }
}
