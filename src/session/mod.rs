//! The pure core: no browser imports, time is a parameter, decisions are values.
//!
//! * [`decode_unverified`] reads a JWT's timing claims strictly and trusts nothing (C01–C18).
//! * [`plan_expiry`] and [`backoff_delay`] are the refresh policy.
//! * [`Session`] is the state machine: single-flight refresh, stale-token 401s, outcomes, logout. Its doc
//!   comment states the calling contract.
//! * [`parse_token_body`], [`parse_retry_after`], [`Origin`] turn wire values into typed ones.
//! * [`crosstab`] describes the protocol between tabs and validates its messages ([`Message`]).

mod body;
pub mod crosstab;
mod election;
mod error;
mod json;
mod machine;
mod origin;
mod policy;
mod retry_after;
mod token;

pub use body::{
    is_json_content_type, parse_token_body, CappedBody, TokenBody, DEFAULT_TOKEN_FIELD,
    FALLBACK_TOKEN_FIELD, LIFETIME_FIELDS, TOKEN_TYPE_FIELDS,
};
pub use crosstab::{Message, MAX_MESSAGE_LEN, PROTOCOL_VERSION};
pub use election::{Coordination, LockOutcome, HOLD_LOCK_MS};
pub use error::{logout_result, logout_without_url, BodyError, ErrorCode, LogoutError, TokenError};
pub use machine::{
    Action, Event, LegacyError, LegacyFailure, LegacyStatus, LogoutReason, Prepare, RefreshId,
    RefreshResponse, Session, SessionConfig, Unauthorized, BREAKER_STRIKES, BREAKER_SUSPEND_MS,
    BREAKER_WINDOW_MS,
};
pub use origin::{AllowedOrigins, Origin};
pub use policy::{
    backoff_delay, clamp_timer_delay, plan_expiry, refresh_status_retryable, Expiry,
    BACKOFF_BASE_MS, BACKOFF_CAP_MS, DEFAULT_MARGIN_MS, DEFAULT_REFRESH_HEADERS,
    DEFAULT_REFRESH_TIMEOUT_MS, MAX_BODY_BYTES, MAX_PLAUSIBLE_LIFETIME_S, MAX_TIMER_DELAY_MS,
};
pub use retry_after::{parse_http_date, parse_retry_after, MAX_RETRY_AFTER_MS};
pub use token::{
    b64url_decode, check_b64token, decode_unverified, AccessToken, TokenSource, UnverifiedClaims,
    MAX_TOKEN_LEN,
};
