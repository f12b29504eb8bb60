//! Lifecycle listeners: messages from the other tabs, `visibilitychange`, `pageshow`, `focus`, `online`.

use super::driver::{handler, pump, with_core, Rci};
use super::js::{self, now_ms};
use super::tabs::{self, Tabs};
use crate::session::Message;
use wasm_bindgen::JsValue;

/// A message from another tab (`data` of its `MessageEvent`), received at `at_ms`: decoded and validated, then
/// handed to the core. Live messages and those the package entry kept while the wasm was loading take this one
/// path.
pub(super) fn receive(i: &Rci, at_ms: u64, data: &JsValue) {
    match data.as_string().as_deref().and_then(Message::decode) {
        Some(m) => {
            let applied = with_core(i, |c| c.handle_message(at_ms, m));
            js::debug(
                i.opts.debug,
                if applied {
                    "message from another tab applied"
                } else {
                    "stale message from another tab ignored"
                },
            );
            pump(i);
        }
        None => js::debug(i.opts.debug, "malformed message from another tab ignored"),
    }
}

/// Listens to the other tabs and to the page lifecycle. Timers are hints: waking up re-checks the clock.
pub(super) fn install_listeners(inner: &Rci, t: &mut Tabs) {
    let handler = |f: fn(&Rci, JsValue)| handler(inner, f);
    if let Some(ch) = t.channel.as_ref().map(|c| c.target().clone()) {
        let cb = handler(|i, ev| receive(i, now_ms(), &js::get(&ev, "data")));
        tabs::listen(t, &ch, "message", cb);
    }
    let document = js::global("document");
    let cb = handler(|i, _| {
        with_core(i, |c| c.set_visible(now_ms(), tabs::page_visible()));
        pump(i);
    });
    tabs::listen(t, &document, "visibilitychange", cb);
    let global = js::global("globalThis");
    let global = if global.is_object() {
        global
    } else {
        js_sys::global().into()
    };
    let cb = handler(|i, ev| {
        let restored = js::get(&ev, "persisted").as_bool() == Some(true);
        with_core(i, |c| c.handle_wake(now_ms(), restored));
        pump(i);
    });
    tabs::listen(t, &global, "pageshow", cb);
    let cb = handler(|i, _| {
        with_core(i, |c| c.handle_wake(now_ms(), false));
        pump(i);
    });
    tabs::listen(t, &global, "focus", cb);
    let cb = handler(|i, _| {
        with_core(i, |c| c.handle_online(now_ms()));
        pump(i);
    });
    tabs::listen(t, &global, "online", cb);
}
