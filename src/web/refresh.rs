//! The refresh call (or the legacy exchange) and the bounded cross-tab election in front of it.

use js_sys::Function;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::body::{read_capped, BodyRead};
use super::driver::{is_disposed, pump, take, with_core, Inner, Rci};
use super::js::{self, now_ms, object};
use super::tabs::{self, Lock};
use super::waiters::wait_settled_bounded;
use crate::session::{CappedBody, Message, RefreshId, RefreshResponse};

pub(super) fn in_flight(inner: &Inner, id: RefreshId) -> bool {
    !is_disposed(inner) && inner.core.borrow().refresh_in_flight() == Some(id)
}

/// Runs refresh `id`: alone, or through the bounded cross-tab election (see `session::crosstab`).
pub(super) async fn run_refresh(inner: Rci, id: RefreshId) {
    if !in_flight(&inner, id) {
        return;
    }
    let lock_name = inner.tabs.borrow().lock_name.clone();
    // A lock this tab still holds from its previous refresh must not make it wait for itself.
    release_held(&inner);
    let Some(name) = lock_name else {
        let channel = inner.tabs.borrow().channel.clone();
        if let Some(ch) = channel {
            // No Web Locks: wait (bounded) for a tab that announced its call, else announce ours.
            let bound = inner.opts.lock_timeout_ms;
            if inner.core.borrow().peer_refreshing(now_ms(), u64::from(bound)) {
                js::debug(inner.opts.debug, "refresh: another tab is refreshing (no Web Locks), waiting for its token");
                wait_settled_bounded(&inner, id, bound).await;
                if !in_flight(&inner, id) {
                    return;
                }
            }
            let epoch = inner.core.borrow().epoch();
            tabs::post(&ch, &Message::Refreshing { epoch }.encode());
        }
        call_refresh(&inner, id).await;
        return;
    };
    match tabs::acquire(&name, true, 0, None).await {
        Lock::Held(release) => {
            call_refresh(&inner, id).await;
            hold_briefly(&inner, release);
        }
        Lock::NotAcquired => call_refresh(&inner, id).await,
        Lock::Unavailable => {
            if !in_flight(&inner, id) {
                return; // the other tab's token arrived meanwhile
            }
            js::debug(inner.opts.debug, "refresh: another tab is refreshing, waiting for its result");
            let ctrl = js::construct("AbortController", &[]).ok();
            if let Some(c) = &ctrl {
                inner.shell.borrow_mut().lock_waits.push((id, c.clone()));
            }
            let lock = tabs::acquire(&name, false, inner.opts.lock_timeout_ms, ctrl.as_ref()).await;
            take(&mut inner.shell.borrow_mut().lock_waits, id);
            match lock {
                Lock::Held(release) => {
                    // Double-check: the other tab's token may be on its way.
                    tabs::yield_to_messages().await;
                    if in_flight(&inner, id) {
                        js::debug(inner.opts.debug, "refresh: no result from the other tab, refreshing here");
                        call_refresh(&inner, id).await;
                        hold_briefly(&inner, release);
                    } else {
                        js::run(&release, &JsValue::UNDEFINED);
                    }
                }
                Lock::Unavailable | Lock::NotAcquired => {
                    if in_flight(&inner, id) {
                        js::debug(inner.opts.debug, "refresh: election timed out, refreshing here");
                        call_refresh(&inner, id).await;
                    }
                }
            }
        }
    }
}

/// Releases the election lock a moment after the result was broadcast, so that the message reaches the
/// other tabs before any of them is granted the lock. This tab's next election, or `dispose`, releases it
/// at once (so frozen timers cannot keep it).
pub(super) fn hold_briefly(inner: &Rci, release: Function) {
    let _ = js::set_timeout(&release, HOLD_LOCK_MS);
    let previous = inner.shell.borrow_mut().held_lock.replace(release);
    if let Some(p) = previous {
        js::run(&p, &JsValue::UNDEFINED);
    }
}

pub(super) fn release_held(inner: &Inner) {
    let held = inner.shell.borrow_mut().held_lock.take();
    if let Some(r) = held {
        // Resolving twice is harmless: the timer may have released it already.
        js::run(&r, &JsValue::UNDEFINED);
    }
}

/// How long the elected tab keeps the lock after broadcasting its result (ms).
pub(super) const HOLD_LOCK_MS: i32 = 100;

pub(super) async fn call_refresh(inner: &Rci, id: RefreshId) {
    if !in_flight(inner, id) {
        return;
    }
    with_core(inner, |c| c.refresh_call_started(now_ms(), id));
    pump(inner); // the refresh timeout now counts from here: re-arm the timer
    // The legacy exchange rides the same flight (single-flight, election, timeout): only the call differs.
    let legacy = {
        let c = inner.core.borrow();
        c.is_legacy_flight(id).then(|| c.legacy_token().map(|t| ["Bearer ", t.expose()].concat()))
    };
    let url = match (&legacy, &inner.opts.legacy_upgrade_url) {
        (Some(_), Some(u)) => u.clone(),
        _ => inner.opts.refresh_url.clone(),
    };
    js::debug(inner.opts.debug, if legacy.is_some() { "legacy: exchanging the legacy token at legacyUpgradeUrl" } else { "refresh: calling refreshUrl" });
    let ctrl = js::construct("AbortController", &[]).ok();
    if let Some(c) = &ctrl {
        inner.shell.borrow_mut().aborts.push((id, c.clone()));
    }
    let init = object(&[
        ("method", &JsValue::from_str("POST")),
        ("credentials", &JsValue::from_str("include")),
        // Never follow a redirect with the cookie; an answer that redirects is terminal (C61).
        ("redirect", &JsValue::from_str("manual")),
        ("cache", &JsValue::from_str("no-store")),
        ("headers", &inner.opts.headers_object()),
    ]);
    if let Some(c) = &ctrl {
        js::set(&init, "signal", &js::get(c, "signal"));
    }
    if let Some(Some(bearer)) = &legacy {
        js::set(&js::get(&init, "headers"), "authorization", &JsValue::from_str(bearer));
    }
    let result = match js::global_fetch_init(&JsValue::from_str(&url), &init) {
        Ok(p) => JsFuture::from(p).await,
        Err(e) => Err(e),
    };
    let mut http: Option<(u16, Option<String>, Option<String>, CappedBody, bool)> = None;
    let mut redirected = false;
    if let Some(resp) = result.ok().filter(|v| v.is_instance_of::<web_sys::Response>()) {
        redirected = js::get(&resp, "type").as_string().as_deref() == Some("opaqueredirect");
        let status = js::status(&resp);
        let ct = js::header(&resp, "content-type");
        let ra = js::header(&resp, "retry-after");
        let mut body = CappedBody::new();
        let mut too_large = false;
        let mut failed = false;
        // A refused exchange names its reason in the body (`{"error": …}`).
        if (200..300).contains(&status) || (legacy.is_some() && (400..500).contains(&status)) {
            match read_capped(&resp).await {
                BodyRead::Complete(b) => body = b,
                BodyRead::TooLarge => too_large = true,
                BodyRead::Failed(_) => failed = true,
            }
        }
        if !failed && !redirected {
            http = Some((status, ct, ra, body, too_large));
        }
    }
    take(&mut inner.shell.borrow_mut().aborts, id);
    let response = match &http {
        Some((status, ct, ra, body, too_large)) => RefreshResponse::Http {
            status: *status,
            content_type: ct.as_deref(),
            retry_after: ra.as_deref(),
            body: body.bytes(),
            body_too_large: *too_large,
        },
        None if redirected => {
            js::debug(inner.opts.debug, "refresh: refreshUrl answered with a redirect (misconfigured?): the session ends");
            RefreshResponse::Redirected
        }
        None => RefreshResponse::NetworkError,
    };
    let jitter = js::random();
    with_core(inner, |c| c.handle_refresh_response(now_ms(), id, response, jitter));
    pump(inner);
}
