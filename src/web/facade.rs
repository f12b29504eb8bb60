//! A typed facade over the JS types the shell uses: each member is named once, here, with its argument and
//! result types; calls that can throw return `Result` (`catch`), so a failure is handled where it happens.
//! Members are structural (`obj.member`), so objects from another realm (an iframe, jsdom next to Node's
//! `fetch`) work as they did through `Reflect`. Sources: WHATWG Fetch (`Response`, `Request`, `Headers`),
//! WHATWG DOM (`AbortController`, `AbortSignal`, `CustomEvent`), WHATWG Streams (the default reader), WHATWG
//! HTML (`BroadcastChannel`, `MessageChannel`), W3C Web Locks (`LockManager`).

use js_sys::Promise;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// A Fetch `Response`.
    pub type Response;
    /// `response.status`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn status(this: &Response) -> u16;
    /// `response.ok`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn ok(this: &Response) -> bool;
    /// `response.type` (`"opaqueredirect"` for a redirect under `redirect: 'manual'`).
    #[wasm_bindgen(method, getter, structural, js_name = type)]
    pub fn kind(this: &Response) -> Option<String>;
    /// `response.headers`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn headers(this: &Response) -> Headers;
    /// `response.body`: `None` for a body-less answer.
    #[wasm_bindgen(method, getter, structural)]
    pub fn body(this: &Response) -> Option<ReadableStream>;
    /// `response.clone()`: throws once the body was used.
    #[wasm_bindgen(method, structural, catch, js_name = clone)]
    pub fn duplicate(this: &Response) -> Result<Response, JsValue>;

    /// A Fetch `Request`.
    pub type Request;
    /// `new Request(input, init)`: throws for what `fetch` would refuse.
    #[wasm_bindgen(constructor, catch)]
    pub fn new(input: &JsValue, init: &JsValue) -> Result<Request, JsValue>;
    /// `request.headers`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn headers(this: &Request) -> Headers;
    /// `request.url`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn url(this: &Request) -> Option<String>;
    /// `request.mode`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn mode(this: &Request) -> Option<String>;
    /// `request.keepalive`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn keepalive(this: &Request) -> bool;
    /// `request.signal`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn signal(this: &Request) -> AbortSignal;
    /// `request.clone()`: throws once the body was used.
    #[wasm_bindgen(method, structural, catch, js_name = clone)]
    pub fn duplicate(this: &Request) -> Result<Request, JsValue>;

    /// Fetch `Headers`.
    pub type Headers;
    /// `headers.get(name)`.
    #[wasm_bindgen(method, structural)]
    pub fn get(this: &Headers, name: &str) -> Option<String>;
    /// `headers.has(name)`.
    #[wasm_bindgen(method, structural)]
    pub fn has(this: &Headers, name: &str) -> bool;
    /// `headers.set(name, value)`: throws for a value `Headers` refuses or an immutable guard.
    #[wasm_bindgen(method, structural, catch)]
    pub fn set(this: &Headers, name: &str, value: &str) -> Result<(), JsValue>;

    /// A `ReadableStream` (a response body).
    pub type ReadableStream;
    /// `stream.getReader()`: throws when the stream is locked.
    #[wasm_bindgen(method, structural, catch, js_name = getReader)]
    pub fn get_reader(this: &ReadableStream) -> Result<Reader, JsValue>;
    /// `stream.cancel()`: a promise (rejected, never thrown, for a locked stream).
    #[wasm_bindgen(method, structural)]
    pub fn cancel(this: &ReadableStream) -> Promise;

    /// A `ReadableStreamDefaultReader`.
    pub type Reader;
    /// `reader.read()`: a promise of a [`ReadResult`].
    #[wasm_bindgen(method, structural, catch)]
    pub fn read(this: &Reader) -> Result<Promise, JsValue>;
    /// `reader.cancel()`.
    #[wasm_bindgen(method, structural, js_name = cancel)]
    pub fn cancel_reader(this: &Reader) -> Promise;

    /// What `reader.read()` resolves with.
    pub type ReadResult;
    /// `result.done`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn done(this: &ReadResult) -> bool;
    /// `result.value`: a chunk.
    #[wasm_bindgen(method, getter, structural)]
    pub fn value(this: &ReadResult) -> JsValue;

    /// An `AbortController`.
    pub type AbortController;
    /// `new AbortController()`.
    #[wasm_bindgen(constructor, catch)]
    pub fn new() -> Result<AbortController, JsValue>;
    /// `controller.signal`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn signal(this: &AbortController) -> AbortSignal;
    /// `controller.abort()`.
    #[wasm_bindgen(method, structural)]
    pub fn abort(this: &AbortController);

    /// An `AbortSignal`.
    #[wasm_bindgen(extends = web_sys::EventTarget)]
    pub type AbortSignal;
    /// `signal.aborted`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn aborted(this: &AbortSignal) -> bool;
    /// `signal.reason`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn reason(this: &AbortSignal) -> JsValue;
    /// `AbortSignal.timeout(ms)`: throws where it is not supported.
    #[wasm_bindgen(static_method_of = AbortSignal, catch)]
    pub fn timeout(ms: f64) -> Result<AbortSignal, JsValue>;

    /// A `CustomEvent`.
    #[wasm_bindgen(extends = web_sys::Event)]
    pub type CustomEvent;
    /// `new CustomEvent(type, { detail })`.
    #[wasm_bindgen(constructor, catch)]
    pub fn new(kind: &str, init: &JsValue) -> Result<CustomEvent, JsValue>;

    /// A `BroadcastChannel`.
    #[wasm_bindgen(extends = web_sys::EventTarget)]
    pub type BroadcastChannel;
    /// `new BroadcastChannel(name)`.
    #[wasm_bindgen(constructor, catch)]
    pub fn new(name: &str) -> Result<BroadcastChannel, JsValue>;
    /// `channel.postMessage(text)`: throws once the channel is closed.
    #[wasm_bindgen(method, structural, catch, js_name = postMessage)]
    pub fn post_message(this: &BroadcastChannel, text: &str) -> Result<(), JsValue>;
    /// `channel.close()`.
    #[wasm_bindgen(method, structural)]
    pub fn close(this: &BroadcastChannel);
    /// `channel.name`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn name(this: &BroadcastChannel) -> String;
    /// `channel.unref` (Node's only: there it keeps the process alive unless called).
    #[wasm_bindgen(method, getter, structural)]
    pub fn unref(this: &BroadcastChannel) -> Option<js_sys::Function>;

    /// A `MessageChannel`.
    pub type MessageChannel;
    /// `new MessageChannel()`.
    #[wasm_bindgen(constructor, catch)]
    pub fn new() -> Result<MessageChannel, JsValue>;
    /// `channel.port1`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn port1(this: &MessageChannel) -> MessagePort;
    /// `channel.port2`.
    #[wasm_bindgen(method, getter, structural)]
    pub fn port2(this: &MessageChannel) -> MessagePort;

    /// A `MessagePort`.
    pub type MessagePort;
    /// `port.onmessage = handler`.
    #[wasm_bindgen(method, setter, structural)]
    pub fn set_onmessage(this: &MessagePort, handler: &js_sys::Function);
    /// `port.postMessage(null)`: throws once the port is closed.
    #[wasm_bindgen(method, structural, catch, js_name = postMessage)]
    pub fn post_message(this: &MessagePort, message: &JsValue) -> Result<(), JsValue>;
    /// `port.close()`.
    #[wasm_bindgen(method, structural)]
    pub fn close(this: &MessagePort);

    /// The Web Locks `LockManager` (`navigator.locks`).
    pub type LockManager;
    /// `locks.request(name, options, callback)`: the promise of the callback's result; throws for bad options.
    #[wasm_bindgen(method, structural, catch)]
    pub fn request(
        this: &LockManager,
        name: &str,
        options: &JsValue,
        callback: &JsValue,
    ) -> Result<Promise, JsValue>;

    /// `console.debug(prefix, message)`.
    #[wasm_bindgen(js_namespace = console, js_name = debug)]
    pub fn console_debug(prefix: &str, message: &str);
}

/// `navigator.locks`, looked up at every call (a test or a polyfill may remove it), when it has `request`.
pub fn lock_manager() -> Option<LockManager> {
    let locks = super::js::get(&super::js::global("navigator"), "locks");
    super::js::get(&locks, "request")
        .is_function()
        .then(|| locks.unchecked_into())
}

/// What a `fetch` resolved with, as a [`Response`] when it is one of this realm's (`instanceof Response`).
pub fn as_response(v: &JsValue) -> Option<&Response> {
    v.is_instance_of::<web_sys::Response>()
        .then(|| v.unchecked_ref())
}

/// The status of what a `fetch` resolved with: 0 when it is not a `Response`.
pub fn status_of(v: &JsValue) -> u16 {
    as_response(v).map_or(0, Response::status)
}
