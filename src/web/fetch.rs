//! The managed `fetch`: attach the bearer for allowed origins, wait for a refresh in flight, retry a 401 once.

use js_sys::Promise;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

use super::dpop::{self, Proof};
use super::driver::{disposed_error, is_disposed, pump, with_core, Inner, Rci};
use super::facade::{as_response, status_of, Request};
use super::js::{self, now_ms};
use super::waiters::wait_settled_or_abort;
use crate::session::{AccessToken, Prepare, Unauthorized};

/// With `debug`, says once per origin why a request went out without the bearer (C61 kind: a cross-origin API
/// left out of `apiOrigins` is otherwise a silent 401).
pub(super) fn withheld(inner: &Inner, url: &str) {
    if !inner.opts.debug {
        return;
    }
    let origin = super::options::Url::new(url)
        .map(|u| u.get("origin"))
        .unwrap_or_default();
    let first = {
        let mut sh = inner.shell.borrow_mut();
        let first = !sh.withheld_from.contains(&origin);
        if first {
            sh.withheld_from.push(origin.clone());
        }
        first
    };
    if first {
        js::debug(
            true,
            &["bearer withheld from ", &origin, ": not in apiOrigins"].concat(),
        );
    }
}

/// Sets `Authorization: Bearer <token>` on `req`. A `Headers` that refuses it (it never does for a `cors` or
/// `same-origin` request, the only ones that get here) rejects the call, as `fetch` would.
pub(super) fn attach(req: &Request, token: &crate::session::AccessToken) -> Result<(), JsValue> {
    req.headers()
        .set("authorization", &["Bearer ", token.expose()].concat())
}

pub(super) async fn send(req: &Request) -> Result<JsValue, JsValue> {
    JsFuture::from(js::global_fetch_init(req, &JsValue::UNDEFINED)?).await
}

/// Sends `req` with `token`: a bearer token in `Authorization: Bearer`, a DPoP-bound one as `Authorization: DPoP`
/// with a proof, through the keyring (RFC 9449 §7.1), which answers a nonce challenge itself when `retry` (the
/// body can be sent again). Not async (one future fewer in the wasm): the caller awaits the promise.
fn send_with(
    inner: &Inner,
    req: &Request,
    token: Option<&AccessToken>,
    retry: bool,
) -> Result<JsFuture, JsValue> {
    let proof = match token {
        Some(t) if t.is_dpop() => Proof::Token(t),
        Some(t) => {
            attach(req, t)?;
            Proof::Nothing
        }
        None => Proof::Nothing,
    };
    dpop::send(inner, req, &JsValue::UNDEFINED, proof, retry).map(JsFuture::from)
}

/// A string (or `URL`) request target resolved as `fetch` resolves it in a page: against the document's base URL
/// (C59). Browsers do this themselves; jsdom's `Request` (Node's) cannot, so an app's unit test with relative URLs
/// would fail without it. A `Request` (already absolute) and a target that does not parse are left to `fetch`.
pub(super) fn absolute(input: JsValue) -> JsValue {
    if input.is_object() && !js::get(&input, "href").is_string() {
        return input; // a Request, or something fetch will stringify or refuse itself
    }
    let text = if input.is_string() {
        input.as_string()
    } else {
        js::get(&input, "href").as_string()
    };
    match text.and_then(|t| super::options::resolve(&t)) {
        Some(url) => JsValue::from_str(&url.get("href")),
        None => input,
    }
}

/// The manager's `fetch`. Builds the `Request` synchronously (like `fetch`), then runs asynchronously.
pub(super) fn fetch_entry(inner: &Rci, input: JsValue, init: JsValue) -> Promise {
    if is_disposed(inner) {
        return Promise::reject(&disposed_error());
    }
    let input = absolute(input);
    let req = match Request::new(&input, &init) {
        Ok(r) => r,
        Err(e) => return Promise::reject(&e),
    };
    // A ReadableStream body cannot be replayed: such a request is never retried.
    let stream = js::get(&js::get(&init, "body"), "getReader").is_function();
    let inner = inner.clone();
    js::promise(async move { managed_fetch(inner, req, !stream).await })
}

pub(super) async fn managed_fetch(
    inner: Rci,
    req: Request,
    replayable: bool,
) -> Result<JsValue, JsValue> {
    let own_auth = req.headers().has("authorization");
    let url = req.url().unwrap_or_default();
    if own_auth {
        return send(&req).await;
    }
    if !inner.opts.allows(&url) {
        withheld(&inner, &url);
        return send(&req).await;
    }
    // A `no-cors` request cannot carry `Authorization` (the platform drops the header): it goes out as it is,
    // and its answer never counts as an expiry (no refresh, no resend).
    if req.mode().as_deref() == Some("no-cors") {
        js::debug(
            inner.opts.debug,
            "bearer not sent: a no-cors request cannot carry Authorization",
        );
        return send(&req).await;
    }
    // A keepalive request (sent while the page goes away) cannot wait for a refresh: it goes out at once,
    // with the token only if it is not known to be expired, and is never retried (C57).
    if req.keepalive() {
        let token = inner.core.borrow().token_without_waiting(now_ms());
        return send_with(&inner, &req, token.as_ref(), false)?.await;
    }
    let signal = req.signal();
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
    // A body already used cannot be cloned: that request is not retried (as a stream body).
    let spare = if replayable {
        req.duplicate().ok()
    } else {
        None
    };
    let first = send_with(&inner, &req, token.as_ref(), replayable)?.await?;
    let status = status_of(&first);
    if status != 401 {
        // RFC 9745: a `Deprecation` answer to a request that carried the legacy token starts its exchange.
        let deprecation =
            as_response(&first).is_some_and(|r| r.headers().get("deprecation").is_some());
        if deprecation && inner.opts.legacy_upgrade_url.is_some() {
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
    let second = send_with(&inner, &spare, Some(&token), true)?.await?;
    if let Some(g) = refreshed {
        if status_of(&second) == 401 {
            with_core(&inner, |c| c.handle_retry_unauthorized(now_ms(), g));
        }
    }
    Ok(second)
}
