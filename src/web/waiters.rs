//! Waiters: promises that resolve when a refresh settles, raced against a caller's `AbortSignal` or a bound.

use js_sys::{Function, Promise};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

use super::driver::{is_disposed, Rci};
use super::facade::AbortSignal;
use super::js;
use super::owners::{Listener, Settle};
use crate::session::RefreshId;

/// A promise that resolves when refresh `id` settles (at once when it is not in flight).
pub(super) fn settle_promise(inner: &Rci, id: RefreshId) -> Promise {
    let in_flight = inner.core.borrow().refresh_in_flight() == Some(id);
    if !in_flight || is_disposed(inner) {
        return Promise::resolve(&JsValue::UNDEFINED);
    }
    let existing = inner
        .shell
        .borrow()
        .settles
        .iter()
        .find(|s| s.0 == id)
        .map(|s| s.1.promise());
    if let Some(p) = existing {
        return p;
    }
    match Settle::new() {
        Some(settle) => {
            let p = settle.promise();
            inner.shell.borrow_mut().settles.push((id, settle));
            p
        }
        None => Promise::resolve(&JsValue::UNDEFINED),
    }
}

pub(super) async fn wait_settled(inner: &Rci, id: RefreshId) {
    // A settle promise only resolves.
    let _resolved = JsFuture::from(settle_promise(inner, id)).await;
}

/// Waits for refresh `id` like [`wait_settled`], but rejects with the signal's reason as soon as the
/// caller's `AbortSignal` fires (C44); the refresh goes on for the others.
pub(super) async fn wait_settled_or_abort(
    inner: &Rci,
    id: RefreshId,
    signal: &AbortSignal,
) -> Result<(), JsValue> {
    if signal.aborted() {
        return Err(signal.reason());
    }
    let settled = settle_promise(inner, id);
    let mut reject: Option<Function> = None;
    let aborted = Promise::new(&mut |_res, rej| reject = Some(rej));
    let Some(reject) = reject else {
        wait_settled(inner, id).await;
        return Ok(());
    };
    // `abort` rejects `aborted` (with the event; the settle promise never rejects), and the caller gets the
    // signal's reason, as `fetch` gives it.
    let Some(listener) = Listener::function(signal, "abort", &reject) else {
        wait_settled(inner, id).await;
        return Ok(());
    };
    let result = JsFuture::from(js::race(&settled, &aborted)).await;
    drop(listener); // removed
    result.map(|_| ()).map_err(|_| signal.reason())
}
