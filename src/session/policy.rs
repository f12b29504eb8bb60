//! Refresh policy as pure functions: when a token expires and when to renew it (C05–C13, C22, C34, C47),
//! and how long to back off after a retryable failure (C24–C27).

use super::token::UnverifiedClaims;

/// Default renewal margin before expiry, in ms (60 s).
pub const DEFAULT_MARGIN_MS: u64 = 60_000;
/// The headers of refresh and logout calls when the application sets no `refreshHeaders`: a custom header,
/// which a cross-site form or image cannot send, that the reference server requires as CSRF defence (S15,
/// S16). An explicit `refreshHeaders` replaces it.
pub const DEFAULT_REFRESH_HEADERS: &[(&str, &str)] = &[("X-Requested-With", "fetch")];
/// The largest login or refresh body read, in bytes (64 KiB, C23). The shell reads `response.body` chunk by
/// chunk into a [`crate::session::CappedBody`] and cancels the stream at the first chunk that does not fit.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Default refresh timeout, in ms (10 s).
pub const DEFAULT_REFRESH_TIMEOUT_MS: u64 = 10_000;
/// First backoff step, in ms.
pub const BACKOFF_BASE_MS: u64 = 500;
/// Largest backoff step, in ms.
pub const BACKOFF_CAP_MS: u64 = 30_000;
/// The longest delay `setTimeout` accepts (2^31 − 1 ms); longer timers must be re-armed.
pub const MAX_TIMER_DELAY_MS: u64 = 2_147_483_647;
/// A claim further in the future than this (ten years, in seconds) is implausible: most likely
/// milliseconds written where seconds belong (C09). It counts as missing.
pub const MAX_PLAUSIBLE_LIFETIME_S: f64 = 10.0 * 365.25 * 24.0 * 3600.0;

/// When a token expires and when to renew it, on the local clock (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// The estimated expiry on the local clock.
    pub expires_at: u64,
    /// When a proactive refresh is due; `None` when the token already looked expired on receipt
    /// (C07, C34): it is kept, but never triggers a refresh by its expiry (that would loop).
    pub refresh_at: Option<u64>,
}

impl Expiry {
    /// Whether the token is past its estimated expiry at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_at
    }
}

/// Plans a token's expiry from its claims, an optional `expires_in` from the response body (seconds),
/// the receipt time and the renewal margin.
///
/// * The lifetime is measured from receipt: `exp − iat` when `iat` is a usable number, else
///   `exp − now` (C11, C13). A wrong client clock neither loops nor expires early.
/// * `expires_in`, when present, caps the lifetime (the earlier wins, C22) and stands in for a missing `exp`.
/// * No usable `exp` or `expires_in` (missing, wrong type, implausibly far: C05, C06, C09) gives `None`:
///   no timer, the 401 path applies.
/// * The margin is shortened for short lifetimes: never earlier than half way through the lifetime.
/// * A token that looks expired on receipt, or lives less than a millisecond, gets `refresh_at: None`.
pub fn plan_expiry(
    claims: &UnverifiedClaims,
    expires_in_s: Option<f64>,
    now_ms: u64,
    margin_ms: u64,
) -> Option<Expiry> {
    let now_s = now_ms as f64 / 1000.0;
    let plausible = |t: f64| t.is_finite() && t <= now_s + MAX_PLAUSIBLE_LIFETIME_S;
    let exp = claims.exp.filter(|e| plausible(*e));
    let from_claims = exp.map(|exp| {
        match claims
            .iat
            .filter(|i| plausible(*i) && *i >= 0.0 && *i <= exp)
        {
            Some(iat) => exp - iat,
            None => exp - now_s,
        }
    });
    let from_body =
        expires_in_s.filter(|e| e.is_finite() && *e > 0.0 && *e <= MAX_PLAUSIBLE_LIFETIME_S);
    let lifetime_s = match (from_claims, from_body) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => return None,
    };
    if lifetime_s.is_nan() {
        return None;
    }
    // lifetime_s is at most ten years here, so the conversion cannot overflow; a negative lifetime becomes 0.
    let lifetime_ms = (lifetime_s * 1000.0) as u64;
    if lifetime_ms == 0 {
        // Expired on receipt, or a lifetime under a millisecond: renewing "ahead" of it would loop.
        return Some(Expiry {
            expires_at: now_ms,
            refresh_at: None,
        });
    }
    let expires_at = now_ms.saturating_add(lifetime_ms);
    let margin = margin_ms.min(lifetime_ms / 2);
    Some(Expiry {
        expires_at,
        refresh_at: Some(expires_at - margin),
    })
}

/// The delay before retry number `attempt` (0-based) after a retryable failure: full jitter over
/// `min(30 s, 0.5 s × 2^attempt)`, at least 0.5 s, and never before a `Retry-After` delay (already capped
/// at 5 min by the parser). `jitter` is a number in `[0, 1)` supplied by the caller (`Math.random()`).
pub fn backoff_delay(attempt: u32, jitter: f64, retry_after_ms: Option<u64>) -> u64 {
    let ceiling = BACKOFF_BASE_MS
        .saturating_mul(1u64 << attempt.min(16))
        .min(BACKOFF_CAP_MS);
    let j = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let jittered = ((ceiling as f64) * j) as u64;
    jittered
        .max(BACKOFF_BASE_MS)
        .max(retry_after_ms.unwrap_or(0))
}

/// Whether a non-2xx answer of the refresh endpoint is worth another attempt of the same call (C61).
///
/// * Retryable: `408 Request Timeout`, `425 Too Early`, `429 Too Many Requests` (honouring `Retry-After`), and
///   every `5xx` but `501 Not Implemented`: the server or the path to it is temporarily unwell
///   (RFC 9110 §15.5.9, §15.6; RFC 6585 §4; RFC 8470 §5.2).
/// * Terminal, ending the session with `refreshfailed {retryable: false}`: every other status. `400`
///   (`invalid_grant`, RFC 6749 §5.2), `401` and `403` say the refresh cookie is no good; `404`, `405`, `410`,
///   `501` and the rest of `4xx` say the endpoint is wrong (a misconfigured `refreshUrl`), which retrying
///   cannot mend; `1xx`/`3xx` never reach here as statuses (a redirect is [`crate::session::RefreshResponse::Redirected`],
///   also terminal).
pub const fn refresh_status_retryable(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (status >= 500 && status <= 599 && status != 501)
}

/// Clamps a timer delay to what `setTimeout` accepts; a longer wait fires early and is re-armed (C08, C47).
pub fn clamp_timer_delay(delay_ms: u64) -> u32 {
    delay_ms.min(MAX_TIMER_DELAY_MS) as u32
}
