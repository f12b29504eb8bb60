//! The deadline timer: one `setTimeout` for the core's next deadline, re-armed only when it changes.

use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;

use super::driver::{pump, with_core, Rci};
use super::js::{self, now_ms};
use crate::session::clamp_timer_delay;

/// Arms the one timer for the core's deadline, only when the deadline changed.
pub(super) fn rearm(inner: &Rci) {
    let deadline = inner.core.borrow().poll_timeout();
    let old = {
        let mut sh = inner.shell.borrow_mut();
        if sh.disposed || (sh.timer_deadline == deadline && (deadline.is_none() || sh.timer.is_some())) {
            return;
        }
        sh.timer_deadline = deadline;
        sh.timer.take()
    };
    if let Some(id) = old {
        js::clear_timeout(&id);
    }
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
        let cb: Option<JsValue> = inner.timer_cb.borrow().as_ref().map(|c| c.as_ref().clone());
        if let Some(cb) = cb {
            let id = js::set_timeout(cb.unchecked_ref(), delay as i32);
            inner.shell.borrow_mut().timer = Some(id);
        }
    }
}

pub(super) fn on_timer(inner: &Rci) {
    {
        let mut sh = inner.shell.borrow_mut();
        sh.timer = None;
        sh.timer_deadline = None;
        if sh.disposed {
            return;
        }
    }
    with_core(inner, |c| c.handle_timeout(now_ms()));
    pump(inner);
}

/// The largest random delay added to timers when tabs cannot use Web Locks (ms).
pub(super) const LOCKLESS_JITTER_MS: u64 = 1000;
