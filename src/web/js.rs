//! Small bindings to globals (not `window`, so the shell also runs in workers) and JS helpers: the `Reflect`
//! path for what has no type of its own (the options object an app passes, globals looked up at every call,
//! plain objects the shell builds). The JS types the shell uses have typed members in [`super::facade`].

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

/// Sends `input`/`init` through `keyring.fetch(platformFetch, input, init, token, retry)` (the package entry's DPoP
/// keyring, pkg-template/dpop.js), handing it the platform `fetch` [`global_fetch_init`] would use.
pub fn keyring_fetch(
    keyring: &JsValue,
    input: &JsValue,
    init: &JsValue,
    token: &JsValue,
    retry: bool,
) -> Result<Promise, JsValue> {
    let args = [
        &platform_fetch(),
        input,
        init,
        token,
        &JsValue::from_bool(retry),
    ];
    call(keyring, "fetch", &args).map(JsCast::unchecked_into)
}

/// Reports an exception that has no caller to go to (a failed clean-up) as an uncaught one would be:
/// `reportError(e)` (WHATWG HTML), where it exists.
pub fn report(e: &JsValue) {
    if global("reportError").is_function() {
        // `reportError` itself does not throw for any value.
        let _reported = global_call("reportError", &[e]);
    }
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
    ms(js_sys::Date::now())
}

/// A time from JS in ms since the epoch (`Date.now()`) as the core takes it: never negative, never NaN.
pub fn ms(t: f64) -> u64 {
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

/// `obj[key] = value` on an object the shell made (it cannot refuse; a failure is reported, see [`report`]).
pub fn set(obj: &JsValue, key: &str, value: &JsValue) {
    if let Err(e) = Reflect::set(obj, &JsValue::from_str(key), value) {
        report(&e);
    }
}

/// `Object.assign(target, source)`: `Err` when a getter of `source` throws.
pub fn try_assign(target: &JsValue, source: &JsValue) -> Result<(), JsValue> {
    static_call("Object", "assign", &[target, source]).map(|_target| ())
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

/// `obj[name](...args)`: `Err` when that is not a function or it throws.
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
    js_sys::Math::random()
}

/// `Array.isArray(v)`.
pub fn is_array(v: &JsValue) -> bool {
    static_call("Array", "isArray", &[v])
        .ok()
        .and_then(|r| r.as_bool())
        == Some(true)
}

/// The items of the array `Object[method](v)` (`keys`, `entries`) or `Array.from(v)`: empty where it throws.
pub fn list(object: &str, method: &str, v: &JsValue) -> js_sys::Array {
    static_call(object, method, &[v])
        .map(|a| a.unchecked_into())
        .unwrap_or_default()
}

/// `Promise.race([a, b])`.
pub fn race(a: &Promise, b: &Promise) -> Promise {
    Promise::race(&array(&[a, b]))
}

/// `f(arg)` for a resolve or release function (they return nothing and do not throw; a failure is reported).
pub fn run(f: &Function, arg: &JsValue) {
    if let Err(e) = f.call1(&JsValue::UNDEFINED, arg) {
        report(&e);
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
        super::facade::console_debug("[wasm-token-manager]", message);
    }
}
