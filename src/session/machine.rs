//! The session state machine: one token, single-flight refresh, outcomes, backoff, logout.

use std::collections::VecDeque;

use super::body::{parse_token_body, TokenBody};
use super::crosstab::Message;
use super::election::{Coordination, LockOutcome, HOLD_LOCK_MS};
use super::error::{BodyError, TokenError};
use super::json::parse_object;
use super::policy::{
    backoff_delay, plan_expiry, refresh_status_retryable, Expiry, BACKOFF_CAP_MS,
    DEFAULT_MARGIN_MS, DEFAULT_REFRESH_TIMEOUT_MS,
};
use super::retry_after::{parse_retry_after, MAX_RETRY_AFTER_MS};
use super::token::{AccessToken, TokenSource, UnverifiedClaims};

/// The circuit breaker's window (C33): refresh-then-401 strikes older than this are forgotten (ms).
pub const BREAKER_WINDOW_MS: u64 = 60_000;
/// More strikes than this within the window suspend 401-triggered refreshes.
pub const BREAKER_STRIKES: usize = 3;
/// How long 401-triggered refreshes stay suspended (ms).
pub const BREAKER_SUSPEND_MS: u64 = 60_000;

/// Configuration of a [`Session`].
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Renew this long before expiry (ms); shortened for short-lived tokens.
    pub margin_ms: u64,
    /// Give up on a refresh call after this long (ms) and treat it as a retryable failure.
    pub refresh_timeout_ms: u64,
    /// The JSON field carrying the token; `None` reads `accessToken`, then `access_token`.
    pub token_field: Option<String>,
    /// The bound (ms) on a refresh's wait for another tab (the lock, or an announced call's token) before its
    /// own call starts (see [`Session::refresh_call_started`]); 0 without cross-tab coordination.
    pub election_ms: u64,
    /// How this tab coordinates a refresh with the other tabs.
    pub coordination: Coordination,
    /// Whether the shell holds a DPoP key (the `dpop` option): only then is a `token_type: "DPoP"` answer
    /// accepted (RFC 9449 §5), since its token can be sent only with a proof of that key.
    pub dpop: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            margin_ms: DEFAULT_MARGIN_MS,
            refresh_timeout_ms: DEFAULT_REFRESH_TIMEOUT_MS,
            token_field: None,
            election_ms: 0,
            coordination: Coordination::Alone,
            dpop: false,
        }
    }
}

/// Identifies one refresh attempt. A result reported for an id that is no longer in flight is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefreshId(pub u64);

/// Why a `logout` happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutReason {
    /// `logout()` in this tab.
    User,
    /// A logout in another tab.
    Remote,
}

impl LogoutReason {
    /// `"user"` or `"remote"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogoutReason::User => "user",
            LogoutReason::Remote => "remote",
        }
    }
}

/// Something the application is told about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A token was stored or cleared (`tokenchange`).
    TokenChange {
        /// The new token's estimated expiry (ms since the epoch), or `None`.
        expires_at: Option<u64>,
        /// Where it came from.
        source: TokenSource,
    },
    /// A refresh failed (`refreshfailed`).
    RefreshFailed {
        /// The HTTP status, or `None` for a network error or timeout.
        status: Option<u16>,
        /// Whether another attempt will be made.
        retryable: bool,
        /// When the next attempt may happen (ms since the epoch), for retryable failures.
        retry_at: Option<u64>,
        /// Whether a token was held when it failed: `false` for the attempt to restore a session from the cookie
        /// of a visitor who never signed in (a cold start), so that an app can tell "not signed in" from
        /// "session expired".
        had_token: bool,
    },
    /// The server ended the session (`sessionexpired`); fired once per session.
    SessionExpired,
    /// Logged out (`logout`).
    Logout {
        /// Why.
        reason: LogoutReason,
    },
    /// The exchange of a legacy token failed (`legacyupgradefailed`); fired once per attempt, never retried
    /// automatically.
    LegacyUpgradeFailed {
        /// The HTTP status, or `None` for a network error or timeout.
        status: Option<u16>,
        /// Why.
        reason: LegacyFailure,
        /// Whether the legacy token is still held (a network error, a 5xx, a 429, a malformed answer): calling
        /// `upgradeLegacyToken()` again may succeed. When false the token was refused and is dropped.
        retryable: bool,
    },
}

/// Why a legacy exchange failed (the `reason` of `legacyupgradefailed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyFailure {
    /// The server no longer accepts legacy tokens (`legacy_token_retired`: phase 3 or later, or the sunset).
    Retired,
    /// The token was already exchanged (`invalid_grant`): a replay.
    Replayed,
    /// The server does not recognise it as a legacy token (`invalid_token`).
    Invalid,
    /// Any other refusal (4xx, a redirect).
    Refused,
    /// Network error, timeout, 5xx, 429 or a malformed answer: the token is kept.
    Unavailable,
}

impl LegacyFailure {
    /// `"retired"`, `"replayed"`, `"invalid"`, `"refused"` or `"unavailable"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LegacyFailure::Retired => "retired",
            LegacyFailure::Replayed => "replayed",
            LegacyFailure::Invalid => "invalid",
            LegacyFailure::Refused => "refused",
            LegacyFailure::Unavailable => "unavailable",
        }
    }
}

/// Where the migration off a legacy token stands (the `legacyUpgrade` getter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyStatus {
    /// No legacy token was handed over (or it was dropped by a login, logout or `setAccessToken`).
    None,
    /// A legacy token is held in memory and sent while no new token is held.
    Held,
    /// The exchange is in flight.
    Upgrading,
    /// Exchanged: the legacy token is dropped, the session runs on new tokens.
    Upgraded,
    /// The exchange was refused: the token is dropped; sign in again.
    Failed,
}

impl LegacyStatus {
    /// `"none"`, `"held"`, `"upgrading"`, `"upgraded"` or `"failed"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LegacyStatus::None => "none",
            LegacyStatus::Held => "held",
            LegacyStatus::Upgrading => "upgrading",
            LegacyStatus::Upgraded => "upgraded",
            LegacyStatus::Failed => "failed",
        }
    }
}

/// Why [`Session::upgrade_legacy`] could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyError {
    /// No token given and none held.
    NoToken,
    /// The token failed the local checks.
    Token(TokenError),
}

/// An instruction for the shell. Each carries an obligation, stated on the variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Perform the refresh call now, then report its outcome exactly once with
    /// [`Session::handle_refresh_response`], also on network error; unless [`Action::AbortRefresh`] with
    /// the same id comes first, in which case abort the call and report nothing.
    ///
    /// When [`Session::is_legacy_flight`] says so, the call is the legacy exchange instead: a `POST` to the
    /// upgrade URL with `Authorization: Bearer <`[`Session::legacy_token`]`>`, reported the same way (read the
    /// body of 4xx answers too: it names the reason).
    StartRefresh {
        /// The attempt.
        id: RefreshId,
    },
    /// The refresh call timed out: abort it; its result would be dropped anyway.
    AbortRefresh {
        /// The attempt.
        id: RefreshId,
    },
    /// The refresh has settled one way or another: wake every caller waiting on this id. Waiters then ask
    /// [`Session::token_since`] (after a 401) or call [`Session::prepare_request`] again with `waited = true`.
    RefreshSettled {
        /// The attempt.
        id: RefreshId,
    },
    /// Dispatch this event to the application.
    Event(Event),
    /// Post this message to the other tabs (see [`crate::session::crosstab`]); drop it when cross-tab
    /// coordination is off.
    Broadcast(Message),
    /// The election of refresh `id` ([`Coordination::Locks`]): first release at once any election lock this
    /// tab still holds (it must not wait for itself), then request the exclusive lock (never `steal`) and
    /// report the outcome exactly once with [`Session::handle_lock`]. `wait == false`: `ifAvailable`, never
    /// waits. `wait == true`: wait for it, until [`Action::CancelLockWait`] or [`Action::RefreshSettled`] with
    /// this id aborts the request (then report [`LockOutcome::Failed`], or nothing).
    RequestLock {
        /// The attempt.
        id: RefreshId,
        /// Wait for the lock (bounded by the core's deadline) instead of `ifAvailable`.
        wait: bool,
    },
    /// Stop waiting for the election lock of `id` (the bounded wait timed out): abort the request.
    CancelLockWait {
        /// The attempt.
        id: RefreshId,
    },
    /// Release the election lock held for `id` after `delay_ms` (0: now); a later [`Action::RequestLock`] or
    /// disposing releases it at once.
    ReleaseLock {
        /// The attempt the lock was granted for.
        id: RefreshId,
        /// How long to keep it first (ms): [`HOLD_LOCK_MS`] after this tab's own call, else 0.
        delay_ms: u64,
    },
    /// The election lock of `id` was granted after a wait: let the messages other tabs already posted arrive
    /// (one macrotask), then call [`Session::handle_yielded`] (the double-check).
    YieldToMessages {
        /// The attempt.
        id: RefreshId,
    },
}

/// How to send a request to an allowed origin.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepare {
    /// Send now, with this bearer token (or none); remember `generation` for a possible 401.
    Send {
        /// The token to attach, if any.
        token: Option<AccessToken>,
        /// The token generation the request is sent with.
        generation: u64,
    },
    /// A refresh is in flight (maybe just started): wait for its [`Action::RefreshSettled`], then call
    /// [`Session::prepare_request`] again with `waited = true`.
    Wait(RefreshId),
}

/// What to do about a 401 answer from an allowed origin.
#[derive(Debug, Clone, PartialEq)]
pub enum Unauthorized {
    /// The request was sent with an older token: retry once with this one, no refresh (C38).
    Retry {
        /// The current token.
        token: AccessToken,
        /// Its generation.
        generation: u64,
    },
    /// Wait for this refresh to settle, then ask [`Session::token_since`]: retry once with the token it
    /// gives, or hand the original 401 to the caller when it gives none.
    Wait(RefreshId),
    /// Hand the 401 to the caller (session ended, backing off).
    GiveUp,
}

/// The outcome of a refresh call, as observed by the shell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RefreshResponse<'a> {
    /// An HTTP answer with its body (read up to the cap; pass `body_too_large` when the cap was hit).
    Http {
        /// The status code.
        status: u16,
        /// The `Content-Type` header.
        content_type: Option<&'a str>,
        /// The `Retry-After` header.
        retry_after: Option<&'a str>,
        /// The body.
        body: &'a [u8],
        /// The body exceeded the cap (or declared that it would): reading stopped there.
        body_too_large: bool,
    },
    /// `fetch` rejected (offline, DNS, CORS).
    NetworkError,
    /// The endpoint answered with a redirect (the call uses `redirect: 'manual'` and never follows one): a
    /// misconfigured `refreshUrl` or a login page in front of it. Terminal.
    Redirected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flight {
    Idle,
    /// A refresh call, or (`legacy`) the legacy exchange: one flight at a time, the same waiting machinery.
    Running {
        id: RefreshId,
        deadline: u64,
        stage: Stage,
        legacy: bool,
    },
    Backoff {
        until: u64,
    },
}

/// Where a flight stands: in the cross-tab election, elected, or calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// [`Coordination::Locks`]: the `ifAvailable` lock request is out.
    TryLock,
    /// [`Coordination::Locks`]: another tab holds the lock; waiting for it until `until`.
    WaitLock { until: u64 },
    /// [`Coordination::Locks`]: granted after a wait; letting queued messages arrive before the double-check.
    DoubleCheck,
    /// [`Coordination::Announce`]: another tab announced its call; waiting for its token until `until`.
    WaitPeer { until: u64 },
    /// [`Action::StartRefresh`] was emitted; the shell has not reported the call started.
    Elected,
    /// The call is running ([`Session::refresh_call_started`]).
    Calling,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Legacy {
    None,
    /// Held in memory only; `auto_tried`: an automatic exchange already failed retryably (no automatic retry).
    Held {
        token: AccessToken,
        auto_tried: bool,
    },
    Upgraded,
    Failed,
}

#[derive(Debug, Clone)]
struct Held {
    token: AccessToken,
    expiry: Option<Expiry>,
}

enum Outcome {
    Success(TokenBody),
    /// A failure that retrying the same call cannot mend (see [`refresh_status_retryable`]).
    Terminal(Option<u16>),
    Retryable {
        status: Option<u16>,
        retry_after_ms: Option<u64>,
    },
}

/// The pure session state machine.
///
/// # Calling contract
/// Inputs are method calls that take the current wall-clock time `now_ms` (ms since the epoch):
/// [`set_token`](Self::set_token) / [`set_token_body`](Self::set_token_body) / [`clear_token`](Self::clear_token)
/// (login and `setAccessToken`), [`logout`](Self::logout), [`request_refresh`](Self::request_refresh)
/// (`refresh()`), [`prepare_request`](Self::prepare_request) before sending to an allowed origin,
/// [`handle_unauthorized`](Self::handle_unauthorized) on a 401 from one,
/// [`handle_refresh_response`](Self::handle_refresh_response) when a refresh call ends,
/// [`handle_timeout`](Self::handle_timeout) when the deadline from [`poll_timeout`](Self::poll_timeout) passes,
/// and [`set_visible`](Self::set_visible) / [`handle_wake`](Self::handle_wake) for the page lifecycle.
///
/// After every input the shell drains [`poll_action`](Self::poll_action) until `None`, **releases its
/// borrow of the session**, performs the actions in order, and re-reads `poll_timeout` (re-arming its one
/// timer only if the deadline changed). Timers are hints: `handle_timeout` re-checks the clock and does
/// nothing when nothing is due.
///
/// Single-flight is a state: while a refresh is in flight every caller gets the same [`RefreshId`] and no
/// second [`Action::StartRefresh`] is emitted. Every token change increments a generation, so a 401 for a
/// request sent with an older token is retried with the current one without a refresh, and a refresh result
/// for an id that is no longer in flight (logout, a newer token) is dropped.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    token: Option<Held>,
    generation: u64,
    epoch: u64,
    flight: Flight,
    ended: bool,
    attempts: u32,
    malformed_streak: u32,
    next_id: u64,
    visible: bool,
    strikes: Vec<u64>,
    peer_refreshing_at: Option<u64>,
    /// The election lock this tab holds: for which flight, and whether this tab made its call while holding it.
    lock: Option<(RefreshId, bool)>,
    last_strike_generation: u64,
    suspended_until: u64,
    legacy: Legacy,
    legacy_failure: Option<(Option<u16>, LegacyFailure)>,
    actions: VecDeque<Action>,
}

impl Session {
    /// A session with no token, in the "unknown" state: the first request to an allowed origin, or
    /// `refresh()`, tries one refresh (the cookie may hold a session).
    pub fn new(cfg: SessionConfig) -> Self {
        Session {
            cfg,
            token: None,
            generation: 0,
            epoch: 0,
            flight: Flight::Idle,
            ended: false,
            attempts: 0,
            malformed_streak: 0,
            next_id: 1,
            visible: true,
            strikes: Vec::new(),
            peer_refreshing_at: None,
            lock: None,
            last_strike_generation: 0,
            suspended_until: 0,
            legacy: Legacy::None,
            legacy_failure: None,
            actions: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Whether a token is held, expired or not (the 401 path still sends an expired one).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether a token is held that is not past its estimated expiry at `now_ms` (a token without a known
    /// expiry counts while held). An expired token that cannot be renewed (the refresh endpoint down) is held
    /// for the 401 path, but does not count.
    pub fn is_authenticated(&self, now_ms: u64) -> bool {
        self.token
            .as_ref()
            .is_some_and(|h| !h.expiry.is_some_and(|e| e.is_expired(now_ms)))
    }

    /// The held token's estimated expiry (ms since the epoch), when known.
    pub fn expires_at(&self) -> Option<u64> {
        self.token
            .as_ref()
            .and_then(|h| h.expiry)
            .map(|e| e.expires_at)
    }

    /// The current token generation (incremented on every token change).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The session epoch: a logical clock bumped on login, `setAccessToken` and logout.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The refresh in flight, if any.
    pub fn refresh_in_flight(&self) -> Option<RefreshId> {
        match self.flight {
            Flight::Running { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Whether automatic refreshes are off until a login, `setAccessToken` or `refresh()`.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The next output, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        // Whatever input ended the flight that holds the election lock, the lock goes now (after the outputs
        // of that input, so after the result's broadcast).
        if let Some((id, called)) = self.lock {
            if self.refresh_in_flight() != Some(id) {
                self.lock = None;
                self.actions.push_back(Action::ReleaseLock {
                    id,
                    delay_ms: if called { HOLD_LOCK_MS } else { 0 },
                });
            }
        }
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next (ms since the epoch).
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.flight {
            Flight::Running {
                stage: Stage::WaitLock { until } | Stage::WaitPeer { until },
                deadline,
                ..
            } => Some(until.min(deadline)),
            Flight::Running { deadline, .. } => Some(deadline),
            Flight::Backoff { until } => Some(until),
            Flight::Idle if self.visible && !self.ended => self
                .token
                .as_ref()
                .and_then(|h| h.expiry)
                .and_then(|e| e.refresh_at),
            Flight::Idle => None,
        }
    }

    /// The token to use after waiting, when the generation moved on since `generation` and a token is held.
    pub fn token_since(&self, generation: u64) -> Option<(AccessToken, u64)> {
        match &self.token {
            Some(h) if self.generation != generation => Some((h.token.clone(), self.generation)),
            _ => None,
        }
    }

    /// The token for a request that cannot wait (`keepalive` during `pagehide`, C57): the current token
    /// unless it is known to be expired; nothing is started.
    pub fn token_without_waiting(&self, now_ms: u64) -> Option<AccessToken> {
        self.token
            .as_ref()
            .filter(|h| !h.expiry.is_some_and(|e| e.is_expired(now_ms)))
            .map(|h| h.token.clone())
    }

    /// The current token and generation.
    pub fn current_token(&self) -> (Option<AccessToken>, u64) {
        (
            self.token.as_ref().map(|h| h.token.clone()),
            self.generation,
        )
    }

    fn reset_breaker(&mut self) {
        self.strikes.clear();
        self.suspended_until = 0;
    }

    fn bump_epoch(&mut self, now_ms: u64) {
        // A Lamport clock seeded with wall time, so that tabs agree on "later" without talking first.
        self.epoch = self.epoch.saturating_add(1).max(now_ms);
        self.reset_breaker();
    }

    fn in_backoff(&self, now_ms: u64) -> bool {
        matches!(self.flight, Flight::Backoff { until } if now_ms < until)
    }

    fn start_refresh(&mut self, now_ms: u64) -> RefreshId {
        if let Flight::Running { id, .. } = self.flight {
            return id;
        }
        let id = RefreshId(self.next_id);
        self.next_id = self.next_id.saturating_add(1);
        let deadline = now_ms
            .saturating_add(self.cfg.election_ms)
            .saturating_add(self.cfg.refresh_timeout_ms);
        let stage = match self.cfg.coordination {
            Coordination::Alone => self.elect(id),
            Coordination::Announce if self.peer_refreshing(now_ms, self.cfg.election_ms) => {
                Stage::WaitPeer {
                    until: now_ms.saturating_add(self.cfg.election_ms),
                }
            }
            Coordination::Announce => self.announce_and_elect(id),
            Coordination::Locks => {
                self.actions
                    .push_back(Action::RequestLock { id, wait: false });
                Stage::TryLock
            }
        };
        self.flight = Flight::Running {
            id,
            deadline,
            stage,
            legacy: false,
        };
        id
    }

    /// This tab makes the call for `id`.
    fn elect(&mut self, id: RefreshId) -> Stage {
        self.actions.push_back(Action::StartRefresh { id });
        Stage::Elected
    }

    /// Without Web Locks: tells the other tabs this tab calls now, then calls.
    fn announce_and_elect(&mut self, id: RefreshId) -> Stage {
        self.actions
            .push_back(Action::Broadcast(Message::Refreshing { epoch: self.epoch }));
        self.elect(id)
    }

    fn set_stage(&mut self, to: Stage) {
        if let Flight::Running { stage, .. } = &mut self.flight {
            *stage = to;
        }
    }

    /// The stage of refresh `id`, when it is the one in flight.
    fn stage_of(&self, id: RefreshId) -> Option<Stage> {
        match self.flight {
            Flight::Running {
                id: current, stage, ..
            } if current == id => Some(stage),
            _ => None,
        }
    }

    /// The outcome of the [`Action::RequestLock`] of refresh `id`. Outcomes for a refresh no longer in the
    /// election are dropped (a lock granted late is released at once).
    ///
    /// * The first, `ifAvailable` request: granted, this tab calls while holding the lock; unavailable, it
    ///   waits for the lock, bounded by [`SessionConfig::election_ms`]; failed (no usable API), it calls.
    /// * The bounded wait: granted, it double-checks ([`Action::YieldToMessages`], [`Self::handle_yielded`]);
    ///   failed, it calls by itself, relying on the server's reuse grace window.
    pub fn handle_lock(&mut self, now_ms: u64, id: RefreshId, outcome: LockOutcome) {
        match (self.stage_of(id), outcome) {
            (Some(Stage::TryLock), LockOutcome::Granted) => {
                self.lock = Some((id, true));
                let stage = self.elect(id);
                self.set_stage(stage);
            }
            (Some(Stage::TryLock), LockOutcome::Unavailable) => {
                self.set_stage(Stage::WaitLock {
                    until: now_ms.saturating_add(self.cfg.election_ms),
                });
                self.actions
                    .push_back(Action::RequestLock { id, wait: true });
            }
            (Some(Stage::WaitLock { .. }), LockOutcome::Granted) => {
                self.lock = Some((id, false));
                self.set_stage(Stage::DoubleCheck);
                self.actions.push_back(Action::YieldToMessages { id });
            }
            (Some(Stage::TryLock | Stage::WaitLock { .. }), _) => {
                let stage = self.elect(id);
                self.set_stage(stage);
            }
            (_, LockOutcome::Granted) => self
                .actions
                .push_back(Action::ReleaseLock { id, delay_ms: 0 }),
            _ => {}
        }
    }

    /// The double-check of refresh `id` after [`Action::YieldToMessages`]: the messages queued before the lock
    /// was granted have arrived. Still in flight (no other tab's token came), this tab calls while holding the
    /// lock; otherwise the lock is released at once.
    pub fn handle_yielded(&mut self, _now_ms: u64, id: RefreshId) {
        if self.stage_of(id) == Some(Stage::DoubleCheck) {
            self.lock = Some((id, true));
            let stage = self.elect(id);
            self.set_stage(stage);
        }
    }

    fn start_legacy(&mut self, now_ms: u64) -> RefreshId {
        let id = self.start_refresh(now_ms);
        if let Flight::Running { legacy, .. } = &mut self.flight {
            *legacy = true;
        }
        id
    }

    /// Forgets the refresh in flight (its result will be dropped) and wakes its waiters. The call itself is
    /// not aborted: its answer may carry a rotated refresh cookie that the browser should still store (a
    /// logout, the end of the session: that cookie belongs to the same session). See [`Self::abort_flight`].
    fn cancel_flight(&mut self) {
        match self.flight {
            Flight::Running { id, .. } => {
                self.actions.push_back(Action::RefreshSettled { id });
            }
            Flight::Backoff { .. } | Flight::Idle => {}
        }
        self.flight = Flight::Idle;
        self.attempts = 0;
        self.malformed_streak = 0;
    }

    /// Forgets the refresh in flight and aborts its call (C60): a new session started (a login or
    /// `setAccessToken` succeeded, here or in another tab), and the old call's answer would store the previous
    /// session's refresh cookie over the new one's. Nothing started before a new session may change state after it.
    fn abort_flight(&mut self) {
        if let Flight::Running { id, .. } = self.flight {
            self.actions.push_back(Action::AbortRefresh { id });
        }
        self.cancel_flight();
    }

    fn install(
        &mut self,
        now_ms: u64,
        token: AccessToken,
        claims: &UnverifiedClaims,
        expires_in: Option<f64>,
        source: TokenSource,
    ) {
        let expiry = plan_expiry(claims, expires_in, now_ms, self.cfg.margin_ms);
        self.token = Some(Held { token, expiry });
        // A new-session token supersedes a legacy token: it is dropped, never sent again.
        if source == TokenSource::Legacy {
            self.legacy = Legacy::Upgraded;
        } else if matches!(self.legacy, Legacy::Held { .. }) {
            self.legacy = Legacy::None;
        }
        self.generation = self.generation.saturating_add(1);
        self.ended = false;
        self.actions.push_back(Action::Event(Event::TokenChange {
            expires_at: expiry.map(|e| e.expires_at),
            source,
        }));
    }

    /// Installs a token this tab obtained (login, `setAccessToken`, refresh, legacy exchange) and tells the other
    /// tabs, at the current epoch.
    fn install_and_tell(
        &mut self,
        now_ms: u64,
        token: AccessToken,
        claims: UnverifiedClaims,
        expires_in: Option<f64>,
        source: TokenSource,
    ) {
        self.install(now_ms, token.clone(), &claims, expires_in, source);
        self.actions.push_back(Action::Broadcast(Message::Token {
            epoch: self.epoch,
            source,
            token,
            claims,
        }));
    }

    /// Stores a token handed over by the application (`setAccessToken`) or a login. Cancels any refresh in
    /// flight (its result would belong to an older session, C43) and re-enables automatic refreshes.
    pub fn set_token(
        &mut self,
        now_ms: u64,
        token: &str,
        expires_in: Option<f64>,
        source: TokenSource,
    ) -> Result<(), TokenError> {
        let (token, claims) = AccessToken::parse(token)?;
        self.abort_flight();
        self.bump_epoch(now_ms);
        self.install_and_tell(now_ms, token, claims, expires_in, source);
        Ok(())
    }

    /// A login, refresh or exchange answer's token ([`parse_token_body`]); a DPoP-bound one only with
    /// [`SessionConfig::dpop`].
    fn parse_body(&self, body: &[u8], content_type: Option<&str>) -> Result<TokenBody, BodyError> {
        let b = parse_token_body(body, content_type, self.cfg.token_field.as_deref())?;
        if b.token.is_dpop() && !self.cfg.dpop {
            return Err(BodyError::NotBearer);
        }
        Ok(b)
    }

    /// Stores the token from a login answer's body (see [`parse_token_body`]).
    pub fn set_token_body(
        &mut self,
        now_ms: u64,
        body: &[u8],
        content_type: Option<&str>,
        source: TokenSource,
    ) -> Result<(), BodyError> {
        let b = self.parse_body(body, content_type)?;
        self.abort_flight();
        self.bump_epoch(now_ms);
        self.install_and_tell(now_ms, b.token, b.claims, b.expires_in, source);
        Ok(())
    }

    /// `setAccessToken(null)`: forget the token locally; no automatic refresh until a login,
    /// `setAccessToken` or `refresh()`.
    pub fn clear_token(&mut self, now_ms: u64) {
        self.cancel_flight();
        self.bump_epoch(now_ms);
        self.token = None;
        self.legacy = Legacy::None;
        self.generation = self.generation.saturating_add(1);
        self.ended = true;
        self.actions.push_back(Action::Event(Event::TokenChange {
            expires_at: None,
            source: TokenSource::Set,
        }));
    }

    /// Logs out: clears the token, cancels timers and any refresh in flight (its result is dropped, C42),
    /// and fires `logout` unless already logged out. Returns whether anything changed (idempotent).
    ///
    /// Logout wins locally whatever the server says: the shell then posts to the logout endpoint and judges
    /// its answer with [`crate::session::logout_result`], which changes nothing here.
    pub fn logout(&mut self, now_ms: u64, reason: LogoutReason) -> bool {
        self.bump_epoch(now_ms);
        let changed = self.end_locally(reason);
        if changed && reason == LogoutReason::User {
            self.actions
                .push_back(Action::Broadcast(Message::Logout { epoch: self.epoch }));
        }
        changed
    }

    fn end_locally(&mut self, reason: LogoutReason) -> bool {
        let changed = self.token.is_some() || !self.ended || self.flight != Flight::Idle;
        if matches!(self.legacy, Legacy::Held { .. }) {
            self.legacy = Legacy::None;
        }
        self.cancel_flight();
        if self.token.take().is_some() {
            self.generation = self.generation.saturating_add(1);
        }
        self.ended = true;
        if changed {
            self.actions
                .push_back(Action::Event(Event::Logout { reason }));
        }
        changed
    }

    /// `refresh()`: start a refresh now, or join the one in flight. Overrides a backoff and re-enables
    /// automatic refreshes after the session ended. Wait for the id, then compare generations.
    pub fn request_refresh(&mut self, now_ms: u64) -> RefreshId {
        if let Flight::Backoff { .. } = self.flight {
            self.flight = Flight::Idle;
        }
        self.ended = false;
        self.start_refresh(now_ms)
    }

    /// Before sending a request to an allowed origin that carries no `Authorization` of its own.
    ///
    /// Requests wait for a refresh in flight instead of going out with the stale token; a token known to be
    /// past its expiry is refreshed first (no doomed requests); with no token and no known answer, one
    /// refresh restores the session. With `waited = true` (after one wait) nothing new is started.
    pub fn prepare_request(&mut self, now_ms: u64, waited: bool) -> Prepare {
        if let Flight::Running { id, .. } = self.flight {
            if !waited {
                return Prepare::Wait(id);
            }
        } else if let (None, Legacy::Held { token, .. }) = (&self.token, &self.legacy) {
            // A legacy token is sent until its exchange succeeds (phases 0–1 accept it); no cookie refresh.
            return Prepare::Send {
                token: Some(token.clone()),
                generation: self.generation,
            };
        } else if !waited && !self.ended && !self.in_backoff(now_ms) {
            let due = match &self.token {
                Some(h) => h
                    .expiry
                    .is_some_and(|e| e.refresh_at.is_some() && e.is_expired(now_ms)),
                None => true,
            };
            if due {
                return Prepare::Wait(self.start_refresh(now_ms));
            }
        }
        let (token, generation) = self.current_token();
        Prepare::Send { token, generation }
    }

    /// A 401 answer from an allowed origin for a request sent with `sent_generation`.
    /// The shell retries at most once per request (C39): a 401 to a retry goes to the caller.
    pub fn handle_unauthorized(&mut self, now_ms: u64, sent_generation: u64) -> Unauthorized {
        if sent_generation == self.generation && self.token.is_none() {
            if let Legacy::Held { auto_tried, .. } = self.legacy {
                // Sent with the legacy token: a 401 (phase 2 names the upgrade) triggers the exchange, once.
                return match self.flight {
                    Flight::Running { id, .. } => Unauthorized::Wait(id),
                    _ if auto_tried => Unauthorized::GiveUp,
                    _ => Unauthorized::Wait(self.start_legacy(now_ms)),
                };
            }
        }
        if sent_generation != self.generation {
            return match (&self.token, self.flight) {
                (Some(h), _) => Unauthorized::Retry {
                    token: h.token.clone(),
                    generation: self.generation,
                },
                (None, Flight::Running { id, .. }) => Unauthorized::Wait(id),
                (None, _) => Unauthorized::GiveUp,
            };
        }
        if let Flight::Running { id, .. } = self.flight {
            return Unauthorized::Wait(id);
        }
        if self.ended || self.in_backoff(now_ms) || now_ms < self.suspended_until {
            return Unauthorized::GiveUp;
        }
        Unauthorized::Wait(self.start_refresh(now_ms))
    }

    /// The retry of a request, sent with a token `generation` that a refresh had just produced, was answered
    /// 401 again: the 401 is not about the token (wrong tenant, `nbf` in the future, C12, C33). The shell
    /// hands it to the caller; the core counts a strike, and more than [`BREAKER_STRIKES`] within
    /// [`BREAKER_WINDOW_MS`] suspend 401-triggered refreshes for [`BREAKER_SUSPEND_MS`] (proactive renewal
    /// goes on). A login, `setAccessToken` or logout resets the breaker.
    pub fn handle_retry_unauthorized(&mut self, now_ms: u64, generation: u64) {
        if generation != self.generation || generation == self.last_strike_generation {
            return;
        }
        self.last_strike_generation = generation;
        self.strikes
            .retain(|t| now_ms.saturating_sub(*t) < BREAKER_WINDOW_MS);
        self.strikes.push(now_ms);
        if self.strikes.len() > BREAKER_STRIKES {
            self.suspended_until = now_ms.saturating_add(BREAKER_SUSPEND_MS);
            self.strikes.clear();
        }
    }

    /// The refresh call `id` ended. Results for ids no longer in flight are dropped. `jitter` is a number in
    /// `[0, 1)` for the backoff (`Math.random()`).
    pub fn handle_refresh_response(
        &mut self,
        now_ms: u64,
        id: RefreshId,
        response: RefreshResponse<'_>,
        jitter: f64,
    ) {
        match self.flight {
            Flight::Running {
                id: current,
                legacy: true,
                ..
            } if current == id => {
                return self.settle_legacy(now_ms, id, response);
            }
            Flight::Running { id: current, .. } if current == id => {}
            _ => return,
        }
        let outcome = self.classify(now_ms, response);
        self.settle(now_ms, id, outcome, jitter);
    }

    fn classify(&mut self, now_ms: u64, response: RefreshResponse<'_>) -> Outcome {
        match response {
            RefreshResponse::NetworkError => Outcome::Retryable {
                status: None,
                retry_after_ms: None,
            },
            RefreshResponse::Redirected => Outcome::Terminal(None),
            RefreshResponse::Http {
                status,
                content_type,
                retry_after,
                body,
                body_too_large,
            } => match status {
                200..=299 => {
                    let parsed = if body_too_large {
                        Err(BodyError::TooLarge)
                    } else {
                        self.parse_body(body, content_type)
                    };
                    match parsed {
                        Ok(b) => Outcome::Success(b),
                        Err(_) => {
                            // A malformed answer (an HTML login page, C19) is retryable once; twice in a
                            // row means the endpoint will not give a token: terminal.
                            self.malformed_streak = self.malformed_streak.saturating_add(1);
                            if self.malformed_streak >= 2 {
                                Outcome::Terminal(Some(status))
                            } else {
                                Outcome::Retryable {
                                    status: Some(status),
                                    retry_after_ms: None,
                                }
                            }
                        }
                    }
                }
                _ if refresh_status_retryable(status) => Outcome::Retryable {
                    status: Some(status),
                    retry_after_ms: retry_after.and_then(|v| parse_retry_after(v, now_ms)),
                },
                _ => Outcome::Terminal(Some(status)),
            },
        }
    }

    fn settle(&mut self, now_ms: u64, id: RefreshId, outcome: Outcome, jitter: f64) {
        self.flight = Flight::Idle;
        match outcome {
            Outcome::Success(b) => {
                self.attempts = 0;
                self.malformed_streak = 0;
                self.install_and_tell(
                    now_ms,
                    b.token,
                    b.claims,
                    b.expires_in,
                    TokenSource::Refresh,
                );
            }
            Outcome::Terminal(status) => {
                self.attempts = 0;
                self.malformed_streak = 0;
                self.ended = true;
                let had = self.token.take().is_some();
                if had {
                    self.generation = self.generation.saturating_add(1);
                }
                self.actions.push_back(Action::Event(Event::RefreshFailed {
                    status,
                    retryable: false,
                    retry_at: None,
                    had_token: had,
                }));
                if had {
                    self.actions.push_back(Action::Event(Event::SessionExpired));
                }
                self.actions
                    .push_back(Action::Broadcast(Message::Ended { epoch: self.epoch }));
            }
            Outcome::Retryable {
                status,
                retry_after_ms,
            } => {
                let delay = backoff_delay(self.attempts, jitter, retry_after_ms);
                self.attempts = self.attempts.saturating_add(1);
                let until = now_ms.saturating_add(delay);
                self.flight = Flight::Backoff { until };
                let had_token = self.token.is_some();
                self.actions.push_back(Action::Event(Event::RefreshFailed {
                    status,
                    retryable: true,
                    retry_at: Some(until),
                    had_token,
                }));
                self.actions.push_back(Action::Broadcast(Message::Failed {
                    epoch: self.epoch,
                    retry_at: until,
                }));
            }
        }
        self.actions.push_back(Action::RefreshSettled { id });
    }

    /// The deadline passed (or the shell re-checks): time out a refresh, end a backoff, start a due
    /// proactive refresh. Doing nothing when nothing is due is correct: timers are hints.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        match self.flight {
            Flight::Running {
                id,
                deadline,
                legacy: true,
                ..
            } if now_ms >= deadline => {
                self.actions.push_back(Action::AbortRefresh { id });
                self.settle_legacy(now_ms, id, RefreshResponse::NetworkError);
                return;
            }
            Flight::Running { id, deadline, .. } if now_ms >= deadline => {
                self.actions.push_back(Action::AbortRefresh { id });
                self.settle(
                    now_ms,
                    id,
                    Outcome::Retryable {
                        status: None,
                        retry_after_ms: None,
                    },
                    0.5,
                );
                return;
            }
            Flight::Running {
                id,
                stage: Stage::WaitPeer { until },
                ..
            } if now_ms >= until => {
                let stage = self.announce_and_elect(id);
                self.set_stage(stage);
            }
            Flight::Running {
                id,
                stage: Stage::WaitLock { until },
                ..
            } if now_ms >= until => {
                self.actions.push_back(Action::CancelLockWait { id });
                let stage = self.elect(id);
                self.set_stage(stage);
            }
            Flight::Backoff { until } if now_ms >= until => self.flight = Flight::Idle,
            _ => {}
        }
        if self.flight == Flight::Idle && self.visible && !self.ended {
            let due = self
                .token
                .as_ref()
                .and_then(|h| h.expiry)
                .and_then(|e| e.refresh_at)
                .is_some_and(|at| now_ms >= at);
            if due {
                self.start_refresh(now_ms);
            }
        }
    }

    /// Whether another tab announced a refresh call (`refreshing`, used without Web Locks) less than
    /// `within_ms` ago and nothing was heard from it since: this tab should wait for its token (bounded)
    /// before calling `/refresh` itself.
    pub fn peer_refreshing(&self, now_ms: u64, within_ms: u64) -> bool {
        self.peer_refreshing_at
            .is_some_and(|at| now_ms.saturating_sub(at) < within_ms)
    }

    /// The shell's own refresh call for `id` starts now (after any cross-tab election): the refresh
    /// timeout counts from here.
    pub fn refresh_call_started(&mut self, now_ms: u64, id: RefreshId) {
        if let Flight::Running { id: current, .. } = self.flight {
            if current == id {
                if let Flight::Running { legacy, .. } = self.flight {
                    let deadline = now_ms.saturating_add(self.cfg.refresh_timeout_ms);
                    self.flight = Flight::Running {
                        id,
                        deadline,
                        stage: Stage::Calling,
                        legacy,
                    };
                }
            }
        }
    }

    /// Raises the epoch to at least `epoch` (a shell that knows the session state of other tabs).
    fn adopt_epoch(&mut self, epoch: u64) {
        self.epoch = self.epoch.max(epoch);
    }

    /// A validated message from another tab (see [`crate::session::crosstab`]). Messages older than this
    /// tab's epoch are ignored; returns whether the message was applied.
    ///
    /// * `token`: stored (source as sent), settling a refresh in flight here without aborting its call
    ///   (the call's answer may carry a rotated cookie) and ending any backoff.
    /// * `logout`: like a local logout, with `reason: 'remote'`, and no message back.
    /// * `ended`: the token is cleared and `sessionexpired` fires if one was held.
    pub fn handle_message(&mut self, now_ms: u64, msg: Message) -> bool {
        if msg.epoch() < self.epoch {
            return false;
        }
        // A DPoP-bound token is of no use without the key (a tab of another build, or without `dpop`).
        if matches!(&msg, Message::Token { token, .. } if token.is_dpop() && !self.cfg.dpop) {
            return false;
        }
        if !matches!(msg, Message::Refreshing { .. }) {
            self.peer_refreshing_at = None;
        }
        match msg {
            Message::Token {
                epoch,
                source,
                token,
                claims,
            } => {
                self.adopt_epoch(epoch);
                if self.token.as_ref().is_some_and(|h| h.token == token) {
                    return false;
                }
                let (settled, was_calling) = match self.flight {
                    Flight::Running { id, stage, .. } => (Some(id), stage == Stage::Calling),
                    _ => (None, false),
                };
                // Another tab signed in (or was handed a token): this tab's call belongs to the previous
                // session, and its answer must not store that session's cookie over the new one (C60).
                if let (Some(id), TokenSource::Login | TokenSource::Set | TokenSource::Legacy) =
                    (settled, source)
                {
                    self.actions.push_back(Action::AbortRefresh { id });
                }
                self.flight = Flight::Idle;
                self.attempts = 0;
                self.malformed_streak = 0;
                if was_calling {
                    // This tab's own call was running, so (without Web Locks) it announced it with `refreshing`,
                    // and the answer of a superseded call is dropped: tell the tabs the announcement is answered
                    // by passing the token on. A tab that holds it already changes nothing but its wait
                    // (F4: otherwise a tab whose call raced ours waits `lockTimeoutSeconds` before its next one).
                    self.actions.push_back(Action::Broadcast(Message::Token {
                        epoch: self.epoch,
                        source,
                        token: token.clone(),
                        claims,
                    }));
                }
                self.install(now_ms, token, &claims, None, source);
                if let Some(id) = settled {
                    self.actions.push_back(Action::RefreshSettled { id });
                }
            }
            Message::Logout { epoch } => {
                self.adopt_epoch(epoch);
                self.end_locally(LogoutReason::Remote);
            }
            Message::Refreshing { epoch } => {
                self.adopt_epoch(epoch);
                self.peer_refreshing_at = Some(now_ms);
            }
            Message::Failed { epoch, retry_at } => {
                // Only a tab still waiting for the election adopts another tab's failure; a tab whose own
                // call is running keeps its chance of a success.
                let Flight::Running {
                    id,
                    stage,
                    legacy: false,
                    ..
                } = self.flight
                else {
                    return false;
                };
                if stage == Stage::Calling {
                    return false;
                }
                self.adopt_epoch(epoch);
                let until = retry_at.clamp(
                    now_ms,
                    now_ms.saturating_add(MAX_RETRY_AFTER_MS + BACKOFF_CAP_MS),
                );
                self.attempts = self.attempts.saturating_add(1);
                self.flight = Flight::Backoff { until };
                let had_token = self.token.is_some();
                self.actions.push_back(Action::Event(Event::RefreshFailed {
                    status: None,
                    retryable: true,
                    retry_at: Some(until),
                    had_token,
                }));
                self.actions.push_back(Action::RefreshSettled { id });
            }
            Message::Ended { epoch } => {
                self.adopt_epoch(epoch);
                self.cancel_flight();
                self.ended = true;
                if self.token.take().is_some() {
                    self.generation = self.generation.saturating_add(1);
                    self.actions.push_back(Action::Event(Event::SessionExpired));
                }
            }
        }
        true
    }

    /// The page became visible or hidden. Hidden tabs run no proactive refreshes; becoming visible
    /// re-checks the wall clock at once.
    pub fn set_visible(&mut self, now_ms: u64, visible: bool) {
        self.visible = visible;
        if visible {
            self.handle_timeout(now_ms);
        }
    }

    /// The browser came back online: a backoff caused by the network ends now (C26), then expiry is
    /// re-checked as on any wake-up.
    pub fn handle_online(&mut self, now_ms: u64) {
        if let Flight::Backoff { .. } = self.flight {
            self.flight = Flight::Idle;
        }
        self.handle_timeout(now_ms);
    }

    /// The page woke up (`pageshow`, `online`, `focus`): re-check expiry against the wall clock.
    /// With `restored_from_cache`, a held token is re-validated by a refresh before further use, since
    /// another tab may have logged out meanwhile (C45).
    pub fn handle_wake(&mut self, now_ms: u64, restored_from_cache: bool) {
        if restored_from_cache && self.token.is_some() && !self.ended && !self.in_backoff(now_ms) {
            self.start_refresh(now_ms);
            return;
        }
        self.handle_timeout(now_ms);
    }

    /// Holds a legacy never-expiring token in memory (the `legacyToken` option): it is sent to the allowed
    /// origins while no new token is held, and exchanged once, automatically, on the first deprecation signal
    /// ([`handle_deprecation`](Self::handle_deprecation)) or 401 to a request that carried it.
    pub fn hold_legacy(&mut self, token: &str) -> Result<(), TokenError> {
        let (token, _) = AccessToken::parse(token)?;
        self.legacy = Legacy::Held {
            token,
            auto_tried: false,
        };
        self.legacy_failure = None;
        Ok(())
    }

    /// `upgradeLegacyToken(token?)`: hold `token` (if given) and exchange the held legacy token now, or join the
    /// exchange in flight. A refresh in flight is aborted: the exchange starts a new session. Wait for the id,
    /// then read [`legacy_status`](Self::legacy_status).
    pub fn upgrade_legacy(
        &mut self,
        now_ms: u64,
        token: Option<&str>,
    ) -> Result<RefreshId, LegacyError> {
        if let Flight::Running {
            id, legacy: true, ..
        } = self.flight
        {
            if token.is_none()
                || self
                    .legacy_token()
                    .is_some_and(|t| Some(t.expose()) == token)
            {
                return Ok(id);
            }
        }
        if let Some(t) = token {
            self.hold_legacy(t).map_err(LegacyError::Token)?;
        }
        if !matches!(self.legacy, Legacy::Held { .. }) {
            return Err(LegacyError::NoToken);
        }
        self.abort_flight();
        self.ended = false;
        Ok(self.start_legacy(now_ms))
    }

    /// The legacy token held, if any (for the exchange call and to recognise requests that carried it).
    pub fn legacy_token(&self) -> Option<&AccessToken> {
        match &self.legacy {
            Legacy::Held { token, .. } => Some(token),
            _ => None,
        }
    }

    /// Whether the flight `id` is the legacy exchange (not a refresh).
    pub fn is_legacy_flight(&self, id: RefreshId) -> bool {
        matches!(self.flight, Flight::Running { id: current, legacy: true, .. } if current == id)
    }

    /// Where the migration off the legacy token stands.
    pub fn legacy_status(&self) -> LegacyStatus {
        match (&self.legacy, self.flight) {
            (Legacy::Held { .. }, Flight::Running { legacy: true, .. }) => LegacyStatus::Upgrading,
            (Legacy::Held { .. }, _) => LegacyStatus::Held,
            (Legacy::Upgraded, _) => LegacyStatus::Upgraded,
            (Legacy::Failed, _) => LegacyStatus::Failed,
            (Legacy::None, _) => LegacyStatus::None,
        }
    }

    /// The last failed exchange: its status and reason.
    pub fn legacy_failure(&self) -> Option<(Option<u16>, LegacyFailure)> {
        self.legacy_failure
    }

    /// A response to a request sent with `sent_generation` carried a `Deprecation` header (RFC 9745). When that
    /// request carried the legacy token, the exchange starts now (once; requests wait for it like for a
    /// refresh); otherwise the header is about something else and is ignored. Returns whether it started.
    pub fn handle_deprecation(&mut self, now_ms: u64, sent_generation: u64) -> bool {
        let sent_legacy = sent_generation == self.generation && self.token.is_none();
        match self.legacy {
            Legacy::Held {
                auto_tried: false, ..
            } if sent_legacy && self.flight == Flight::Idle => {
                self.start_legacy(now_ms);
                true
            }
            _ => false,
        }
    }

    fn settle_legacy(&mut self, now_ms: u64, id: RefreshId, response: RefreshResponse<'_>) {
        self.flight = Flight::Idle;
        let failure = match response {
            RefreshResponse::Http {
                status: 200..=299,
                content_type,
                body,
                body_too_large: false,
                ..
            } => match self.parse_body(body, content_type) {
                Ok(b) => {
                    self.legacy_failure = None;
                    self.bump_epoch(now_ms);
                    self.install_and_tell(
                        now_ms,
                        b.token,
                        b.claims,
                        b.expires_in,
                        TokenSource::Legacy,
                    );
                    self.actions.push_back(Action::RefreshSettled { id });
                    return;
                }
                Err(_) => (Some(200), LegacyFailure::Unavailable),
            },
            RefreshResponse::Http { status, .. }
                if (200..=299).contains(&status) || refresh_status_retryable(status) =>
            {
                (Some(status), LegacyFailure::Unavailable)
            }
            RefreshResponse::Http { status, body, .. } => {
                let code = std::str::from_utf8(body)
                    .ok()
                    .and_then(|t| parse_object(t).ok())
                    .and_then(|o| o.get("error").and_then(|e| e.as_str()).map(str::to_string));
                let reason = match code.as_deref() {
                    Some("legacy_token_retired") => LegacyFailure::Retired,
                    Some("invalid_grant") => LegacyFailure::Replayed,
                    Some("invalid_token") => LegacyFailure::Invalid,
                    _ => LegacyFailure::Refused,
                };
                (Some(status), reason)
            }
            RefreshResponse::NetworkError => (None, LegacyFailure::Unavailable),
            RefreshResponse::Redirected => (None, LegacyFailure::Refused),
        };
        let (status, reason) = failure;
        let retryable = reason == LegacyFailure::Unavailable;
        if retryable {
            if let Legacy::Held { auto_tried, .. } = &mut self.legacy {
                *auto_tried = true;
            }
        } else {
            self.legacy = Legacy::Failed;
            if self.token.is_none() {
                // Nothing left to send: no cold-start refresh either, until a login or `refresh()`.
                self.ended = true;
            }
        }
        self.legacy_failure = Some((status, reason));
        self.actions
            .push_back(Action::Event(Event::LegacyUpgradeFailed {
                status,
                reason,
                retryable,
            }));
        self.actions.push_back(Action::RefreshSettled { id });
    }
}
