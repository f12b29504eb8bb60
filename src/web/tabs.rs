//! Cross-tab coordination and page lifecycle: the BroadcastChannel, the bounded Web Locks election, and
//! the `visibilitychange` / `pageshow` / `online` / `focus` listeners. The protocol is described in
//! [`crate::session::crosstab`]; this module only moves bytes and events.

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::facade::{lock_manager, AbortSignal, MessageChannel};
use super::js::{self, object};
use super::owners::{Channel, Listener, LockRelease};

/// The resources this manager holds for other tabs and the page lifecycle, in their owners: dropping this
/// removes the listeners and closes the channel.
#[derive(Default)]
pub struct Tabs {
    /// The BroadcastChannel, when cross-tab coordination is on and the API exists.
    pub channel: Option<Channel>,
    /// Whether `channel` is the one the package entry opened at construction, so that the messages it kept
    /// while the wasm was loading belong to it (see `TokenManager::receive_early`).
    pub early: bool,
    /// The Web Locks name of the refresh election, when cross-tab is on and the API exists.
    pub lock_name: Option<String>,
    /// Every listener added.
    pub listeners: Vec<Listener>,
}

/// Whether the Web Locks API is there.
pub fn locks_available() -> bool {
    lock_manager().is_some()
}

/// Adds `cb` as a listener for `name` on `target`, when `target` is an `EventTarget`.
pub fn listen(tabs: &mut Tabs, target: &JsValue, name: &'static str, cb: js::Callback) {
    tabs.listeners.extend(Listener::new(target, name, cb));
}

/// Whether the page is visible (`true` where there is no document, e.g. in a worker).
pub fn page_visible() -> bool {
    let doc = js::global("document");
    js::get(&doc, "visibilityState")
        .as_string()
        .is_none_or(|s| s != "hidden")
}

/// The outcome of a lock request.
pub enum Lock {
    /// Held until the owner is dropped.
    Held(LockRelease),
    /// `ifAvailable` and another tab holds it.
    Unavailable,
    /// The bounded wait timed out or was aborted, or the API failed.
    NotAcquired,
}

/// Requests the exclusive lock `name`: with `if_available` it never waits; otherwise it waits until it is
/// granted or aborted through `signal` (the core bounds the wait). Never `steal`.
pub async fn acquire(name: &str, if_available: bool, signal: Option<&AbortSignal>) -> Lock {
    let Some(locks) = lock_manager() else {
        return Lock::NotAcquired;
    };
    let mut release_fn: Option<Function> = None;
    let release = Promise::new(&mut |res, _| release_fn = Some(res));
    let mut granted_fn: Option<Function> = None;
    let granted = Promise::new(&mut |res, _| granted_fn = Some(res));
    let (Some(release_fn), Some(granted_fn)) = (release_fn, granted_fn) else {
        return Lock::NotAcquired;
    };
    let hold = release.clone();
    // JS owns the callback (freed when collected); Web Locks calls it once.
    let callback: js::Callback = Closure::new(move |lock: JsValue, _: JsValue| {
        js::run(&granted_fn, &lock);
        hold.clone().into()
    });
    let callback = callback.into_js_value();
    let options = object(&[("ifAvailable", &JsValue::from_bool(if_available))]);
    if let Some(signal) = signal {
        js::set(&options, "signal", signal);
    }
    let pending = match locks.request(name, &options, &callback) {
        Ok(p) => p,
        Err(_) => return Lock::NotAcquired,
    };
    let release = LockRelease(release_fn);
    match JsFuture::from(js::race(&granted, &pending)).await {
        Ok(lock) if lock.is_object() => Lock::Held(release),
        // Not granted: dropping `release` settles the callback's promise, should it run after all.
        Ok(_) => Lock::Unavailable,
        Err(_) => Lock::NotAcquired,
    }
}

/// Resolves after a macrotask (a MessageChannel round trip, which fake timers do not freeze), letting
/// messages already queued from other tabs arrive first.
pub async fn yield_to_messages() {
    let Ok(ch) = MessageChannel::new() else {
        return;
    };
    let (port1, port2) = (ch.port1(), ch.port2());
    let mut resolve: Option<Function> = None;
    let p = Promise::new(&mut |res, _| resolve = Some(res));
    let Some(r) = resolve else {
        return;
    };
    port1.set_onmessage(&r);
    if port2.post_message(&JsValue::NULL).is_ok() {
        // The promise only resolves (the resolve function is all it is given).
        let _resolved = JsFuture::from(p).await;
    }
    for port in [&port1, &port2] {
        port.close();
    }
}
