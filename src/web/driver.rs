//! The driver: the shell's state, and the pump that drains the core's actions and performs them (events,
//! broadcasts, refresh calls), with no borrow held while JS runs.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use wasm_bindgen::prelude::*;

use super::facade::CustomEvent;
use super::js::{self, error, object, opt_number};
use super::options::Options;
use super::owners::{Abort, LockRelease, Settle};
use super::refresh::{call_refresh, double_check, release_lock, request_lock};
use super::tabs::Tabs;
use super::timer::rearm;
use crate::session::{Action, ErrorCode, Event, RefreshId, Session};

/// The JS resources a manager holds, each in its owner: dropping this (on `dispose`, `free()` or
/// `[Symbol.dispose]()`) clears the timer, aborts the calls and lock waits, releases the locks and wakes every
/// waiter.
#[derive(Default)]
pub(super) struct Shell {
    pub(super) disposed: bool,
    /// The one deadline timer.
    pub(super) timer: Option<Timeout>,
    pub(super) timer_deadline: Option<u64>,
    /// The promises callers wait on, per refresh.
    pub(super) settles: Vec<(RefreshId, Settle)>,
    /// The `AbortController`s of refresh calls.
    pub(super) aborts: Vec<(RefreshId, Abort)>,
    /// The `AbortController`s of follower tabs' waits for the election lock.
    pub(super) lock_waits: Vec<(RefreshId, Abort)>,
    /// The election locks this tab holds for a refresh in flight.
    pub(super) held_locks: Vec<(RefreshId, LockRelease)>,
    /// The election locks held a moment longer after a refresh: each released when its timer fires, or at once
    /// when dropped.
    pub(super) releasing: Vec<Timeout>,
    /// The origins `debug` has said the bearer is withheld from (each is said once).
    pub(super) withheld_from: Vec<String>,
}

pub(super) struct Inner {
    pub(super) core: RefCell<Session>,
    pub(super) shell: RefCell<Shell>,
    pub(super) opts: Options,
    /// The `EventTarget` at `tm.events`.
    pub(super) events: JsValue,
    pub(super) tabs: RefCell<Tabs>,
    /// The bound `fetch`: a JS-owned function holding this manager weakly (see `TokenManager::new`).
    pub(super) fetch_fn: JsValue,
    /// The DPoP keyring the package entry handed over with the `dpop` option (see [`super::dpop`]).
    pub(super) dpop: Option<JsValue>,
}

pub(super) type Rci = Rc<Inner>;

/// Runs `f` on the core. `f` must not call into JS: the borrow ends when it returns.
pub(super) fn with_core<R>(inner: &Inner, f: impl FnOnce(&mut Session) -> R) -> R {
    let mut core = inner.core.borrow_mut();
    f(&mut core)
}

pub(super) fn is_disposed(inner: &Inner) -> bool {
    inner.shell.borrow().disposed
}

pub(super) fn disposed_error() -> JsValue {
    error(ErrorCode::Disposed, "this TokenManager was disposed")
}

/// Drains the core's actions and performs them with no borrow held, then re-arms the timer.
pub(super) fn pump(inner: &Rci) {
    loop {
        let actions = with_core(inner, |c| {
            let mut actions = Vec::new();
            while let Some(a) = c.poll_action() {
                actions.push(a);
            }
            actions
        });
        if actions.is_empty() {
            break;
        }
        for action in actions {
            perform(inner, action);
        }
    }
    rearm(inner);
}

/// Removes the owners of refresh `id` from `list` and returns them, to drop once no borrow is held.
pub(super) fn take<T>(list: &mut Vec<(RefreshId, T)>, id: RefreshId) -> Vec<T> {
    let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(list)
        .into_iter()
        .partition(|(i, _)| *i == id);
    *list = kept;
    taken.into_iter().map(|(_, t)| t).collect()
}

pub(super) fn perform(inner: &Rci, action: Action) {
    match action {
        Action::StartRefresh { id } => {
            let i = inner.clone();
            js::spawn(async move { call_refresh(&i, id).await });
        }
        Action::RequestLock { id, wait } => {
            let i = inner.clone();
            js::spawn(async move { request_lock(i, id, wait).await });
        }
        Action::CancelLockWait { id } => {
            let waits = take(&mut inner.shell.borrow_mut().lock_waits, id);
            drop(waits);
        }
        Action::ReleaseLock { id, delay_ms } => release_lock(inner, id, delay_ms),
        Action::YieldToMessages { id } => {
            let i = inner.clone();
            js::spawn(async move { double_check(i, id).await });
        }
        Action::AbortRefresh { id } => {
            let calls = take(&mut inner.shell.borrow_mut().aborts, id);
            drop(calls);
        }
        Action::RefreshSettled { id } => {
            // The waiters wake, and a follower tab waiting for the election stops waiting once the result is here.
            let owners = {
                let mut sh = inner.shell.borrow_mut();
                (take(&mut sh.settles, id), take(&mut sh.lock_waits, id))
            };
            drop(owners);
        }
        Action::Event(e) => dispatch(inner, e),
        Action::Broadcast(m) => {
            let tabs = inner.tabs.borrow();
            if let Some(ch) = &tabs.channel {
                // Posting runs no listener of this tab (a channel does not hear itself).
                ch.post(&m.encode());
            }
        }
    }
}

/// Disposes: marks the manager disposed, forgets the token, and drops every owner (the timer is cleared,
/// calls and lock waits are aborted, locks released, waiters woken, listeners removed, the channel closed).
/// What `dispose()`, `free()` and `[Symbol.dispose]()` all do. Idempotent.
pub(super) fn dispose(inner: &Inner) {
    let owners = {
        let mut sh = inner.shell.borrow_mut();
        if sh.disposed {
            return;
        }
        std::mem::replace(
            &mut *sh,
            Shell {
                disposed: true,
                ..Shell::default()
            },
        )
    };
    let fresh = Session::new(inner.opts.session.clone());
    let old = std::mem::replace(&mut *inner.core.borrow_mut(), fresh);
    let tabs = std::mem::take(&mut *inner.tabs.borrow_mut());
    // Dropped with no borrow held: an abort or a release may run JS.
    drop((old, owners, tabs));
}

pub(super) fn dispatch(inner: &Rci, e: Event) {
    let (name, detail) = match e {
        Event::TokenChange { expires_at, source } => (
            "tokenchange",
            object(&[
                ("expiresAt", &opt_number(expires_at)),
                ("source", &JsValue::from_str(source.as_str())),
            ]),
        ),
        Event::RefreshFailed {
            status,
            retryable,
            retry_at,
            had_token,
        } => (
            "refreshfailed",
            object(&[
                ("status", &opt_number(status.map(u64::from))),
                ("retryable", &JsValue::from_bool(retryable)),
                ("retryAt", &opt_number(retry_at)),
                ("hadToken", &JsValue::from_bool(had_token)),
            ]),
        ),
        Event::SessionExpired => ("sessionexpired", object(&[])),
        Event::Logout { reason } => (
            "logout",
            object(&[("reason", &JsValue::from_str(reason.as_str()))]),
        ),
        Event::LegacyUpgradeFailed {
            status,
            reason,
            retryable,
        } => (
            "legacyupgradefailed",
            object(&[
                ("status", &opt_number(status.map(u64::from))),
                ("reason", &JsValue::from_str(reason.as_str())),
                ("retryable", &JsValue::from_bool(retryable)),
            ]),
        ),
    };
    js::debug(inner.opts.debug, name);
    let target: &web_sys::EventTarget = inner.events.unchecked_ref();
    // Listener exceptions are reported by the browser, not thrown here; `dispatchEvent` itself throws only for
    // an event that is being dispatched already, which a new one never is.
    let dispatched = CustomEvent::new(name, &object(&[("detail", &detail)]))
        .and_then(|ev| target.dispatch_event(&ev));
    if let Err(e) = dispatched {
        js::report(&e);
    }
}

/// A JS callback running `f` while the manager is alive and not disposed (one closure type for all).
pub(super) fn handler(inner: &Rci, f: fn(&Rci, JsValue)) -> js::Callback {
    let weak = Rc::downgrade(inner);
    Closure::new(move |ev: JsValue, _: JsValue| {
        if let Some(i) = weak.upgrade() {
            if !is_disposed(&i) {
                f(&i, ev);
            }
        }
        JsValue::UNDEFINED
    })
}
