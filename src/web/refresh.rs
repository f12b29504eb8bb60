//! The refresh call (or the legacy exchange), and the I/O of the cross-tab election the core runs in front of it
//! (lock requests, the double-check's yield, lock releases).

use gloo_timers::callback::Timeout;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

use super::body::{read_capped, BodyRead};
use super::dpop::{self, key_proof};
use super::driver::{is_disposed, pump, take, with_core, Inner, Rci};
use super::facade::as_response;
use super::js::{self, now_ms, object};
use super::owners::Abort;
use super::tabs::{self, Lock};
use crate::session::{clamp_timer_delay, CappedBody, LockOutcome, RefreshId, RefreshResponse};

pub(super) fn in_flight(inner: &Inner, id: RefreshId) -> bool {
    !is_disposed(inner) && inner.core.borrow().refresh_in_flight() == Some(id)
}

/// Performs [`Action::RequestLock`](crate::session::Action::RequestLock): releases at once any election lock
/// still held, requests the lock (`ifAvailable` unless `wait`; a wait is aborted through its controller, which
/// the driver keeps until the core cancels the wait or the refresh settles), and reports the outcome.
pub(super) async fn request_lock(inner: Rci, id: RefreshId, wait: bool) {
    release_all(&inner);
    if is_disposed(&inner) {
        return; // disposed between the action and this task
    }
    let Some(name) = inner.tabs.borrow().lock_name.clone() else {
        return report_lock(&inner, id, LockOutcome::Failed);
    };
    let signal = if wait {
        js::debug(
            inner.opts.debug,
            "refresh: another tab is refreshing, waiting for its result",
        );
        Abort::new().and_then(|ctrl| {
            let signal = ctrl.signal();
            inner.shell.borrow_mut().lock_waits.push((id, ctrl));
            signal
        })
    } else {
        None
    };
    let lock = tabs::acquire(&name, !wait, signal.as_ref()).await;
    let done = take(&mut inner.shell.borrow_mut().lock_waits, id);
    drop(done);
    let outcome = match lock {
        Lock::Held(release) => {
            inner.shell.borrow_mut().held_locks.push((id, release));
            LockOutcome::Granted
        }
        Lock::Unavailable => LockOutcome::Unavailable,
        Lock::NotAcquired => LockOutcome::Failed,
    };
    report_lock(&inner, id, outcome);
}

fn report_lock(inner: &Rci, id: RefreshId, outcome: LockOutcome) {
    if is_disposed(inner) {
        release_all(inner); // a lock granted after disposal
        return;
    }
    with_core(inner, |c| c.handle_lock(now_ms(), id, outcome));
    pump(inner);
}

/// Performs [`Action::YieldToMessages`](crate::session::Action::YieldToMessages): the double-check.
pub(super) async fn double_check(inner: Rci, id: RefreshId) {
    tabs::yield_to_messages().await;
    if !is_disposed(&inner) {
        with_core(&inner, |c| c.handle_yielded(now_ms(), id));
        pump(&inner);
    }
}

/// Performs [`Action::ReleaseLock`](crate::session::Action::ReleaseLock): releases the lock held for `id` after
/// `delay_ms`, so that the result's message reaches the other tabs before any of them is granted the lock. This
/// tab's next lock request, or `dispose`, releases it at once (so frozen timers cannot keep it).
pub(super) fn release_lock(inner: &Rci, id: RefreshId, delay_ms: u64) {
    let held = take(&mut inner.shell.borrow_mut().held_locks, id);
    if delay_ms == 0 {
        return drop(held);
    }
    for release in held {
        // The timer owns the release: it runs when the timer fires, or at once when the timer is dropped.
        let timer = Timeout::new(clamp_timer_delay(delay_ms), move || drop(release));
        inner.shell.borrow_mut().releasing.push(timer);
    }
}

/// Releases every election lock this tab holds, at once.
pub(super) fn release_all(inner: &Inner) {
    let held = {
        let mut sh = inner.shell.borrow_mut();
        (
            std::mem::take(&mut sh.held_locks),
            std::mem::take(&mut sh.releasing),
        )
    };
    drop(held);
}

/// An HTTP answer to the refresh call, as read (the core gets it as a [`RefreshResponse::Http`]).
struct HttpAnswer {
    status: u16,
    content_type: Option<String>,
    retry_after: Option<String>,
    body: CappedBody,
    too_large: bool,
}

pub(super) async fn call_refresh(inner: &Rci, id: RefreshId) {
    if !in_flight(inner, id) {
        return;
    }
    with_core(inner, |c| c.refresh_call_started(now_ms(), id));
    pump(inner); // the refresh timeout now counts from here: re-arm the timer
                 // The legacy exchange rides the same flight (single-flight, election, timeout): only the call differs.
    let legacy = {
        let c = inner.core.borrow();
        c.is_legacy_flight(id)
            .then(|| c.legacy_token().map(|t| ["Bearer ", t.expose()].concat()))
    };
    let url = match (&legacy, &inner.opts.legacy_upgrade_url) {
        (Some(_), Some(u)) => u.clone(),
        _ => inner.opts.refresh_url.clone(),
    };
    js::debug(
        inner.opts.debug,
        if legacy.is_some() {
            "legacy: exchanging the legacy token at legacyUpgradeUrl"
        } else {
            "refresh: calling refreshUrl"
        },
    );
    let signal = Abort::new().and_then(|ctrl| {
        let signal = ctrl.signal();
        inner.shell.borrow_mut().aborts.push((id, ctrl));
        signal
    });
    let init = object(&[
        ("method", &JsValue::from_str("POST")),
        ("credentials", &JsValue::from_str("include")),
        // Never follow a redirect with the cookie; an answer that redirects is terminal (C61).
        ("redirect", &JsValue::from_str("manual")),
        ("cache", &JsValue::from_str("no-store")),
        ("headers", &inner.opts.headers_object()),
    ]);
    if let Some(signal) = &signal {
        js::set(&init, "signal", signal);
    }
    if let Some(Some(bearer)) = &legacy {
        js::set(
            &js::get(&init, "headers"),
            "authorization",
            &JsValue::from_str(bearer),
        );
    }
    // With DPoP a proof of the key goes along (RFC 9449 §5): the server binds the session to it.
    let sent = dpop::send(
        inner,
        &JsValue::from_str(&url),
        &init,
        key_proof(inner),
        true,
    );
    let result = match sent {
        Ok(p) => JsFuture::from(p).await,
        Err(e) => Err(e),
    };
    let mut http: Option<HttpAnswer> = None;
    let mut redirected = false;
    if let Some(resp) = result.as_ref().ok().and_then(as_response) {
        redirected = resp.kind().as_deref() == Some("opaqueredirect");
        let status = resp.status();
        let headers = resp.headers();
        let ct = headers.get("content-type");
        let ra = headers.get("retry-after");
        let mut body = CappedBody::new();
        let mut too_large = false;
        let mut failed = false;
        // A refused exchange names its reason in the body (`{"error": …}`).
        if (200..300).contains(&status) || (legacy.is_some() && (400..500).contains(&status)) {
            match read_capped(resp).await {
                BodyRead::Complete(b) => body = b,
                BodyRead::TooLarge => too_large = true,
                BodyRead::Failed(_) => failed = true,
            }
        }
        if !failed && !redirected {
            http = Some(HttpAnswer {
                status,
                content_type: ct,
                retry_after: ra,
                body,
                too_large,
            });
        }
    }
    // The call is over: its controller is released without an abort, which would cancel an unread body.
    for done in take(&mut inner.shell.borrow_mut().aborts, id) {
        done.finish();
    }
    let response = match &http {
        Some(a) => RefreshResponse::Http {
            status: a.status,
            content_type: a.content_type.as_deref(),
            retry_after: a.retry_after.as_deref(),
            body: a.body.bytes(),
            body_too_large: a.too_large,
        },
        None if redirected => {
            js::debug(
                inner.opts.debug,
                "refresh: refreshUrl answered with a redirect (misconfigured?): the session ends",
            );
            RefreshResponse::Redirected
        }
        None => RefreshResponse::NetworkError,
    };
    let jitter = js::random();
    with_core(inner, |c| {
        c.handle_refresh_response(now_ms(), id, response, jitter)
    });
    pump(inner);
}
