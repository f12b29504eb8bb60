//! The exported `TokenManager` and the driver that pumps the core.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::js::{self, error, now_ms, object, opt_number};
use super::options::Options;
use super::tabs::{self, Lock, Tabs};
use super::types::{RequestInitLike, RequestInput, TokenManagerEvents, TokenManagerFetch, TokenManagerOptions};
use crate::session::{
    clamp_timer_delay, logout_result, logout_without_url, Action, BodyError, CappedBody, ErrorCode, Event, LegacyError, LogoutReason, Prepare, RefreshId,
    RefreshResponse, Session, Message, TokenSource, Unauthorized, MAX_BODY_BYTES,
};

#[derive(Default)]
struct Shell {
    disposed: bool,
    timer: Option<JsValue>,
    timer_deadline: Option<u64>,
    settles: Vec<(RefreshId, Promise, Function)>,
    /// The `AbortController`s of refresh calls.
    aborts: Vec<(RefreshId, JsValue)>,
    /// The `AbortController`s of follower tabs' waits for the election lock.
    lock_waits: Vec<(RefreshId, JsValue)>,
    /// The release of the election lock this tab still holds for a moment after a refresh.
    held_lock: Option<Function>,
    /// The origins `debug` has said the bearer is withheld from (each is said once).
    withheld_from: Vec<String>,
}

pub(crate) struct Inner {
    core: RefCell<Session>,
    shell: RefCell<Shell>,
    opts: Options,
    /// The `EventTarget` at `tm.events`.
    events: JsValue,
    tabs: RefCell<Tabs>,
    timer_cb: RefCell<Option<js::Callback>>,
    fetch_fn: RefCell<Option<js::Callback>>,
}

type Rci = Rc<Inner>;

/// Runs `f` on the core. `f` must not call into JS: the borrow ends when it returns.
fn with_core<R>(inner: &Inner, f: impl FnOnce(&mut Session) -> R) -> R {
    let mut core = inner.core.borrow_mut();
    f(&mut core)
}

fn is_disposed(inner: &Inner) -> bool {
    inner.shell.borrow().disposed
}

fn disposed_error() -> JsValue {
    error(ErrorCode::Disposed, "this TokenManager was disposed")
}

/// Drains the core's actions and performs them with no borrow held, then re-arms the timer.
fn pump(inner: &Rci) {
    loop {
        let actions = with_core(inner, |c| {
            let mut actions = Vec::new();
            while let Some(a) = c.poll_action() {
                actions.push(a);
            }
            actions
        });
        if actions.is_empty() {
            break;
        }
        for action in actions {
            perform(inner, action);
        }
    }
    rearm(inner);
}

/// Removes the controllers of refresh `id` from `list` and returns them.
fn take(list: &mut Vec<(RefreshId, JsValue)>, id: RefreshId) -> Vec<JsValue> {
    let mut taken = Vec::new();
    list.retain(|(i, c)| if *i == id { taken.push(c.clone()); false } else { true });
    taken
}

fn perform(inner: &Rci, action: Action) {
    match action {
        Action::StartRefresh { id } => {
            let i = inner.clone();
            js::spawn(async move { run_refresh(i, id).await });
        }
        Action::AbortRefresh { id } => {
            let ctrls = take(&mut inner.shell.borrow_mut().aborts, id);
            for c in ctrls {
                abort(&c);
            }
        }
        Action::RefreshSettled { id } => {
            let (resolve, waits) = {
                let mut sh = inner.shell.borrow_mut();
                let pos = sh.settles.iter().position(|(i, _, _)| *i == id);
                let resolve = pos.map(|p| sh.settles.swap_remove(p).2);
                let waits = take(&mut sh.lock_waits, id);
                (resolve, waits)
            };
            // A follower tab waiting for the election stops waiting once the result is here.
            for c in waits {
                abort(&c);
            }
            if let Some(r) = resolve {
                js::run(&r, &JsValue::UNDEFINED);
            }
        }
        Action::Event(e) => dispatch(inner, e),
        Action::Broadcast(m) => {
            let channel = inner.tabs.borrow().channel.clone();
            if let Some(ch) = channel {
                tabs::post(&ch, &m.encode());
            }
        }
    }
}

/// `controller.abort()`.
fn abort(controller: &JsValue) {
    let _ = js::call(controller, "abort", &[]);
}

fn dispatch(inner: &Rci, e: Event) {
    let (name, detail) = match e {
        Event::TokenChange { expires_at, source } => (
            "tokenchange",
            object(&[("expiresAt", &opt_number(expires_at)), ("source", &JsValue::from_str(source.as_str()))]),
        ),
        Event::RefreshFailed { status, retryable, retry_at, had_token } => (
            "refreshfailed",
            object(&[
                ("status", &opt_number(status.map(u64::from))),
                ("retryable", &JsValue::from_bool(retryable)),
                ("retryAt", &opt_number(retry_at)),
                ("hadToken", &JsValue::from_bool(had_token)),
            ]),
        ),
        Event::SessionExpired => ("sessionexpired", object(&[])),
        Event::Logout { reason } => ("logout", object(&[("reason", &JsValue::from_str(reason.as_str()))])),
        Event::LegacyUpgradeFailed { status, reason, retryable } => (
            "legacyupgradefailed",
            object(&[
                ("status", &opt_number(status.map(u64::from))),
                ("reason", &JsValue::from_str(reason.as_str())),
                ("retryable", &JsValue::from_bool(retryable)),
            ]),
        ),
    };
    js::debug(inner.opts.debug, name);
    if let Ok(ev) = js::construct("CustomEvent", &[&JsValue::from_str(name), &object(&[("detail", &detail)])]) {
        // Listener exceptions are reported by the browser, not thrown here.
        let _ = js::call(&inner.events, "dispatchEvent", &[&ev]);
    }
}

/// Arms the one timer for the core's deadline, only when the deadline changed.
fn rearm(inner: &Rci) {
    let deadline = inner.core.borrow().poll_timeout();
    let old = {
        let mut sh = inner.shell.borrow_mut();
        if sh.disposed || (sh.timer_deadline == deadline && (deadline.is_none() || sh.timer.is_some())) {
            return;
        }
        sh.timer_deadline = deadline;
        sh.timer.take()
    };
    if let Some(id) = old {
        js::clear_timeout(&id);
    }
    if let Some(at) = deadline {
        let mut delay_ms = at.saturating_sub(now_ms());
        // Without Web Locks, tabs holding the same token would all fire in the same millisecond: spread
        // them a little so that the first one's announcement reaches the others in time.
        let lockless = {
            let t = inner.tabs.borrow();
            t.channel.is_some() && t.lock_name.is_none()
        };
        if lockless {
            let spread = (inner.opts.session.margin_ms / 4).min(LOCKLESS_JITTER_MS);
            delay_ms = delay_ms.saturating_add((js::random() * spread as f64) as u64);
        }
        let delay = clamp_timer_delay(delay_ms);
        let cb: Option<JsValue> = inner.timer_cb.borrow().as_ref().map(|c| c.as_ref().clone());
        if let Some(cb) = cb {
            let id = js::set_timeout(cb.unchecked_ref(), delay as i32);
            inner.shell.borrow_mut().timer = Some(id);
        }
    }
}

fn on_timer(inner: &Rci) {
    {
        let mut sh = inner.shell.borrow_mut();
        sh.timer = None;
        sh.timer_deadline = None;
        if sh.disposed {
            return;
        }
    }
    with_core(inner, |c| c.handle_timeout(now_ms()));
    pump(inner);
}

/// A promise that resolves when refresh `id` settles (at once when it is not in flight).
fn settle_promise(inner: &Rci, id: RefreshId) -> Promise {
    let in_flight = inner.core.borrow().refresh_in_flight() == Some(id);
    if !in_flight || is_disposed(inner) {
        return Promise::resolve(&JsValue::UNDEFINED);
    }
    let existing = inner.shell.borrow().settles.iter().find(|s| s.0 == id).map(|s| s.1.clone());
    if let Some(p) = existing {
        return p;
    }
    let mut resolve: Option<Function> = None;
    let p = Promise::new(&mut |res, _rej| resolve = Some(res));
    if let Some(r) = resolve {
        inner.shell.borrow_mut().settles.push((id, p.clone(), r));
    }
    p
}

async fn wait_settled(inner: &Rci, id: RefreshId) {
    let p = settle_promise(inner, id);
    let _ = JsFuture::from(p).await;
}

/// Waits for refresh `id` like [`wait_settled`], but rejects with the signal's reason as soon as the
/// caller's `AbortSignal` fires (C44); the refresh goes on for the others.
async fn wait_settled_or_abort(inner: &Rci, id: RefreshId, signal: &JsValue) -> Result<(), JsValue> {
    if !js::get(signal, "addEventListener").is_function() {
        wait_settled(inner, id).await;
        return Ok(());
    }
    if js::get(signal, "aborted").as_bool() == Some(true) {
        return Err(js::get(signal, "reason"));
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
    let listener: [&JsValue; 2] = [&JsValue::from_str("abort"), &reject];
    let _ = js::call(signal, "addEventListener", &listener);
    let result = JsFuture::from(js::race(&settled, &aborted)).await;
    let _ = js::call(signal, "removeEventListener", &listener);
    result.map(|_| ()).map_err(|_| js::get(signal, "reason"))
}

/// Waits for refresh `id` to settle, at most `bound_ms`.
async fn wait_settled_bounded(inner: &Rci, id: RefreshId, bound_ms: u32) {
    let settled = settle_promise(inner, id);
    let mut resolve: Option<Function> = None;
    let timer = Promise::new(&mut |res, _| resolve = Some(res));
    if let Some(r) = resolve {
        let _ = js::set_timeout(&r, bound_ms.min(i32::MAX as u32) as i32);
    }
    let _ = JsFuture::from(js::race(&settled, &timer)).await;
}

fn in_flight(inner: &Inner, id: RefreshId) -> bool {
    !is_disposed(inner) && inner.core.borrow().refresh_in_flight() == Some(id)
}

/// Runs refresh `id`: alone, or through the bounded cross-tab election (see `session::crosstab`).
async fn run_refresh(inner: Rci, id: RefreshId) {
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
fn hold_briefly(inner: &Rci, release: Function) {
    let _ = js::set_timeout(&release, HOLD_LOCK_MS);
    let previous = inner.shell.borrow_mut().held_lock.replace(release);
    if let Some(p) = previous {
        js::run(&p, &JsValue::UNDEFINED);
    }
}

fn release_held(inner: &Inner) {
    let held = inner.shell.borrow_mut().held_lock.take();
    if let Some(r) = held {
        // Resolving twice is harmless: the timer may have released it already.
        js::run(&r, &JsValue::UNDEFINED);
    }
}

/// How long the elected tab keeps the lock after broadcasting its result (ms).
const HOLD_LOCK_MS: i32 = 100;

/// The largest random delay added to timers when tabs cannot use Web Locks (ms).
const LOCKLESS_JITTER_MS: u64 = 1000;

async fn call_refresh(inner: &Rci, id: RefreshId) {
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

/// How reading a login or refresh body ended.
enum BodyRead {
    /// The whole body, within the cap.
    Complete(CappedBody),
    /// The body is, or declares itself, larger than [`MAX_BODY_BYTES`]; the stream was cancelled (C23).
    TooLarge,
    /// Reading failed (the connection broke, the call was aborted, a chunk was not bytes).
    Failed(JsValue),
}

/// Reads `resp`'s body chunk by chunk into a [`CappedBody`] and cancels the stream at the first chunk that
/// does not fit, so a huge or never-ending body is read no further than the cap (C23).
/// A body chunk as a `Uint8Array` of this realm. A chunk from another realm (jsdom's window next to Node's
/// `fetch`, an iframe's stream) fails `instanceof` but is still a byte view: it is copied into this realm's type.
fn byte_chunk(value: &JsValue) -> Option<js_sys::Uint8Array> {
    if let Some(chunk) = value.dyn_ref::<js_sys::Uint8Array>() {
        return Some(chunk.clone());
    }
    let view = js::static_call("ArrayBuffer", "isView", &[value]).ok()?.as_bool() == Some(true);
    if !view || js::get(value, "BYTES_PER_ELEMENT").as_f64() != Some(1.0) {
        return None;
    }
    js::construct("Uint8Array", &[value]).ok().map(JsCast::unchecked_into)
}

async fn read_capped(resp: &JsValue) -> BodyRead {
    let stream = js::get(resp, "body");
    if stream.is_null() || stream.is_undefined() {
        return BodyRead::Complete(CappedBody::new());
    }
    let declared = js::header(resp, "content-length").and_then(|s| s.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        js::cancel(&stream);
        return BodyRead::TooLarge;
    }
    let reader = match js::call(&stream, "getReader", &[]) {
        Ok(r) => r,
        Err(e) => return BodyRead::Failed(e),
    };
    let mut body = CappedBody::new();
    loop {
        let next = match js::call(&reader, "read", &[]) {
            Ok(p) => JsFuture::from(Promise::from(p)).await,
            Err(e) => Err(e),
        };
        let next = match next {
            Ok(n) => n,
            Err(e) => return BodyRead::Failed(e),
        };
        if js::get(&next, "done").as_bool() == Some(true) {
            return BodyRead::Complete(body);
        }
        let value = js::get(&next, "value");
        let Some(chunk) = byte_chunk(&value) else {
            js::cancel(&reader);
            let message = JsValue::from_str("response body chunk is not a Uint8Array");
            return BodyRead::Failed(js::construct("TypeError", &[&message]).unwrap_or(message));
        };
        // Checked before the chunk is copied out of JavaScript.
        if !body.fits(chunk.length() as usize) || body.push(&chunk.to_vec()).is_err() {
            js::cancel(&reader);
            return BodyRead::TooLarge;
        }
    }
}

/// With `debug`, says once per origin why a request went out without the bearer (C61 kind: a cross-origin API
/// left out of `apiOrigins` is otherwise a silent 401).
fn withheld(inner: &Inner, url: &str) {
    if !inner.opts.debug {
        return;
    }
    let origin = super::options::Url::new(url).map(|u| u.get("origin")).unwrap_or_default();
    let first = {
        let mut sh = inner.shell.borrow_mut();
        let first = !sh.withheld_from.contains(&origin);
        if first {
            sh.withheld_from.push(origin.clone());
        }
        first
    };
    if first {
        js::debug(true, &["bearer withheld from ", &origin, ": not in apiOrigins"].concat());
    }
}

fn attach(req: &JsValue, token: &crate::session::AccessToken) {
    let value = JsValue::from_str(&["Bearer ", token.expose()].concat());
    let _ = js::call(&js::get(req, "headers"), "set", &[&JsValue::from_str("authorization"), &value]);
}

async fn send(req: &JsValue) -> Result<JsValue, JsValue> {
    JsFuture::from(js::global_fetch_init(req, &JsValue::UNDEFINED)?).await
}

/// A string (or `URL`) request target resolved as `fetch` resolves it in a page: against the document's base URL
/// (C59). Browsers do this themselves; jsdom's `Request` (Node's) cannot, so an app's unit test with relative URLs
/// would fail without it. A `Request` (already absolute) and a target that does not parse are left to `fetch`.
fn absolute(input: JsValue) -> JsValue {
    if input.is_object() && !js::get(&input, "href").is_string() {
        return input; // a Request, or something fetch will stringify or refuse itself
    }
    let text = if input.is_string() { input.as_string() } else { js::get(&input, "href").as_string() };
    match text.and_then(|t| super::options::resolve(&t)) {
        Some(url) => JsValue::from_str(&url.get("href")),
        None => input,
    }
}

/// The manager's `fetch`. Builds the `Request` synchronously (like `fetch`), then runs asynchronously.
fn fetch_entry(inner: &Rci, input: JsValue, init: JsValue) -> Promise {
    if is_disposed(inner) {
        return Promise::reject(&disposed_error());
    }
    let input = absolute(input);
    let req = match js::construct("Request", &[&input, &init]) {
        Ok(r) => r,
        Err(e) => return Promise::reject(&e),
    };
    // A ReadableStream body cannot be replayed: such a request is never retried.
    let stream = js::get(&js::get(&init, "body"), "getReader").is_function();
    let inner = inner.clone();
    js::promise(async move { managed_fetch(inner, req, !stream).await })
}

async fn managed_fetch(inner: Rci, req: JsValue, replayable: bool) -> Result<JsValue, JsValue> {
    let own_auth = js::call(&js::get(&req, "headers"), "has", &[&JsValue::from_str("authorization")])
        .map_or(true, |v| v.as_bool() != Some(false));
    let url = js::get(&req, "url").as_string().unwrap_or_default();
    if own_auth {
        return send(&req).await;
    }
    if !inner.opts.allows(&url) {
        withheld(&inner, &url);
        return send(&req).await;
    }
    // A `no-cors` request cannot carry `Authorization` (the platform drops the header): it goes out as it is,
    // and its answer never counts as an expiry (no refresh, no resend).
    if js::get(&req, "mode").as_string().as_deref() == Some("no-cors") {
        js::debug(inner.opts.debug, "bearer not sent: a no-cors request cannot carry Authorization");
        return send(&req).await;
    }
    // A keepalive request (sent while the page goes away) cannot wait for a refresh: it goes out at once,
    // with the token only if it is not known to be expired, and is never retried (C57).
    if js::get(&req, "keepalive").as_bool() == Some(true) {
        let token = inner.core.borrow().token_without_waiting(now_ms());
        if let Some(t) = &token {
            attach(&req, t);
        }
        return send(&req).await;
    }
    let signal = js::get(&req, "signal");
    let mut waited = false;
    let (token, generation) = loop {
        let p = with_core(&inner, |c| c.prepare_request(now_ms(), waited));
        pump(&inner);
        match p {
            Prepare::Send { token, generation } => break (token, generation),
            Prepare::Wait(id) => {
                wait_settled_or_abort(&inner, id, &signal).await?;
                if is_disposed(&inner) {
                    return Err(disposed_error());
                }
                waited = true;
            }
        }
    };
    // Clone before the first send, so that the body survives for a retry.
    let spare = if replayable { js::call(&req, "clone", &[]).ok() } else { None };
    if let Some(t) = &token {
        attach(&req, t);
    }
    let first = send(&req).await?;
    let status = js::status(&first);
    if status != 401 {
        // RFC 9745: a `Deprecation` answer to a request that carried the legacy token starts its exchange.
        if js::header(&first, "deprecation").is_some() && inner.opts.legacy_upgrade_url.is_some() {
            with_core(&inner, |c| c.handle_deprecation(now_ms(), generation));
            pump(&inner);
        }
        return Ok(first);
    }
    let decision = with_core(&inner, |c| c.handle_unauthorized(now_ms(), generation));
    pump(&inner);
    let Some(spare) = spare else {
        return Ok(first);
    };
    let (token, refreshed) = match decision {
        Unauthorized::GiveUp => return Ok(first),
        Unauthorized::Retry { token, .. } => (token, None),
        Unauthorized::Wait(id) => {
            wait_settled_or_abort(&inner, id, &signal).await?;
            let next = inner.core.borrow().token_since(generation);
            match next {
                Some((t, g)) => (t, Some(g)),
                None => return Ok(first),
            }
        }
    };
    attach(&spare, &token);
    let second = send(&spare).await?;
    if let Some(g) = refreshed {
        if js::status(&second) == 401 {
            with_core(&inner, |c| c.handle_retry_unauthorized(now_ms(), g));
        }
    }
    Ok(second)
}

/// A JS callback running `f` while the manager is alive and not disposed (one closure type for all).
fn handler(inner: &Rci, f: fn(&Rci, JsValue)) -> js::Callback {
    let weak = Rc::downgrade(inner);
    Closure::new(move |ev: JsValue, _: JsValue| {
        if let Some(i) = weak.upgrade() {
            if !is_disposed(&i) {
                f(&i, ev);
            }
        }
        JsValue::UNDEFINED
    })
}

/// Listens to the other tabs and to the page lifecycle. Timers are hints: waking up re-checks the clock.
fn install_listeners(inner: &Rci, t: &mut Tabs) {
    let handler = |f: fn(&Rci, JsValue)| handler(inner, f);
    if let Some(ch) = t.channel.clone() {
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

/// A fetch wrapper for single-page apps: keeps the access token in memory, attaches it to requests for
/// trusted origins, refreshes it through an httpOnly cookie (single-flight, proactive and on 401), and
/// retries a 401 once.
#[wasm_bindgen]
pub struct TokenManager {
    inner: Rci,
}

#[wasm_bindgen]
impl TokenManager {
    /// Creates a manager. Throws a `TokenManagerError` (`INVALID_OPTION`) naming a bad option.
    ///
    /// `events`: the `EventTarget` to fire events on (the package entry creates it before the wasm is
    /// loaded, so that `tm.events` exists at once); a new one when omitted.
    #[wasm_bindgen(constructor)]
    pub fn new(options: TokenManagerOptions, events: Option<web_sys::EventTarget>) -> Result<TokenManager, JsValue> {
        let mut opts = Options::parse(&options)?;
        let legacy_token = opts.legacy_token.take();
        let events = match events {
            Some(target) => target.into(),
            None => js::construct("EventTarget", &[])?,
        };
        let mut t = Tabs::default();
        if let Some(name) = &opts.cross_tab {
            t.channel = tabs::open_channel(name);
            if t.channel.is_none() {
                js::debug(opts.debug, "BroadcastChannel unavailable: this tab works on its own");
            }
            if t.channel.is_some() || tabs::locks_available() {
                opts.session.election_ms = u64::from(opts.lock_timeout_ms);
            }
            if tabs::locks_available() {
                t.lock_name = Some(["wasm-token-manager-refresh:", name].concat());
            } else {
                js::debug(opts.debug, "Web Locks unavailable: each tab refreshes on its own (server grace window)");
            }
        }
        let mut core = Session::new(opts.session.clone());
        if let Some(t) = legacy_token {
            core.hold_legacy(&t).map_err(|e| error(ErrorCode::InvalidOption, &["option 'legacyToken': ", e.message()].concat()))?;
        }
        let inner = Rc::new(Inner {
            core: RefCell::new(core),
            shell: RefCell::new(Shell::default()),
            opts,
            events,
            tabs: RefCell::new(Tabs::default()),
            timer_cb: RefCell::new(None),
            fetch_fn: RefCell::new(None),
        });
        install_listeners(&inner, &mut t);
        *inner.tabs.borrow_mut() = t;
        with_core(&inner, |c| c.set_visible(now_ms(), tabs::page_visible()));
        let timer = handler(&inner, |i, _| on_timer(i));
        *inner.timer_cb.borrow_mut() = Some(timer);
        // The bound fetch holds the manager weakly, so that the manager and its bound fetch can be reclaimed
        // once the manager is freed (the package entry's own bound fetch keeps the entry's manager alive).
        // Used after that, it rejects with `DISPOSED`.
        let weak = Rc::downgrade(&inner);
        let f: js::Callback = Closure::new(move |input: JsValue, init: JsValue| match weak.upgrade() {
            Some(strong) => fetch_entry(&strong, input, init).into(),
            None => Promise::reject(&disposed_error()).into(),
        });
        // An app may install it as the global fetch (`globalThis.fetch = tm.fetch`): sends then go to the
        // platform fetch of this moment, never back through a wrapper.
        js::mark_bound_fetch(f.as_ref());
        *inner.fetch_fn.borrow_mut() = Some(f);
        Ok(TokenManager { inner })
    }

    /// The manager's `fetch`, bound: it works detached (`const f = tm.fetch`), as the `fetch` of ky or
    /// openapi-fetch. Same contract as the global `fetch`.
    #[wasm_bindgen(getter)]
    pub fn fetch(&self) -> TokenManagerFetch {
        let f: JsValue = self.inner.fetch_fn.borrow().as_ref().map(|c| c.as_ref().clone()).unwrap_or(JsValue::UNDEFINED);
        f.unchecked_into()
    }

    /// Logs in: `fetch(input, init)` with `credentials: 'include'`; on a 2xx answer stores the token from the
    /// JSON body. Resolves with the `Response`; rejects with a `TokenManagerError` when a 2xx body carries no
    /// usable token.
    #[wasm_bindgen(unchecked_return_type = "Promise<Response>")]
    pub fn login(&self, input: RequestInput, init: Option<RequestInitLike>) -> Promise {
        if is_disposed(&self.inner) {
            return Promise::reject(&disposed_error());
        }
        let merged = Object::new();
        if let Some(init) = init {
            let src: JsValue = init.into();
            if src.is_object() {
                let _ = js::static_call("Object", "assign", &[&merged, &src]);
            }
        }
        js::set(&merged, "credentials", &JsValue::from_str("include"));
        let inner = self.inner.clone();
        let input = absolute(input.into());
        js::promise(async move {
            let v = JsFuture::from(js::global_fetch_init(&input, &merged)?).await?;
            let resp: web_sys::Response = v.clone().dyn_into()?;
            if js::get(&resp, "ok").as_bool() != Some(true) {
                return Ok(v);
            }
            let ct = js::header(&resp, "content-type");
            // A copy is read (at most MAX_BODY_BYTES, C23), so that the caller can still read the Response.
            let body = match read_capped(&js::call(&resp, "clone", &[])?).await {
                BodyRead::Complete(b) => b,
                BodyRead::TooLarge => {
                    // The caller gets no Response: cancel its copy too, so that the source stops.
                    let original = js::get(&resp, "body");
                    if original.is_object() {
                        js::cancel(&original);
                    }
                    return Err(error(BodyError::TooLarge.code(), BodyError::TooLarge.message()));
                }
                BodyRead::Failed(e) => return Err(e),
            };
            if is_disposed(&inner) {
                return Err(disposed_error());
            }
            let r = with_core(&inner, |c| c.set_token_body(now_ms(), body.bytes(), ct.as_deref(), TokenSource::Login));
            pump(&inner);
            match r {
                Ok(()) => Ok(v),
                Err(e) => Err(error(e.code(), e.message())),
            }
        })
    }

    /// Stores a token obtained some other way, or forgets it with `null`. Throws `INVALID_TOKEN` for a token
    /// longer than 8 KiB or with characters outside the RFC 6750 `b64token` set; opaque tokens are accepted
    /// (C58), a JWT's `exp` schedules renewal.
    #[wasm_bindgen(js_name = setAccessToken)]
    pub fn set_access_token(&self, #[wasm_bindgen(unchecked_param_type = "string | null")] token: JsValue) -> Result<(), JsValue> {
        if is_disposed(&self.inner) {
            return Err(disposed_error());
        }
        if token.is_null() || token.is_undefined() {
            with_core(&self.inner, |c| c.clear_token(now_ms()));
        } else if let Some(s) = token.as_string() {
            with_core(&self.inner, |c| c.set_token(now_ms(), &s, None, TokenSource::Set))
                .map_err(|e| error(e.code(), e.message()))?;
        } else {
            return Err(error(ErrorCode::InvalidToken, "setAccessToken expects a string or null"));
        }
        pump(&self.inner);
        Ok(())
    }

    /// Forces a refresh now, or joins the one in flight. Resolves `true` when a new token was stored.
    #[wasm_bindgen(unchecked_return_type = "Promise<boolean>")]
    pub fn refresh(&self) -> Promise {
        if is_disposed(&self.inner) {
            return Promise::reject(&disposed_error());
        }
        let (generation, id) = with_core(&self.inner, |c| (c.generation(), c.request_refresh(now_ms())));
        pump(&self.inner);
        let settled = settle_promise(&self.inner, id);
        let inner = self.inner.clone();
        js::promise(async move {
            let _ = JsFuture::from(settled).await;
            let ok = inner.core.borrow().token_since(generation).is_some();
            Ok(JsValue::from_bool(ok))
        })
    }

    /// Logs out. Locally it always wins, at once and whatever the server answers: the token is cleared,
    /// timers stop, the result of any refresh in flight is dropped, the other tabs are told, `logout` fires,
    /// and no automatic refresh (no session restore from the cookie) happens until `login`, `setAccessToken`
    /// or `refresh()`. Then it posts to `logoutUrl` with credentials and `refreshHeaders`, aborted after
    /// `refreshTimeoutSeconds`.
    ///
    /// Resolves when the server answered 2xx, or at once without `logoutUrl`. Otherwise rejects with a
    /// `TokenManagerError` whose `code` is `LOGOUT_FAILED` and whose `status` is the HTTP status, or `null`
    /// for a network error or timeout: the server session and its refresh cookie may still be alive, so tell
    /// the user. Idempotent: every call posts again (so calling it again retries); `logout` fires only when
    /// something changed.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn logout(&self) -> Promise {
        if is_disposed(&self.inner) {
            return Promise::reject(&disposed_error());
        }
        with_core(&self.inner, |c| c.logout(now_ms(), LogoutReason::User));
        pump(&self.inner);
        let Some(url) = self.inner.opts.logout_url.clone() else {
            let e = logout_without_url();
            let err = error(e.code(), e.message());
            js::set(&err, "status", &JsValue::NULL);
            return Promise::reject(&err);
        };
        let init = object(&[
            ("method", &JsValue::from_str("POST")),
            ("credentials", &JsValue::from_str("include")),
            ("headers", &self.inner.opts.headers_object()),
        ]);
        if let Ok(signal) = js::abort_signal_timeout(self.inner.opts.session.refresh_timeout_ms as f64) {
            js::set(&init, "signal", &signal);
        }
        let debug = self.inner.opts.debug;
        js::promise(async move {
            let answer = match js::global_fetch_init(&JsValue::from_str(&url), &init) {
                Ok(p) => JsFuture::from(p).await,
                Err(e) => Err(e),
            };
            let status = answer.ok().filter(|v| v.is_instance_of::<web_sys::Response>()).map(|v| js::status(&v));
            match logout_result(status) {
                Ok(()) => Ok(JsValue::UNDEFINED),
                Err(e) => {
                    js::debug(debug, "logout: the server did not confirm it");
                    let err = error(e.code(), e.message());
                    js::set(&err, "status", &opt_number(e.status.map(u64::from)));
                    Err(err)
                }
            }
        })
    }

    /// Exchanges a legacy never-expiring token once at `legacyUpgradeUrl` for a normal session, or joins the
    /// exchange in flight; without an argument, the token given as `legacyToken`. Resolves `true` when the new
    /// session's token is stored (the legacy token is then dropped). Rejects with a `TokenManagerError`
    /// `LEGACY_UPGRADE_FAILED` (with `status` and `reason`, as in the `legacyupgradefailed` event) when the
    /// exchange fails, `INVALID_TOKEN` for a malformed token, `INVALID_OPTION` without `legacyUpgradeUrl`.
    #[wasm_bindgen(js_name = upgradeLegacyToken, unchecked_return_type = "Promise<boolean>")]
    pub fn upgrade_legacy_token(&self, #[wasm_bindgen(unchecked_param_type = "string")] token: JsValue) -> Promise {
        if is_disposed(&self.inner) {
            return Promise::reject(&disposed_error());
        }
        if self.inner.opts.legacy_upgrade_url.is_none() {
            return Promise::reject(&error(ErrorCode::InvalidOption, "option 'legacyUpgradeUrl' is required to upgrade a legacy token"));
        }
        let given = token.as_string();
        if given.is_none() && !(token.is_undefined() || token.is_null()) {
            return Promise::reject(&error(ErrorCode::InvalidToken, "upgradeLegacyToken expects a token string"));
        }
        let started = with_core(&self.inner, |c| c.upgrade_legacy(now_ms(), given.as_deref()));
        pump(&self.inner);
        let id = match started {
            Ok(id) => id,
            Err(LegacyError::Token(e)) => return Promise::reject(&error(e.code(), e.message())),
            Err(LegacyError::NoToken) => {
                return Promise::reject(&error(ErrorCode::InvalidToken, "no legacy token to upgrade: pass one"));
            }
        };
        let settled = settle_promise(&self.inner, id);
        let inner = self.inner.clone();
        js::promise(async move {
            let _ = JsFuture::from(settled).await;
            let core = inner.core.borrow();
            if core.legacy_status() == crate::session::LegacyStatus::Upgraded {
                return Ok(JsValue::TRUE);
            }
            let (status, reason) = core.legacy_failure().unwrap_or((None, crate::session::LegacyFailure::Unavailable));
            let err = error(ErrorCode::LegacyUpgradeFailed, &["the legacy token exchange failed: ", reason.as_str()].concat());
            js::set(&err, "status", &opt_number(status.map(u64::from)));
            js::set(&err, "reason", &JsValue::from_str(reason.as_str()));
            Err(err)
        })
    }

    /// Where the migration off a legacy token stands: `"none"`, `"held"`, `"upgrading"`, `"upgraded"` or `"failed"`.
    #[wasm_bindgen(getter, js_name = legacyUpgrade, unchecked_return_type = "'none' | 'held' | 'upgrading' | 'upgraded' | 'failed'")]
    pub fn legacy_upgrade(&self) -> String {
        self.inner.core.borrow().legacy_status().as_str().to_string()
    }

    /// Whether a token is held.
    #[wasm_bindgen(getter, js_name = isAuthenticated)]
    pub fn is_authenticated(&self) -> bool {
        self.inner.core.borrow().is_authenticated(now_ms())
    }

    /// The token's estimated expiry in ms since the epoch (local clock), or `null`.
    #[wasm_bindgen(getter, js_name = expiresAt, unchecked_return_type = "number | null")]
    pub fn expires_at(&self) -> JsValue {
        opt_number(self.inner.core.borrow().expires_at())
    }

    /// The `EventTarget` firing `tokenchange`, `refreshfailed`, `sessionexpired` and `logout`.
    #[wasm_bindgen(getter)]
    pub fn events(&self) -> TokenManagerEvents {
        self.inner.events.clone().unchecked_into()
    }

    /// Stops timers and listeners and forgets the token; later calls reject with `DISPOSED`.
    pub fn dispose(&self) {
        let inner = &self.inner;
        let (timer, aborts, settles) = {
            let mut sh = inner.shell.borrow_mut();
            if sh.disposed {
                return;
            }
            sh.disposed = true;
            sh.timer_deadline = None;
            let mut aborts = std::mem::take(&mut sh.aborts);
            aborts.append(&mut sh.lock_waits);
            (sh.timer.take(), aborts, std::mem::take(&mut sh.settles))
        };
        let fresh = Session::new(inner.opts.session.clone());
        let old = std::mem::replace(&mut *inner.core.borrow_mut(), fresh);
        drop(old);
        if let Some(t) = timer {
            js::clear_timeout(&t);
        }
        let mut t = std::mem::take(&mut *inner.tabs.borrow_mut());
        t.close();
        release_held(inner);
        for (_, c) in aborts {
            abort(&c);
        }
        for (_, _, resolve) in settles {
            js::run(&resolve, &JsValue::UNDEFINED);
        }
    }
}
