//! The driver: the shell's state, and the pump that drains the core's actions and performs them (events,
//! broadcasts, refresh calls), with no borrow held while JS runs.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use super::js::{self, error, object, opt_number};
use super::options::Options;
use super::refresh::{call_refresh, double_check, release_lock, request_lock};
use super::tabs::{self, Tabs};
use super::timer::rearm;
use crate::session::{Action, ErrorCode, Event, RefreshId, Session};

#[derive(Default)]
pub(super) struct Shell {
    pub(super) disposed: bool,
    pub(super) timer: Option<JsValue>,
    pub(super) timer_deadline: Option<u64>,
    pub(super) settles: Vec<(RefreshId, Promise, Function)>,
    /// The `AbortController`s of refresh calls.
    pub(super) aborts: Vec<(RefreshId, JsValue)>,
    /// The `AbortController`s of follower tabs' waits for the election lock.
    pub(super) lock_waits: Vec<(RefreshId, JsValue)>,
    /// The releases of the election locks this tab holds: for a refresh in flight, or (`None`) for a moment
    /// after one, already set to run on a timer.
    pub(super) held_locks: Vec<(Option<RefreshId>, Function)>,
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
    pub(super) timer_cb: RefCell<Option<js::Callback>>,
    pub(super) fetch_fn: RefCell<Option<js::Callback>>,
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

/// Removes the controllers of refresh `id` from `list` and returns them.
pub(super) fn take(list: &mut Vec<(RefreshId, JsValue)>, id: RefreshId) -> Vec<JsValue> {
    let mut taken = Vec::new();
    list.retain(|(i, c)| if *i == id { taken.push(c.clone()); false } else { true });
    taken
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
            let ctrls = take(&mut inner.shell.borrow_mut().lock_waits, id);
            for c in ctrls {
                abort(&c);
            }
        }
        Action::ReleaseLock { id, delay_ms } => release_lock(inner, id, delay_ms),
        Action::YieldToMessages { id } => {
            let i = inner.clone();
            js::spawn(async move { double_check(i, id).await });
        }
        Action::AbortRefresh { id } => {
            let ctrls = take(&mut inner.shell.borrow_mut().aborts, id);
            for c in ctrls {
                abort(&c);
            }
        }
        Action::RefreshSettled { id } => {
            let (resolve, waits) = {
                let mut sh = inner.shell.borrow_mut();
                let pos = sh.settles.iter().position(|(i, _, _)| *i == id);
                let resolve = pos.map(|p| sh.settles.swap_remove(p).2);
                let waits = take(&mut sh.lock_waits, id);
                (resolve, waits)
            };
            // A follower tab waiting for the election stops waiting once the result is here.
            for c in waits {
                abort(&c);
            }
            if let Some(r) = resolve {
                js::run(&r, &JsValue::UNDEFINED);
            }
        }
        Action::Event(e) => dispatch(inner, e),
        Action::Broadcast(m) => {
            let channel = inner.tabs.borrow().channel.clone();
            if let Some(ch) = channel {
                tabs::post(&ch, &m.encode());
            }
        }
    }
}

/// `controller.abort()`.
pub(super) fn abort(controller: &JsValue) {
    let _ = js::call(controller, "abort", &[]);
}

pub(super) fn dispatch(inner: &Rci, e: Event) {
    let (name, detail) = match e {
        Event::TokenChange { expires_at, source } => (
            "tokenchange",
            object(&[("expiresAt", &opt_number(expires_at)), ("source", &JsValue::from_str(source.as_str()))]),
        ),
        Event::RefreshFailed { status, retryable, retry_at, had_token } => (
            "refreshfailed",
            object(&[
                ("status", &opt_number(status.map(u64::from))),
                ("retryable", &JsValue::from_bool(retryable)),
                ("retryAt", &opt_number(retry_at)),
                ("hadToken", &JsValue::from_bool(had_token)),
            ]),
        ),
        Event::SessionExpired => ("sessionexpired", object(&[])),
        Event::Logout { reason } => ("logout", object(&[("reason", &JsValue::from_str(reason.as_str()))])),
        Event::LegacyUpgradeFailed { status, reason, retryable } => (
            "legacyupgradefailed",
            object(&[
                ("status", &opt_number(status.map(u64::from))),
                ("reason", &JsValue::from_str(reason.as_str())),
                ("retryable", &JsValue::from_bool(retryable)),
            ]),
        ),
    };
    js::debug(inner.opts.debug, name);
    if let Ok(ev) = js::construct("CustomEvent", &[&JsValue::from_str(name), &object(&[("detail", &detail)])]) {
        // Listener exceptions are reported by the browser, not thrown here.
        let _ = js::call(&inner.events, "dispatchEvent", &[&ev]);
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
