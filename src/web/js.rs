//! Small bindings to globals (not `window`, so the shell also runs in workers) and JS helpers.

use std::future::Future;
use std::pin::Pin;

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

use crate::session::ErrorCode;

/// `globalThis[name](...args)`, looked up at every call (tests and polyfills may replace `fetch`).
fn global_call(name: &str, args: &[&JsValue]) -> Result<JsValue, JsValue> {
    call(&js_sys::global(), name, args)
}

/// The property of a manager's bound `fetch` that holds the platform `fetch` it sends with.
const PLATFORM_FETCH: &str = "__wasmTokenManagerPlatformFetch";

/// The `fetch` the manager sends with: `globalThis.fetch`, looked up at every call (tests and polyfills may
/// replace it), unless an app has installed a manager's own `fetch` there (`globalThis.fetch = tm.fetch`):
/// then the platform `fetch` that manager saw when it was created, so a send never re-enters a wrapper.
fn platform_fetch() -> JsValue {
    let current = global("fetch");
    let platform = get(&current, PLATFORM_FETCH);
    if platform.is_function() {
        platform
    } else {
        current
    }
}

/// Marks a manager's bound `fetch` with the platform `fetch` of this moment (see [`platform_fetch`]).
pub fn mark_bound_fetch(bound: &JsValue) {
    set(bound, PLATFORM_FETCH, &platform_fetch());
}

/// Sends with the platform `fetch` (see [`platform_fetch`]), as `globalThis` requires. An `undefined`
/// `init` is no `init`.
pub fn global_fetch_init(input: &JsValue, init: &JsValue) -> Result<Promise, JsValue> {
    let f: Function = platform_fetch().dyn_into()?;
    Reflect::apply(&f, &js_sys::global(), &array(&[input, init])).map(JsCast::unchecked_into)
}

/// Reports an exception that has no caller to go to (a failed clean-up) as an uncaught one would be:
/// `reportError(e)` (WHATWG HTML), where it exists.
pub fn report(e: &JsValue) {
    if global("reportError").is_function() {
        // `reportError` itself does not throw for any value.
        let _reported = global_call("reportError", &[e]);
    }
}

/// `AbortSignal.timeout(ms)`: a signal that aborts by itself (fails where it is not supported).
pub fn abort_signal_timeout(ms: f64) -> Result<JsValue, JsValue> {
    static_call("AbortSignal", "timeout", &[&JsValue::from_f64(ms)])
}

/// The one shape of every Rust callback handed to JS (listeners, the timer, the bound `fetch`, the Web
/// Locks callback): each distinct closure type costs its own shims in the wasm and the JS glue.
pub type Callback = Closure<dyn Fn(JsValue, JsValue) -> JsValue>;

/// A boxed future, so that the executor glue is instantiated once for every async body (size).
type Job<T> = Pin<Box<dyn Future<Output = T>>>;

/// `future_to_promise`, instantiated once: every async export goes through this.
pub fn promise(f: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    to_promise(Box::pin(f))
}

fn to_promise(f: Job<Result<JsValue, JsValue>>) -> Promise {
    wasm_bindgen_futures::future_to_promise(f)
}

/// `spawn_local`, instantiated once.
pub fn spawn(f: impl Future<Output = ()> + 'static) {
    spawn_job(Box::pin(f))
}

fn spawn_job(f: Job<()>) {
    wasm_bindgen_futures::spawn_local(f)
}

/// Lets a promise settle on its own, its rejection handled (so that it is not reported as unhandled).
pub fn discard(p: Promise) {
    spawn(async move {
        let _ = wasm_bindgen_futures::JsFuture::from(p).await;
    });
}

/// The wall clock in ms since the epoch (never negative, never NaN).
pub fn now_ms() -> u64 {
    let t = static_call("Date", "now", &[]).ok().and_then(|v| v.as_f64()).unwrap_or(0.0);
    if t.is_finite() && t > 0.0 {
        t as u64
    } else {
        0
    }
}

/// `obj[key]`, or `undefined` when `obj` is not an object or the getter throws.
pub fn get(obj: &JsValue, key: &str) -> JsValue {
    if !obj.is_object() && !obj.is_function() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// `obj[key] = value`, ignoring failures.
pub fn set(obj: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// `globalThis[name]`.
pub fn global(name: &str) -> JsValue {
    get(&js_sys::global(), name)
}

/// An `Array` of these items.
pub fn array(items: &[&JsValue]) -> js_sys::Array {
    let array = js_sys::Array::new();
    for a in items {
        array.push(a);
    }
    array
}

/// `new globalThis[name](...args)`.
pub fn construct(name: &str, args: &[&JsValue]) -> Result<JsValue, JsValue> {
    let ctor: Function = global(name).dyn_into()?;
    Reflect::construct(&ctor, &array(args))
}

/// `obj[name](...args)`: `Err` when that is not a function or it throws. One import for every method the
/// shell calls, instead of one web-sys binding (and its glue) each.
pub fn call(obj: &JsValue, name: &str, args: &[&JsValue]) -> Result<JsValue, JsValue> {
    let f: Function = get(obj, name).dyn_into()?;
    Reflect::apply(&f, obj, &array(args))
}

/// `globalThis[object][method](...args)`, e.g. `Object.keys(o)`.
pub fn static_call(object: &str, method: &str, args: &[&JsValue]) -> Result<JsValue, JsValue> {
    call(&global(object), method, args)
}

/// `Math.random()`.
pub fn random() -> f64 {
    static_call("Math", "random", &[]).ok().and_then(|v| v.as_f64()).unwrap_or(0.0)
}

/// `Array.isArray(v)`.
pub fn is_array(v: &JsValue) -> bool {
    static_call("Array", "isArray", &[v]).ok().and_then(|r| r.as_bool()) == Some(true)
}

/// The items of the array `Object[method](v)` (`keys`, `entries`) or `Array.from(v)`: empty where it throws.
pub fn list(object: &str, method: &str, v: &JsValue) -> js_sys::Array {
    static_call(object, method, &[v]).map(|a| a.unchecked_into()).unwrap_or_default()
}

/// `Promise.race([a, b])`.
pub fn race(a: &Promise, b: &Promise) -> Promise {
    Promise::race(&array(&[a, b]))
}

/// `f(arg)`, ignoring what it returns or throws (resolve and release functions).
pub fn run(f: &Function, arg: &JsValue) {
    let _ = Reflect::apply(f, &JsValue::UNDEFINED, &array(&[arg]));
}

/// `stream.cancel()` of a `ReadableStream` or its reader, the promise left to settle on its own.
pub fn cancel(stream: &JsValue) {
    if let Ok(p) = call(stream, "cancel", &[]) {
        discard(p.unchecked_into());
    }
}

/// `message.headers.get(name)` of a `Request` or `Response`.
pub fn header(message: &JsValue, name: &str) -> Option<String> {
    call(&get(message, "headers"), "get", &[&JsValue::from_str(name)]).ok()?.as_string()
}

/// `response.status`, or 0 when `v` is not a `Response`.
pub fn status(v: &JsValue) -> u16 {
    if v.is_instance_of::<web_sys::Response>() {
        get(v, "status").as_f64().unwrap_or(0.0) as u16
    } else {
        0
    }
}

/// A plain object from key/value pairs.
pub fn object(pairs: &[(&str, &JsValue)]) -> JsValue {
    let o: JsValue = Object::new().into();
    for (k, v) in pairs {
        set(&o, k, v);
    }
    o
}

/// A JS `Error` with `name === 'TokenManagerError'` and a stable `code`.
pub fn error(code: ErrorCode, message: &str) -> JsValue {
    let message = JsValue::from_str(message);
    let e = construct("Error", &[&message]).unwrap_or(message);
    set(&e, "name", &JsValue::from_str("TokenManagerError"));
    set(&e, "code", &JsValue::from_str(code.as_str()));
    e
}

/// A number or `null`.
pub fn opt_number(v: Option<u64>) -> JsValue {
    match v {
        Some(n) => JsValue::from_f64(n as f64),
        None => JsValue::NULL,
    }
}

/// `console.debug`, when debugging is on. Never pass a token here.
pub fn debug(enabled: bool, message: &str) {
    if enabled {
        let _ = static_call("console", "debug", &[&JsValue::from_str("[wasm-token-manager]"), &JsValue::from_str(message)]);
    }
}
