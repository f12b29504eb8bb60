//! ES256 signing keys, their rotation schedule and the public JWKS.
//!
//! Rotation without downtime (CATALOGUE S11): [`KeyRing::rotate`] publishes a new key in the JWKS
//! at once but lets it sign only `publish_lead` seconds later (the JWKS `max-age`, so every cache
//! has seen it first). When it starts signing, the previous key's last signature is at that
//! instant, so the previous key is retired `access_ttl + leeway` later: after the last token it
//! signed can no longer be accepted. Retired keys leave the JWKS and no longer verify anything.
//! Every decision is a function of the injected clock's `now`, so tests drive it with a manual clock.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use p256::SecretKey;
use rand::RngCore;
use serde_json::{json, Value};

/// The only signature algorithm, pinned per key (RFC 8725 §3.1).
pub const ALG: jsonwebtoken::Algorithm = jsonwebtoken::Algorithm::ES256;
/// The `alg` member published in the JWKS.
pub const ALG_NAME: &str = "ES256";

/// Why a signing key could not be made.
#[derive(Debug)]
pub enum KeyError {
    /// PKCS#8 encoding of the fresh private key failed.
    Encoding(p256::pkcs8::Error),
    /// The public point has no affine coordinates (not a valid public key).
    NoCoordinates,
    /// The JWT library refused the public key.
    Jwt(jsonwebtoken::errors::Error),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Encoding(e) => write!(f, "pkcs8 encoding failed: {e}"),
            Self::NoCoordinates => f.write_str("uncompressed point without coordinates"),
            Self::Jwt(e) => write!(f, "public key refused: {e}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// One ES256 key pair and its schedule.
pub struct KeyPair {
    /// Key id (`kid` header and JWKS member).
    pub kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The private key as PKCS#8 DER, for a shared store (sealed there, never in plaintext).
    der: Arc<Vec<u8>>,
    x: String,
    y: String,
    /// Published in the JWKS from this instant.
    pub published_at: u64,
    /// Signs new tokens from this instant (until a newer key takes over).
    pub signs_from: u64,
    /// Stops verifying (and leaves the JWKS) at this instant, once scheduled.
    pub retire_at: Option<u64>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("kid", &self.kid)
            .field("published_at", &self.published_at)
            .field("signs_from", &self.signs_from)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Generate a fresh P-256 key.
    pub fn generate(kid: String, published_at: u64, signs_from: u64) -> Result<Self, KeyError> {
        let secret = SecretKey::random(&mut rand::rngs::OsRng);
        Self::from_secret(kid, &secret, published_at, signs_from, None)
    }

    /// A key read back from its PKCS#8 DER ([`KeyPair::pkcs8_der`]) with its schedule.
    pub fn from_pkcs8_der(
        kid: String,
        der: &[u8],
        published_at: u64,
        signs_from: u64,
        retire_at: Option<u64>,
    ) -> Result<Self, KeyError> {
        use p256::pkcs8::DecodePrivateKey;
        let secret = SecretKey::from_pkcs8_der(der).map_err(KeyError::Encoding)?;
        Self::from_secret(kid, &secret, published_at, signs_from, retire_at)
    }

    /// The private key as PKCS#8 DER (to be sealed before it leaves the process).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.der
    }

    fn from_secret(
        kid: String,
        secret: &SecretKey,
        published_at: u64,
        signs_from: u64,
        retire_at: Option<u64>,
    ) -> Result<Self, KeyError> {
        let der = secret.to_pkcs8_der().map_err(KeyError::Encoding)?;
        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(KeyError::NoCoordinates);
        };
        let x = URL_SAFE_NO_PAD.encode(x);
        let y = URL_SAFE_NO_PAD.encode(y);
        let decoding = DecodingKey::from_ec_components(&x, &y).map_err(KeyError::Jwt)?;
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            decoding,
            der: Arc::new(der.as_bytes().to_vec()),
            x,
            y,
            published_at,
            signs_from,
            retire_at,
        })
    }

    /// The private key, for signing.
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    /// The public key, for verification (ES256 only).
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The public JWK: `kty`, `crv`, `x`, `y`, `kid`, `alg`, `use`. Never a private member.
    pub fn public_jwk(&self) -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": self.x,
            "y": self.y,
            "kid": self.kid,
            "alg": ALG_NAME,
            "use": "sig",
        })
    }

    fn is_published(&self, now: u64) -> bool {
        self.published_at <= now && self.retire_at.is_none_or(|r| now < r)
    }
}

/// A random key id.
pub fn new_kid() -> String {
    let mut b = [0u8; 9];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// The set of signing keys.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<Arc<KeyPair>>,
}

impl KeyRing {
    /// A ring with one key that signs from `now`.
    pub fn new(now: u64) -> Result<Self, KeyError> {
        Ok(Self {
            keys: vec![Arc::new(KeyPair::generate(new_kid(), now, now)?)],
        })
    }

    /// A ring of the given keys (read back from a shared store).
    pub fn from_keys(keys: Vec<KeyPair>) -> Self {
        Self {
            keys: keys.into_iter().map(Arc::new).collect(),
        }
    }

    /// Every key held, published or not yet, with its schedule.
    pub fn keys(&self) -> &[Arc<KeyPair>] {
        &self.keys
    }

    /// The key that signs tokens minted at `now`: the newest key whose `signs_from` has passed.
    pub fn signing_key(&self, now: u64) -> Option<Arc<KeyPair>> {
        self.keys
            .iter()
            .filter(|k| k.signs_from <= now && k.retire_at.is_none_or(|r| now < r))
            .max_by_key(|k| k.signs_from)
            .cloned()
    }

    /// The key with this `kid`, if it is published and not retired at `now`. The `kid` is only
    /// ever a map key: no file, URL or database lookup, no "try every key" fallback.
    pub fn verification_key(&self, kid: &str, now: u64) -> Option<Arc<KeyPair>> {
        self.keys
            .iter()
            .find(|k| k.kid == kid && k.is_published(now))
            .cloned()
    }

    /// The public JWKS document at `now`.
    pub fn jwks(&self, now: u64) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter(|k| k.is_published(now))
            .map(|k| k.public_jwk())
            .collect();
        json!({ "keys": keys })
    }

    /// The kids currently in the JWKS.
    pub fn published_kids(&self, now: u64) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| k.is_published(now))
            .map(|k| k.kid.clone())
            .collect()
    }

    /// Start a rotation: publish a new key now, let it sign from `now + publish_lead`, and retire
    /// the keys it replaces `retire_after` seconds after that (max access-token lifetime + leeway).
    /// A rotation already pending is reused rather than stacked. Returns the new key's kid.
    pub fn rotate(
        &mut self,
        now: u64,
        publish_lead: u64,
        retire_after: u64,
    ) -> Result<String, KeyError> {
        if let Some(pending) = self.keys.iter().find(|k| k.signs_from > now) {
            return Ok(pending.kid.clone());
        }
        let signs_from = now.saturating_add(publish_lead);
        let retire_at = signs_from.saturating_add(retire_after);
        let fresh = KeyPair::generate(new_kid(), now, signs_from)?;
        let mut next = Vec::with_capacity(self.keys.len() + 1);
        for k in &self.keys {
            if k.retire_at.is_none() {
                let mut replaced = KeyPair::clone_schedule(k);
                replaced.retire_at = Some(retire_at);
                next.push(Arc::new(replaced));
            } else {
                next.push(k.clone());
            }
        }
        let kid = fresh.kid.clone();
        next.push(Arc::new(fresh));
        self.keys = next;
        Ok(kid)
    }

    /// Retire a key at once (key compromise): tokens it signed stop verifying immediately.
    /// Refuses to retire the only signing key.
    pub fn retire_now(&mut self, kid: &str, now: u64) -> bool {
        let others_can_sign = self
            .keys
            .iter()
            .any(|k| k.kid != kid && k.retire_at.is_none());
        if !others_can_sign {
            return false;
        }
        let mut found = false;
        self.keys = self
            .keys
            .iter()
            .map(|k| {
                if k.kid == kid {
                    found = true;
                    let mut r = KeyPair::clone_schedule(k);
                    r.retire_at = Some(now);
                    Arc::new(r)
                } else {
                    k.clone()
                }
            })
            .collect();
        found
    }

    /// Periodic upkeep: start a scheduled rotation when due and forget retired keys.
    /// Returns the kid of a newly started rotation.
    pub fn maintain(
        &mut self,
        now: u64,
        rotate_every: Option<u64>,
        publish_lead: u64,
        retire_after: u64,
    ) -> Option<String> {
        self.keys.retain(|k| k.retire_at.is_none_or(|r| now < r));
        let every = rotate_every?;
        let newest = self.keys.iter().map(|k| k.signs_from).max()?;
        // Start publishing the successor `publish_lead` before the current key has signed for `every`.
        if now.saturating_add(publish_lead) >= newest.saturating_add(every) {
            return self.rotate(now, publish_lead, retire_after).ok();
        }
        None
    }
}

impl KeyPair {
    fn clone_schedule(k: &KeyPair) -> KeyPair {
        KeyPair {
            kid: k.kid.clone(),
            encoding: k.encoding.clone(),
            decoding: k.decoding.clone(),
            der: k.der.clone(),
            x: k.x.clone(),
            y: k.y.clone(),
            published_at: k.published_at,
            signs_from: k.signs_from,
            retire_at: k.retire_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_publishes_before_signing_and_retires_after_last_token_expires() {
        let mut ring = KeyRing::new(1000).expect("key");
        let k1 = ring.signing_key(1000).expect("k1").kid.clone();
        let k2 = ring.rotate(1000, 300, 630).expect("rotate");
        assert_eq!(ring.published_kids(1000), vec![k1.clone(), k2.clone()]);
        assert_eq!(ring.signing_key(1299).expect("signer").kid, k1);
        assert_eq!(ring.signing_key(1300).expect("signer").kid, k2);
        assert!(ring.verification_key(&k1, 1929).is_some());
        assert!(ring.verification_key(&k1, 1930).is_none());
        assert_eq!(ring.published_kids(1930), vec![k2.clone()]);
        // A second rotation while one is pending reuses it.
        let mut ring2 = KeyRing::new(0).expect("key");
        let a = ring2.rotate(0, 10, 10).expect("a");
        let b = ring2.rotate(5, 10, 10).expect("b");
        assert_eq!(a, b);
    }

    #[test]
    fn jwks_has_only_public_members() {
        let ring = KeyRing::new(0).expect("key");
        let jwks = ring.jwks(0);
        let key = &jwks["keys"][0];
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "{private} leaked");
        }
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
    }
}
