//! DPoP server nonces (RFC 9449 §8) that every instance issues and accepts alike, as values.
//!
//! A nonce names its rotation period and carries an HMAC-SHA256 of that period under a secret: base64url of the
//! period number (8 bytes, big-endian) and the first 16 bytes of `HMAC-SHA256(secret, "wtm dpop nonce" ‖ period)`,
//! 32 characters. No state is kept, so instances that share the secret (derived from the key-encryption key with
//! `--store redis://…`) hand out the same nonce in the same period and accept each other's: a client whose requests
//! a load balancer spreads over them is not challenged again at every switch. A single instance draws its secret
//! at start.
//!
//! A nonce is accepted in its own period and the next (so one fetched just before a rotation still works, as
//! before: a nonce lives between one and two periods) and one period early (an instance whose clock is a little
//! ahead of another's issued it).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The bytes of a nonce's MAC that are kept (128 bits).
const MAC_LEN: usize = 16;
/// The domain of the MAC, so that the secret's other uses can never produce a nonce.
const DOMAIN: &[u8] = b"wtm dpop nonce";

/// HMAC-SHA256 keyed with `key`.
fn hmac(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

/// `HMAC-SHA256(key, label)`: a secret for one use derived from a key of another.
pub fn derive_secret(key: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac = hmac(key);
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// Issues and checks nonces for periods of `every` seconds under one secret.
#[derive(Clone)]
pub struct NonceIssuer {
    secret: [u8; 32],
    every: u64,
}

impl std::fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl NonceIssuer {
    /// Nonces under `secret` (shared by the instances that must accept each other's), rotating every `every`
    /// seconds (at least 1).
    pub fn new(secret: [u8; 32], every: u64) -> Self {
        Self {
            secret,
            every: every.max(1),
        }
    }

    /// Nonces under a secret drawn now: this process alone issues and accepts them.
    pub fn random(every: u64) -> Self {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Self::new(secret, every)
    }

    fn mac(&self, period: u64) -> Hmac<Sha256> {
        let mut mac = hmac(&self.secret);
        mac.update(DOMAIN);
        mac.update(&period.to_be_bytes());
        mac
    }

    /// The nonce of the period `now` (seconds since the epoch) falls in.
    pub fn current(&self, now: u64) -> String {
        let period = now / self.every;
        let tag = self.mac(period).finalize().into_bytes();
        let mut raw = Vec::with_capacity(8 + MAC_LEN);
        raw.extend_from_slice(&period.to_be_bytes());
        raw.extend(tag.into_iter().take(MAC_LEN));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether `nonce` was issued under this secret for the current period, the one before, or the one after.
    /// The MAC is compared in constant time.
    pub fn accepts(&self, nonce: &str, now: u64) -> bool {
        self.accepted_until(nonce, now).is_some()
    }

    /// When `nonce` is accepted at `now` ([`NonceIssuer::accepts`]): the time (seconds since the epoch) from
    /// which it is never accepted again, the end of the period after its own; else `None`. A proof's `jti` must be
    /// remembered until then, since its nonce, not its `iat`, establishes when it was made (RFC 9449 §4.3 step 11).
    pub fn accepted_until(&self, nonce: &str, now: u64) -> Option<u64> {
        let raw = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        let (period, tag) = raw.split_first_chunk::<8>()?;
        if tag.len() != MAC_LEN {
            return None;
        }
        let period = u64::from_be_bytes(*period);
        let current = now / self.every;
        let recent = period == current
            || period.checked_add(1) == Some(current)
            || current.checked_add(1) == Some(period);
        let genuine = recent && self.mac(period).verify_truncated_left(tag).is_ok();
        genuine.then(|| period.saturating_add(2).saturating_mul(self.every))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000;

    #[test]
    fn one_nonce_per_period_accepted_in_the_next_and_one_early() {
        let n = NonceIssuer::new([7; 32], 60);
        let start = T - T % 60;
        let a = n.current(start);
        assert_eq!(a.len(), 32);
        assert_eq!(n.current(start + 59), a, "the same nonce all period long");
        let b = n.current(start + 60);
        assert_ne!(a, b, "rotated");
        assert!(
            n.accepts(&a, start + 60),
            "the previous period's nonce still works"
        );
        assert!(n.accepts(&a, start + 119));
        assert!(!n.accepts(&a, start + 120), "two periods later it is stale");
        assert!(
            n.accepts(&b, start + 59),
            "an instance a little ahead issued it"
        );
        assert!(
            !n.accepts(&n.current(start + 120), start),
            "not two periods early"
        );
    }

    #[test]
    fn a_nonce_is_never_accepted_at_or_after_the_bound_it_was_given() {
        let n = NonceIssuer::new([3; 32], 60);
        let start = T - T % 60;
        for issued in [start, start + 30, start + 59] {
            let nonce = n.current(issued);
            let until = n.accepted_until(&nonce, issued).unwrap();
            assert_eq!(until, start + 120);
            for t in issued..until {
                assert_eq!(n.accepted_until(&nonce, t), Some(until), "at {t}");
            }
            for t in until..until + 200 {
                assert!(!n.accepts(&nonce, t), "at {t}, after its bound");
            }
        }
    }

    #[test]
    fn every_acceptance_falls_before_every_bound_given_earlier() {
        // Whatever the requests' times, the replay cache keeps an entry as long as its nonce can let it in.
        for step in [1, 7, 50, 99, 100, 101, 150, 199, 250] {
            let n = NonceIssuer::new([4; 32], 100);
            let mut bounds: Vec<(String, u64)> = Vec::new();
            let mut now = T;
            while now < T + 2000 {
                let current = n.current(now);
                for (nonce, until) in &bounds {
                    if n.accepts(nonce, now) {
                        assert!(
                            now < *until,
                            "step {step}: accepted at {now}, bound {until}"
                        );
                    }
                }
                let until = n
                    .accepted_until(&current, now)
                    .expect("current is accepted");
                bounds.push((current, until));
                now += step;
            }
        }
    }

    #[test]
    fn instances_sharing_the_secret_agree_and_others_do_not() {
        let (a, b, other) = (
            NonceIssuer::new([1; 32], 30),
            NonceIssuer::new([1; 32], 30),
            NonceIssuer::new([2; 32], 30),
        );
        assert_eq!(a.current(T), b.current(T));
        assert!(b.accepts(&a.current(T), T));
        assert!(!other.accepts(&a.current(T), T));
        let r1 = NonceIssuer::random(30);
        let r2 = NonceIssuer::random(30);
        assert!(!r2.accepts(&r1.current(T), T), "random secrets are private");
    }

    #[test]
    fn forged_and_malformed_nonces_are_refused() {
        let n = NonceIssuer::new([9; 32], 60);
        let good = n.current(T);
        let mut raw = URL_SAFE_NO_PAD.decode(&good).unwrap();
        raw[12] ^= 1;
        assert!(
            !n.accepts(&URL_SAFE_NO_PAD.encode(&raw), T),
            "a flipped MAC bit"
        );
        let mut later = raw.clone();
        later[12] ^= 1;
        later[7] ^= 1;
        assert!(
            !n.accepts(&URL_SAFE_NO_PAD.encode(&later), T),
            "another period with this MAC"
        );
        for bad in [
            "",
            "x",
            "!!!!",
            &good[..31],
            &format!("{good}AA"),
            &good.to_uppercase(),
        ] {
            assert!(!n.accepts(bad, T), "{bad:?}");
        }
        assert!(!format!("{n:?}").contains('9'), "the secret is not printed");
    }
}
