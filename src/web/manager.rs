//! The exported `TokenManager`: the JS class, its constructor and methods.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::body::{read_capped, BodyRead};
use super::dpop::{self, key_proof, reset_key};
use super::driver::{dispose, disposed_error, is_disposed, pump, with_core, Inner, Rci, Shell};
use super::facade::{as_response, AbortSignal, BroadcastChannel, Response};
use super::fetch::{absolute, fetch_entry};
use super::js::{self, error, ms, now_ms, object, opt_number};
use super::lifecycle::{install_listeners, receive};
use super::options::Options;
use super::owners::Channel;
use super::tabs::{self, Tabs};
use super::types::{
    RequestInitLike, RequestInput, TokenManagerEvents, TokenManagerFetch, TokenManagerOptions,
};
use super::waiters::settle_promise;
use crate::session::{
    logout_result, logout_without_url, BodyError, Coordination, ErrorCode, LegacyError,
    LogoutReason, Session, TokenSource,
};

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
    ///
    /// `channel`: the `BroadcastChannel` the package entry opened at its construction, while the wasm was
    /// loading (it keeps the messages that arrived meanwhile and hands them over with
    /// [`receive_early`](Self::receive_early)). This manager takes it over and closes it when disposed; one that
    /// is not the channel these options name is closed and the right one opened. None: the manager opens its own.
    ///
    /// `dpop`: the package entry's DPoP keyring (pkg-template/dpop.js), handed over for the option `dpop` (which
    /// the entry reads and does not pass on): with it, DPoP-bound tokens are accepted and proven (see
    /// [`super::dpop`]).
    #[wasm_bindgen(constructor)]
    pub fn new(
        options: TokenManagerOptions,
        events: Option<web_sys::EventTarget>,
        #[wasm_bindgen(unchecked_param_type = "BroadcastChannel")] channel: Option<
            BroadcastChannel,
        >,
        dpop: Option<js_sys::Object>,
    ) -> Result<TokenManager, JsValue> {
        let mut opts = Options::parse(&options)?;
        let dpop: Option<JsValue> = dpop.map(Into::into);
        opts.session.dpop = dpop.is_some();
        let legacy_token = opts.legacy_token.take();
        let events = match events {
            Some(target) => target.into(),
            None => web_sys::EventTarget::new()?.into(),
        };
        let mut t = Tabs::default();
        let handed = channel.is_some();
        let adopted = match (&opts.cross_tab, channel) {
            (Some(name), Some(ch)) => Channel::adopt(ch, name),
            (None, Some(ch)) => {
                ch.close();
                None
            }
            (_, None) => None,
        };
        if handed && adopted.is_none() {
            js::debug(
                opts.debug,
                "the channel opened at construction is not the one the options name: closed",
            );
        }
        if let Some(name) = &opts.cross_tab {
            t.early = adopted.is_some();
            t.channel = adopted.or_else(|| Channel::open(name));
            if t.channel.is_none() {
                js::debug(
                    opts.debug,
                    "BroadcastChannel unavailable: this tab works on its own",
                );
            }
            if t.channel.is_some() || tabs::locks_available() {
                opts.session.election_ms = u64::from(opts.lock_timeout_ms);
            }
            if tabs::locks_available() {
                t.lock_name = Some(["wasm-token-manager-refresh:", name].concat());
                opts.session.coordination = Coordination::Locks;
            } else {
                js::debug(
                    opts.debug,
                    "Web Locks unavailable: each tab refreshes on its own (server grace window)",
                );
                if t.channel.is_some() {
                    opts.session.coordination = Coordination::Announce;
                }
            }
        }
        let mut core = Session::new(opts.session.clone());
        if let Some(t) = legacy_token {
            core.hold_legacy(&t).map_err(|e| {
                error(
                    ErrorCode::InvalidOption,
                    &["option 'legacyToken': ", e.message()].concat(),
                )
            })?;
        }
        let inner = Rc::new_cyclic(|weak: &Weak<Inner>| Inner {
            core: RefCell::new(core),
            shell: RefCell::new(Shell::default()),
            opts,
            events,
            tabs: RefCell::new(Tabs::default()),
            fetch_fn: bound_fetch(weak.clone()),
            dpop,
        });
        install_listeners(&inner, &mut t);
        *inner.tabs.borrow_mut() = t;
        with_core(&inner, |c| c.set_visible(now_ms(), tabs::page_visible()));
        Ok(TokenManager { inner })
    }

    /// The manager's `fetch`, bound: it works detached (`const f = tm.fetch`), as the `fetch` of ky or
    /// openapi-fetch. Same contract as the global `fetch`.
    #[wasm_bindgen(getter)]
    pub fn fetch(&self) -> TokenManagerFetch {
        self.inner.fetch_fn.clone().unchecked_into()
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
                // Copies own enumerable properties; a throwing getter in `init` rejects, as `fetch` would.
                if let Err(e) = js::try_assign(&merged, &src) {
                    return Promise::reject(&e);
                }
            }
        }
        js::set(&merged, "credentials", &JsValue::from_str("include"));
        let inner = self.inner.clone();
        let input = absolute(input.into());
        // A ReadableStream body cannot be sent again (for a DPoP nonce challenge).
        let replayable = !js::get(&js::get(&merged, "body"), "getReader").is_function();
        js::promise(async move {
            let sent = dpop::send(&inner, &input, &merged, key_proof(&inner), replayable);
            let v = JsFuture::from(sent?).await?;
            let Some(resp) = as_response(&v) else {
                return Err(v);
            };
            if !resp.ok() {
                return Ok(v);
            }
            let ct = resp.headers().get("content-type");
            // A copy is read (at most MAX_BODY_BYTES, C23), so that the caller can still read the Response.
            let body = match read_capped(&resp.duplicate()?).await {
                BodyRead::Complete(b) => b,
                BodyRead::TooLarge => {
                    // The caller gets no Response: cancel its copy too, so that the source stops.
                    if let Some(original) = resp.body() {
                        js::discard(original.cancel());
                    }
                    return Err(error(
                        BodyError::TooLarge.code(),
                        BodyError::TooLarge.message(),
                    ));
                }
                BodyRead::Failed(e) => return Err(e),
            };
            if is_disposed(&inner) {
                return Err(disposed_error());
            }
            let r = with_core(&inner, |c| {
                c.set_token_body(now_ms(), body.bytes(), ct.as_deref(), TokenSource::Login)
            });
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
    ///
    /// `at`: when the app made the call, in ms since the epoch (the package entry keeps a call made while the
    /// wasm was loading and replays it in order with the other tabs' messages of that time, see
    /// [`receive_early`](Self::receive_early)); now when omitted.
    #[wasm_bindgen(js_name = setAccessToken)]
    pub fn set_access_token(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | null")] token: JsValue,
        at: Option<f64>,
    ) -> Result<(), JsValue> {
        if is_disposed(&self.inner) {
            return Err(disposed_error());
        }
        let now = at.map_or_else(now_ms, ms);
        if token.is_null() || token.is_undefined() {
            with_core(&self.inner, |c| c.clear_token(now));
        } else if let Some(s) = token.as_string() {
            with_core(&self.inner, |c| {
                c.set_token(now, &s, None, TokenSource::Set)
            })
            .map_err(|e| error(e.code(), e.message()))?;
        } else {
            return Err(error(
                ErrorCode::InvalidToken,
                "setAccessToken expects a string or null",
            ));
        }
        pump(&self.inner);
        Ok(())
    }

    /// Internal, for the package entry: a message from another tab that arrived at `at` (ms since the epoch)
    /// on the channel handed to the constructor, before this manager existed. It takes the path of a live message
    /// (decoded, validated, stale epochs ignored); the entry hands them over in the order they arrived, before
    /// any live one can arrive. Ignored when the channel was not taken over, or after `dispose()`.
    #[wasm_bindgen(js_name = receiveEarly)]
    pub fn receive_early(&self, at: f64, data: JsValue) {
        if is_disposed(&self.inner) || !self.inner.tabs.borrow().early {
            return;
        }
        receive(&self.inner, ms(at), &data);
    }

    /// Forces a refresh now, or joins the one in flight. Resolves `true` when a new token was stored.
    #[wasm_bindgen(unchecked_return_type = "Promise<boolean>")]
    pub fn refresh(&self) -> Promise {
        if is_disposed(&self.inner) {
            return Promise::reject(&disposed_error());
        }
        let (generation, id) = with_core(&self.inner, |c| {
            (c.generation(), c.request_refresh(now_ms()))
        });
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
        // Where `AbortSignal.timeout` is missing the call is not bounded here (the browser's own limits apply).
        if let Ok(signal) = AbortSignal::timeout(self.inner.opts.session.refresh_timeout_ms as f64)
        {
            js::set(&init, "signal", &signal);
        }
        let debug = self.inner.opts.debug;
        let inner = self.inner.clone();
        js::promise(async move {
            let sent = dpop::send(
                &inner,
                &JsValue::from_str(&url),
                &init,
                key_proof(&inner),
                true,
            );
            let answer = match sent {
                Ok(p) => JsFuture::from(p).await,
                Err(e) => Err(e),
            };
            // The session's key goes with it: the next login binds a new one (RFC 9449 §2, one key per session).
            reset_key(&inner);
            let status = answer
                .as_ref()
                .ok()
                .and_then(as_response)
                .map(Response::status);
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
    pub fn upgrade_legacy_token(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] token: JsValue,
    ) -> Promise {
        if is_disposed(&self.inner) {
            return Promise::reject(&disposed_error());
        }
        if self.inner.opts.legacy_upgrade_url.is_none() {
            return Promise::reject(&error(
                ErrorCode::InvalidOption,
                "option 'legacyUpgradeUrl' is required to upgrade a legacy token",
            ));
        }
        let given = token.as_string();
        if given.is_none() && !(token.is_undefined() || token.is_null()) {
            return Promise::reject(&error(
                ErrorCode::InvalidToken,
                "upgradeLegacyToken expects a token string",
            ));
        }
        let started = with_core(&self.inner, |c| {
            c.upgrade_legacy(now_ms(), given.as_deref())
        });
        pump(&self.inner);
        let id = match started {
            Ok(id) => id,
            Err(LegacyError::Token(e)) => return Promise::reject(&error(e.code(), e.message())),
            Err(LegacyError::NoToken) => {
                return Promise::reject(&error(
                    ErrorCode::InvalidToken,
                    "no legacy token to upgrade: pass one",
                ));
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
            let (status, reason) = core
                .legacy_failure()
                .unwrap_or((None, crate::session::LegacyFailure::Unavailable));
            let err = error(
                ErrorCode::LegacyUpgradeFailed,
                &["the legacy token exchange failed: ", reason.as_str()].concat(),
            );
            js::set(&err, "status", &opt_number(status.map(u64::from)));
            js::set(&err, "reason", &JsValue::from_str(reason.as_str()));
            Err(err)
        })
    }

    /// Where the migration off a legacy token stands: `"none"`, `"held"`, `"upgrading"`, `"upgraded"` or `"failed"`.
    #[wasm_bindgen(getter, js_name = legacyUpgrade, unchecked_return_type = "'none' | 'held' | 'upgrading' | 'upgraded' | 'failed'")]
    pub fn legacy_upgrade(&self) -> String {
        self.inner
            .core
            .borrow()
            .legacy_status()
            .as_str()
            .to_string()
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

    /// Stops timers and listeners and forgets the token; later calls reject with `DISPOSED`. Idempotent;
    /// `free()` and `[Symbol.dispose]()` do the same (and free the wasm object).
    pub fn dispose(&self) {
        dispose(&self.inner);
    }
}

impl Drop for TokenManager {
    /// `free()` and `[Symbol.dispose]()` (wasm-bindgen's, both drop this) reach the state `dispose()` leaves.
    fn drop(&mut self) {
        dispose(&self.inner);
    }
}

/// The bound `fetch`: a function owned by JS that holds the manager weakly, so that it never keeps a freed
/// manager alive (the package entry's own bound fetch keeps the entry's manager alive). Used after the manager
/// was freed, it rejects with `DISPOSED`, like after `dispose()`.
fn bound_fetch(weak: Weak<Inner>) -> JsValue {
    let f: js::Callback = Closure::new(move |input: JsValue, init: JsValue| match weak.upgrade() {
        Some(strong) => fetch_entry(&strong, input, init).into(),
        None => Promise::reject(&disposed_error()).into(),
    });
    let f = f.into_js_value();
    // An app may install it as the global fetch (`globalThis.fetch = tm.fetch`): sends then go to the
    // platform fetch of this moment, never back through a wrapper.
    js::mark_bound_fetch(&f);
    f
}
