//! Rate limits (S18), on `governor`'s keyed GCRA limiters.
//!
//! * login: per client IP;
//! * refresh: per client IP for every request that passes the CSRF checks and carries a
//!   well-formed cookie (checked before the store is touched), and per
//!   family for *rotations*, checked inside the store's critical section just before the state
//!   transition, so a limited request never consumes or rotates a token, and parallel replays of
//!   the same parent answered from the grace window (S02/S03) do not eat the family's budget.
//!
//! The client IP is the TCP peer, or what a `--trusted-proxy` forwarded for (`crate::clientip`).
//! Limits use governor's monotonic clock (they are about request rates, not token time).
//! A limit of 0 disables that limiter.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A keyed limiter, or none when disabled.
pub struct Limiter<K: Hash + Eq + Clone> {
    inner: Option<DefaultKeyedRateLimiter<K>>,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for Limiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// `count` requests per `period`, with a burst of `count`.
    pub fn new(count: u32, period: Duration) -> Self {
        let inner = NonZeroU32::new(count).and_then(|n| {
            let per_cell = period.checked_div(count)?;
            let q = Quota::with_period(per_cell)?.allow_burst(n);
            Some(RateLimiter::keyed(q))
        });
        Self { inner }
    }

    /// `Ok` if admitted, else `Err(retry_after_secs)` (at least 1).
    pub fn check(&self, key: &K) -> Result<(), u64> {
        let Some(l) = &self.inner else { return Ok(()) };
        l.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Round up to whole seconds, at least 1 (Retry-After is in seconds).
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            secs.max(1)
        })
    }

    /// Forget keys whose state is back to full capacity.
    pub fn shrink(&self) {
        if let Some(l) = &self.inner {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// All limiters of the server.
#[derive(Debug)]
pub struct Limits {
    /// Logins per IP.
    pub login_ip: Limiter<IpAddr>,
    /// Refresh requests per IP.
    pub refresh_ip: Limiter<IpAddr>,
    /// Rotations per family (sid).
    pub refresh_family: Limiter<String>,
}

impl Limits {
    /// From the configured figures.
    pub fn new(login_per_min: u32, refresh_family_per_min: u32, refresh_ip_per_5min: u32) -> Self {
        Self {
            login_ip: Limiter::new(login_per_min, Duration::from_secs(60)),
            refresh_ip: Limiter::new(refresh_ip_per_5min, Duration::from_secs(300)),
            refresh_family: Limiter::new(refresh_family_per_min, Duration::from_secs(60)),
        }
    }

    /// Periodic memory upkeep.
    pub fn shrink(&self) {
        self.login_ip.shrink();
        self.refresh_ip.shrink();
        self.refresh_family.shrink();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refuse_with_retry_after() {
        let l: Limiter<u8> = Limiter::new(3, Duration::from_secs(60));
        assert!(l.check(&1).is_ok());
        assert!(l.check(&1).is_ok());
        assert!(l.check(&1).is_ok());
        let retry = l.check(&1).expect_err("fourth is limited");
        assert!((1..=20).contains(&retry), "retry after {retry}");
        assert!(l.check(&2).is_ok(), "keys are independent");
        let off: Limiter<u8> = Limiter::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            assert!(off.check(&1).is_ok());
        }
    }
}
