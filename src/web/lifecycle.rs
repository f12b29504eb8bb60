//! Lifecycle listeners: messages from the other tabs, `visibilitychange`, `pageshow`, `focus`, `online`.

use super::driver::{handler, pump, with_core, Rci};
use super::js::{self, now_ms};
use super::tabs::{self, Tabs};
use crate::session::Message;
use wasm_bindgen::JsValue;

/// Listens to the other tabs and to the page lifecycle. Timers are hints: waking up re-checks the clock.
pub(super) fn install_listeners(inner: &Rci, t: &mut Tabs) {
    let handler = |f: fn(&Rci, JsValue)| handler(inner, f);
    if let Some(ch) = t.channel.as_ref().map(|c| c.target().clone()) {
        let cb = handler(|i, ev| {
            let data = js::get(&ev, "data").as_string();
            match data.as_deref().and_then(Message::decode) {
                Some(m) => {
                    let applied = with_core(i, |c| c.handle_message(now_ms(), m));
                    js::debug(i.opts.debug, if applied { "message from another tab applied" } else { "stale message from another tab ignored" });
                    pump(i);
                }
                None => js::debug(i.opts.debug, "malformed message from another tab ignored"),
            }
        });
        tabs::listen(t, &ch, "message", cb);
    }
    let document = js::global("document");
    let cb = handler(|i, _| {
        with_core(i, |c| c.set_visible(now_ms(), tabs::page_visible()));
        pump(i);
    });
    tabs::listen(t, &document, "visibilitychange", cb);
    let global = js::global("globalThis");
    let global = if global.is_object() { global } else { js_sys::global().into() };
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
