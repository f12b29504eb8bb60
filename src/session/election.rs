//! The cross-tab refresh election, as values: how this tab coordinates (`Coordination`), what a lock request
//! gave (`LockOutcome`), and its one constant. The states and inputs live on [`crate::session::Session`]
//! (`start_refresh` begins an election, [`Session::handle_lock`](crate::session::Session::handle_lock) and
//! [`Session::handle_yielded`](crate::session::Session::handle_yielded) feed it); the protocol is described in
//! [`crate::session::crosstab`] ("Election").

/// How the tabs of one app coordinate a refresh, chosen by the shell from what the browser offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Coordination {
    /// No other tab is asked (cross-tab off): a refresh calls at once.
    #[default]
    Alone,
    /// A `BroadcastChannel` but no Web Locks: a refresh announces its call (`refreshing`) before making it,
    /// and waits (at most [`SessionConfig::election_ms`](crate::session::SessionConfig::election_ms)) for the
    /// token of a tab that announced one.
    Announce,
    /// Web Locks: the bounded lock election (try the lock; else wait for it, bounded; double-check).
    Locks,
}

/// The outcome of an [`Action::RequestLock`](crate::session::Action::RequestLock), reported with
/// [`Session::handle_lock`](crate::session::Session::handle_lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
    /// The lock is held by this tab until the shell is told to release it.
    Granted,
    /// `ifAvailable` and another tab holds it.
    Unavailable,
    /// The request failed, was aborted or the API broke: nothing is held.
    Failed,
}

/// How long the elected tab keeps the lock after its result was broadcast (ms), so that the message reaches
/// the other tabs before any of them is granted the lock (and double-checks).
pub const HOLD_LOCK_MS: u64 = 100;
