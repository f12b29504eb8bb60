//! Owners of the JS resources the shell holds, each releasing its resource when dropped, in the style of
//! gloo's `Timeout` and `EventListener`: listeners, the `BroadcastChannel`, `AbortController`s, Web Locks
//! releases and settle promises. (Timers are gloo-timers' own `Timeout`.) Disposing a manager is dropping its
//! owners, so `dispose()`, `free()` and `[Symbol.dispose]()` reach the same state.

use js_sys::{Function, Promise};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::EventTarget;

use super::facade::{AbortController, AbortSignal, BroadcastChannel};
use super::js;

/// A listener for `name` on an `EventTarget`, removed when dropped.
#[must_use = "the listener is removed when this is dropped"]
pub struct Listener {
    target: EventTarget,
    name: &'static str,
    callback: Function,
    /// The Rust closure behind `callback`, when it is one: freed after the listener is removed.
    _closure: Option<js::Callback>,
}

impl Listener {
    /// Adds `callback` as a listener for `name` on `target`; `None` when `target` is not an `EventTarget`.
    pub fn new(target: &JsValue, name: &'static str, callback: js::Callback) -> Option<Listener> {
        let function: Function = callback.as_ref().clone().unchecked_into();
        let mut listener = Listener::function(target, name, &function)?;
        listener._closure = Some(callback);
        Some(listener)
    }

    /// Adds the JS function `callback` as a listener for `name` on `target`.
    pub fn function(target: &JsValue, name: &'static str, callback: &Function) -> Option<Listener> {
        if !target.is_object() {
            return None; // e.g. no `document` in a worker
        }
        let target: EventTarget = target.clone().unchecked_into();
        // Throws only for a target that is not an `EventTarget` after all.
        target
            .add_event_listener_with_callback(name, callback)
            .ok()?;
        Some(Listener {
            target,
            name,
            callback: callback.clone(),
            _closure: None,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Removing a listener from an `EventTarget` does not throw; a target that is not one was refused in `new`.
        if let Err(e) = self
            .target
            .remove_event_listener_with_callback(self.name, &self.callback)
        {
            js::report(&e);
        }
    }
}

/// A `BroadcastChannel`, closed when dropped.
#[must_use = "the channel is closed when this is dropped"]
pub struct Channel(BroadcastChannel);

impl Channel {
    /// Opens the channel `name`; `None` where the API is missing or refuses.
    pub fn open(name: &str) -> Option<Channel> {
        // Throws where `BroadcastChannel` is missing (it is not a constructor there).
        BroadcastChannel::new(name).ok().map(Channel::own)
    }

    /// Takes over `channel`, opened by the package entry at construction, when it is the channel `name`;
    /// otherwise closes it and returns `None` (the caller then opens `name` itself: the entry's rule for the
    /// name and [`super::options::Options`]'s disagree, a bug that `tests/e2e/entry.test.mjs` catches).
    pub fn adopt(channel: BroadcastChannel, name: &str) -> Option<Channel> {
        let channel = Channel::own(channel);
        (channel.0.name() == name).then_some(channel)
    }

    fn own(channel: BroadcastChannel) -> Channel {
        // Node's BroadcastChannel (a jsdom test environment uses it) keeps the process alive unless unref'd.
        if let Some(unref) = channel.unref() {
            if let Err(e) = unref.call0(&channel) {
                js::report(&e);
            }
        }
        Channel(channel)
    }

    /// The channel, as the `EventTarget` its messages arrive on.
    pub fn target(&self) -> &JsValue {
        &self.0
    }

    /// Posts `text` to the other tabs. A failure (the channel closed meanwhile) is not the caller's error:
    /// this tab then works on its own, as without a channel.
    pub fn post(&self, text: &str) {
        if let Err(e) = self.0.post_message(text) {
            js::report(&e);
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// An `AbortController`, aborted when dropped (a call abandoned: disposal, logout, a superseded refresh), unless
/// [`Abort::finish`] says its call is over.
#[must_use = "the controller aborts when this is dropped"]
pub struct Abort(Option<AbortController>);

impl Abort {
    /// A new controller; `None` where the API is missing.
    pub fn new() -> Option<Abort> {
        AbortController::new().ok().map(|c| Abort(Some(c)))
    }

    /// Its `AbortSignal`.
    pub fn signal(&self) -> Option<AbortSignal> {
        self.0.as_ref().map(AbortController::signal)
    }

    /// The call it guards is over: release the controller without aborting. An abort now would cancel an answer
    /// whose body was not read (a refused refresh), which the browser reports as a failed, "canceled" request.
    pub fn finish(mut self) {
        self.0 = None;
    }
}

impl Drop for Abort {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.abort();
        }
    }
}

/// The release of a held Web Lock (the resolve of the promise its callback returned), run when dropped.
#[must_use = "the lock is released when this is dropped"]
pub struct LockRelease(pub Function);

impl Drop for LockRelease {
    fn drop(&mut self) {
        js::run(&self.0, &JsValue::UNDEFINED);
    }
}

/// A promise that resolves when this owner is dropped (the refresh it waits for settled, or the manager was
/// disposed): waiters never hang.
#[must_use = "the promise resolves when this is dropped"]
pub struct Settle {
    promise: Promise,
    resolve: Function,
}

impl Settle {
    /// A pending promise and its owner; `None` if the engine did not hand out the resolve function.
    pub fn new() -> Option<Settle> {
        let mut resolve: Option<Function> = None;
        let promise = Promise::new(&mut |res, _rej| resolve = Some(res));
        resolve.map(|resolve| Settle { promise, resolve })
    }

    /// The promise.
    pub fn promise(&self) -> Promise {
        self.promise.clone()
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        js::run(&self.resolve, &JsValue::UNDEFINED);
    }
}
