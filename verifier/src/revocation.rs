//! The optional revocation check: the auth server's RFC 7662 introspection answer for a token,
//! cached briefly. The cache is a value; [`crate::Verifier`] does the HTTP.

use std::collections::HashMap;

/// Most answers cached at once; beyond it expired entries are dropped, then all.
pub const MAX_CACHED_ANSWERS: usize = 10_000;

/// Where and how to ask.
#[derive(Clone)]
pub struct RevocationCheck {
    /// The auth server's introspection endpoint (`POST`, RFC 7662 §2), e.g.
    /// `http://127.0.0.1:8080/auth/introspect`.
    pub introspection_url: String,
    /// The secret sent as `Authorization: Bearer <secret>` (the auth server's
    /// `--introspection-secret-file`).
    pub secret: String,
    /// How long an "active" answer is reused, in seconds (0: ask on every request). A token the
    /// server revokes is still accepted for up to this long. An "inactive" answer is kept until
    /// the token's `exp` plus the leeway: revocation is never undone.
    pub cache_ttl: u64,
}

impl std::fmt::Debug for RevocationCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationCheck")
            .field("introspection_url", &self.introspection_url)
            .field("secret", &"[redacted]")
            .field("cache_ttl", &self.cache_ttl)
            .finish()
    }
}

/// Introspection answers by `jti` (each access token has its own; the issuer is fixed).
#[derive(Debug, Default)]
pub struct AnswerCache {
    answers: HashMap<String, (bool, u64)>,
}

impl AnswerCache {
    /// The cached answer for `jti` at `now`: `Some(active)` while it lasts.
    pub fn get(&self, jti: &str, now: u64) -> Option<bool> {
        self.answers
            .get(jti)
            .filter(|(_, until)| now < *until)
            .map(|(active, _)| *active)
    }

    /// Keep an answer until `until` (seconds since the epoch); nothing is kept if that is not
    /// after `now`.
    pub fn put(&mut self, jti: &str, active: bool, until: u64, now: u64) {
        if until <= now {
            return;
        }
        if self.answers.len() >= MAX_CACHED_ANSWERS {
            self.answers.retain(|_, (_, u)| now < *u);
            if self.answers.len() >= MAX_CACHED_ANSWERS {
                self.answers.clear();
            }
        }
        self.answers.insert(jti.to_string(), (active, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_last_until_their_deadline_and_the_cache_is_bounded() {
        let mut c = AnswerCache::default();
        c.put("a", true, 101, 100);
        assert_eq!(c.get("a", 100), Some(true));
        assert_eq!(c.get("a", 101), None);
        c.put("b", false, 100, 100);
        assert_eq!(c.get("b", 100), None, "a zero-length answer is not kept");
        for i in 0..MAX_CACHED_ANSWERS + 5 {
            c.put(&format!("j{i}"), true, 200, 150);
        }
        assert!(c.answers.len() <= MAX_CACHED_ANSWERS);
    }
}
