//! Messages between the tabs of one app, as values: versioned, validated, never trusted blindly.
//!
//! # Protocol (version [`PROTOCOL_VERSION`] = 1)
//!
//! Tabs of one origin share the refresh cookie but each keeps its access token in memory. They talk over a
//! `BroadcastChannel` (name: `wasm-token-manager:` + the absolute `refreshUrl`, or the `crossTab` option).
//! Every message is a JSON string `{"v":1,"type":…,"epoch":…}`:
//!
//! * `token` (`source`: `login` | `refresh` | `set` | `legacy`, `token`, and `tokenType: "DPoP"` for a token bound
//!   to the tabs' shared DPoP key, RFC 9449): a tab stored a new access token; the others adopt it instead of
//!   calling `/refresh` themselves.
//! * `logout`: a tab logged out; every tab clears its token, stops its timers, fires `logout`
//!   (`reason: 'remote'`) and drops any refresh in flight.
//! * `ended`: a refresh answered 400/401/403; the session is over for every tab (`sessionexpired`).
//! * `refreshing`: without Web Locks, a tab announces its refresh call; a tab about to refresh waits
//!   (bounded) for that tab's token instead of rotating the cookie a second time.
//! * `failed` (`retryAt`, ms since the epoch): the elected tab's refresh failed in a retryable way; a tab
//!   still waiting for the election adopts the same backoff instead of hitting a failing server in turn
//!   (a tab whose own call is already running ignores it).
//!
//! **Epochs: logout wins.** Each tab keeps an epoch, a logical clock bumped to `max(epoch + 1, now)` on
//! login, `setAccessToken` and logout, and raised to the sender's epoch when it accepts a remote login or
//! logout. Every message carries the sender's epoch. A message whose epoch is lower than the receiver's is
//! stale (it was produced before a login or logout the receiver already knows about) and is ignored: a
//! refresh that was in flight in another tab when the user logged out cannot bring the session back, and a
//! late logout cannot undo a newer login. A new tab starts at epoch 0 and so accepts the current session.
//!
//! **Election: bounded.** When a tab needs a refresh it asks the Web Locks API for the refresh lock with
//! `ifAvailable` (never `steal`). The holder refreshes and broadcasts the token while it holds the lock. A
//! tab that does not get the lock waits for the lock again with a timeout (`lockTimeoutSeconds`); when it
//! gets it, it refreshes only if no token arrived meanwhile (double-check); when the wait times out it
//! refreshes by itself, relying on the server's reuse grace window. If the holder's tab closes, the browser
//! releases the lock and a follower takes over. No wait is unbounded, so nothing can hang. The election is
//! decided by the core ([`crate::session::Session`], [`crate::session::Coordination`]): it asks for lock requests,
//! the double-check's yield and lock releases as actions, bounds the waits with its own deadline, and the shell
//! reports what the browser gave ([`crate::session::Session::handle_lock`], [`crate::session::Session::handle_yielded`]).
//!
//! **Degrading.** Without Web Locks a tab announces its refresh (`refreshing`) and the others wait for its
//! token for at most `lockTimeoutSeconds`; proactive timers get a little random jitter so that tabs holding
//! the same token do not all fire in the same millisecond. Tabs that still collide each refresh (the
//! server's grace window keeps that safe); without `BroadcastChannel` every tab works alone. Both are reported with `console.debug` when the
//! `debug` option is on, never as errors.
//!
//! **Validation.** Unknown versions, unknown types, missing or mistyped fields, oversized messages and
//! tokens that fail the local checks are dropped ([`Message::decode`] returns `None`).

use super::json::{parse_object, Scalar};
use super::token::{AccessToken, TokenSource, UnverifiedClaims, MAX_TOKEN_LEN};

/// The protocol version carried as `v`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest message accepted, in bytes.
pub const MAX_MESSAGE_LEN: usize = MAX_TOKEN_LEN + 512;

/// The largest epoch accepted (`Number.MAX_SAFE_INTEGER`, 2^53 − 1).
pub const MAX_EPOCH: u64 = (1 << 53) - 1;

/// A validated message between tabs.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A tab stored a new access token.
    Token {
        /// The sender's epoch.
        epoch: u64,
        /// Where it came from.
        source: TokenSource,
        /// The token, checked and decoded.
        token: AccessToken,
        /// Its unverified claims.
        claims: UnverifiedClaims,
    },
    /// A tab logged out.
    Logout {
        /// The sender's epoch (after its logout).
        epoch: u64,
    },
    /// A refresh answered 400/401/403: the session is over.
    Ended {
        /// The sender's epoch.
        epoch: u64,
    },
    /// Without Web Locks: a tab is calling `/refresh` now.
    Refreshing {
        /// The sender's epoch.
        epoch: u64,
    },
    /// A refresh failed in a retryable way; the next attempt is due at `retry_at`.
    Failed {
        /// The sender's epoch.
        epoch: u64,
        /// When the next attempt may happen (ms since the epoch).
        retry_at: u64,
    },
}

impl Message {
    /// The sender's epoch.
    pub fn epoch(&self) -> u64 {
        match self {
            Message::Token { epoch, .. }
            | Message::Logout { epoch }
            | Message::Ended { epoch }
            | Message::Refreshing { epoch }
            | Message::Failed { epoch, .. } => *epoch,
        }
    }

    /// The wire form, a JSON string: `{"v":`[`PROTOCOL_VERSION`]`,"type":…,"epoch":…}` and the type's fields.
    pub fn encode(&self) -> String {
        let (kind, fields) = match self {
            // The token passed the RFC 6750 character check: it needs no JSON escaping.
            Message::Token { source, token, .. } => (
                "token",
                [
                    r#","source":""#,
                    source.as_str(),
                    r#"","token":""#,
                    token.expose(),
                    if token.is_dpop() {
                        r#"","tokenType":"DPoP""#
                    } else {
                        "\""
                    },
                ]
                .concat(),
            ),
            Message::Logout { .. } => ("logout", String::new()),
            Message::Ended { .. } => ("ended", String::new()),
            Message::Refreshing { .. } => ("refreshing", String::new()),
            Message::Failed { retry_at, .. } => {
                ("failed", [r#","retryAt":"#, &retry_at.to_string()].concat())
            }
        };
        let (version, epoch) = (PROTOCOL_VERSION.to_string(), self.epoch().to_string());
        [
            r#"{"v":"#,
            &version,
            r#","type":""#,
            kind,
            r#"","epoch":"#,
            &epoch,
            &fields,
            "}",
        ]
        .concat()
    }

    /// Parses and validates a received message; anything malformed gives `None`.
    pub fn decode(raw: &str) -> Option<Message> {
        if raw.len() > MAX_MESSAGE_LEN {
            return None;
        }
        let obj = parse_object(raw).ok()?;
        if obj.get("v")?.integer(u64::from(u32::MAX))? != u64::from(PROTOCOL_VERSION) {
            return None;
        }
        let epoch = obj.get("epoch")?.integer(MAX_EPOCH)?;
        let kind = obj.get("type")?.as_str()?;
        let source = obj.get("source");
        let token = obj.get("token");
        match (kind, source.map(Scalar::as_str), token.map(Scalar::as_str)) {
            ("token", Some(Some(source)), Some(Some(token))) => {
                let source = TokenSource::from_name(source)?;
                let (token, claims) = AccessToken::parse(token).ok()?;
                let token = match obj.get("tokenType").map(Scalar::as_str) {
                    None => token,
                    Some(Some("DPoP")) => token.bound_to_dpop_key(),
                    Some(_) => return None,
                };
                Some(Message::Token {
                    epoch,
                    source,
                    token,
                    claims,
                })
            }
            ("logout", None, None) => Some(Message::Logout { epoch }),
            ("ended", None, None) => Some(Message::Ended { epoch }),
            ("refreshing", None, None) => Some(Message::Refreshing { epoch }),
            ("failed", None, None) => Some(Message::Failed {
                epoch,
                retry_at: obj.get("retryAt")?.integer(MAX_EPOCH)?,
            }),
            _ => None,
        }
    }
}
