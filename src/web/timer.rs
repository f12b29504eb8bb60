//! The deadline timer: one `setTimeout` for the core's next deadline, re-armed only when it changes.

use std::rc::Rc;

use gloo_timers::callback::Timeout;

use super::driver::{pump, with_core, Rci};
use super::js::{self, now_ms};
use crate::session::clamp_timer_delay;

/// Arms the one timer for the core's deadline, only when the deadline changed.
pub(super) fn rearm(inner: &Rci) {
    let deadline = inner.core.borrow().poll_timeout();
    let old = {
        let mut sh = inner.shell.borrow_mut();
        if sh.disposed
            || (sh.timer_deadline == deadline && (deadline.is_none() || sh.timer.is_some()))
        {
            return;
        }
        sh.timer_deadline = deadline;
        sh.timer.take()
    };
    drop(old); // cleared
    if let Some(at) = deadline {
        let mut delay_ms = at.saturating_sub(now_ms());
        // Without Web Locks, tabs holding the same token would all fire in the same millisecond: spread
        // them a little so that the first one's announcement reaches the others in time.
        let lockless = {
            let t = inner.tabs.borrow();
            t.channel.is_some() && t.lock_name.is_none()
        };
        if lockless {
            let spread = (inner.opts.session.margin_ms / 4).min(LOCKLESS_JITTER_MS);
            delay_ms = delay_ms.saturating_add((js::random() * spread as f64) as u64);
        }
        let delay = clamp_timer_delay(delay_ms);
        // The timer holds the manager weakly: a freed manager's timer does nothing.
        let weak = Rc::downgrade(inner);
        let timer = Timeout::new(delay, move || {
            if let Some(i) = weak.upgrade() {
                on_timer(&i);
            }
        });
        inner.shell.borrow_mut().timer = Some(timer);
    }
}

pub(super) fn on_timer(inner: &Rci) {
    // The fired timer is dropped after this call returns (wasm-bindgen defers freeing a running closure).
    let fired = {
        let mut sh = inner.shell.borrow_mut();
        sh.timer_deadline = None;
        if sh.disposed {
            return;
        }
        sh.timer.take()
    };
    drop(fired);
    with_core(inner, |c| c.handle_timeout(now_ms()));
    pump(inner);
}

/// The largest random delay added to timers when tabs cannot use Web Locks (ms).
pub(super) const LOCKLESS_JITTER_MS: u64 = 1000;
