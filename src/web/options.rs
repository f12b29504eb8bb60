//! Constructor options, read from a plain JS object. Bad options throw a `TokenManagerError`
//! (`INVALID_OPTION`) whose message names the option.

use js_sys::Object;
use wasm_bindgen::prelude::*;

use super::js::{self, error};
use crate::session::{AllowedOrigins, ErrorCode, Origin, SessionConfig, DEFAULT_REFRESH_HEADERS};

const KNOWN: [&str; 12] = [
    "refreshUrl",
    "logoutUrl",
    "apiOrigins",
    "refreshMarginSeconds",
    "tokenField",
    "refreshHeaders",
    "refreshTimeoutSeconds",
    "crossTab",
    "debug",
    "lockTimeoutSeconds",
    "legacyUpgradeUrl",
    "legacyToken",
];

/// Parsed options.
pub struct Options {
    pub refresh_url: String,
    pub logout_url: Option<String>,
    pub origins: AllowedOrigins,
    pub headers: Vec<(String, String)>,
    /// The BroadcastChannel name, or `None` when cross-tab coordination is off.
    pub cross_tab: Option<String>,
    /// How long a follower tab waits for the elected tab's result before refreshing by itself (ms).
    pub lock_timeout_ms: u32,
    pub debug: bool,
    pub session: SessionConfig,
    /// Where a legacy token is exchanged (`POST`, bearer), if the app migrates off one.
    pub legacy_upgrade_url: Option<String>,
    /// The `legacyToken` option: handed to the core at construction and taken out of here at once, so
    /// that the token lives only in the core (which drops it after the exchange).
    pub legacy_token: Option<String>,
}

fn bad(option: &str, must: &str) -> JsValue {
    error(
        ErrorCode::InvalidOption,
        &["option '", option, "' ", must].concat(),
    )
}

/// The base URL relative URLs resolve against, as `fetch` resolves them (C59): the document's base URL
/// (`document.baseURI`, which honours `<base href>`), or in a worker its location.
pub fn base_url() -> Option<String> {
    js::get(&js::global("document"), "baseURI")
        .as_string()
        .or_else(|| js::get(&js::global("location"), "href").as_string())
}

/// A parsed `URL`, read through `Reflect` (one import for every property, instead of one per getter).
pub struct Url(JsValue);

impl Url {
    /// `new URL(url)`, or `None` where it throws.
    pub fn new(url: &str) -> Option<Url> {
        js::construct("URL", &[&JsValue::from_str(url)])
            .ok()
            .map(Url)
    }

    /// The string property `name` (`protocol`, `hostname`, `href`...).
    pub fn get(&self, name: &str) -> String {
        js::get(&self.0, name).as_string().unwrap_or_default()
    }
}

/// Resolves a URL against the current global's location.
pub fn resolve(url: &str) -> Option<Url> {
    match base_url() {
        Some(base) => js::construct("URL", &[&JsValue::from_str(url), &JsValue::from_str(&base)])
            .ok()
            .map(Url),
        None => Url::new(url),
    }
}

/// The tuple origin of a parsed URL, for http(s) URLs.
pub fn origin_of(url: &Url) -> Option<Origin> {
    Origin::new(&url.get("protocol"), &url.get("hostname"), &url.get("port"))
}

fn http_url(v: &JsValue, option: &str) -> Result<String, JsValue> {
    let s = v
        .as_string()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(option, "must be a non-empty URL string"))?;
    let url = resolve(&s).ok_or_else(|| bad(option, "is not a valid URL"))?;
    let p = url.get("protocol");
    if p != "https:" && p != "http:" {
        return Err(bad(option, "must be an http(s) URL"));
    }
    Ok(url.get("href"))
}

fn seconds(v: &JsValue, option: &str, default_ms: u64, allow_zero: bool) -> Result<u64, JsValue> {
    if v.is_undefined() {
        return Ok(default_ms);
    }
    match v.as_f64() {
        Some(n) if n.is_finite() && (n > 0.0 || (allow_zero && n == 0.0)) => {
            Ok((n * 1000.0) as u64)
        }
        _ => Err(bad(
            option,
            if allow_zero {
                "must be a finite number >= 0"
            } else {
                "must be a finite number > 0"
            },
        )),
    }
}

impl Options {
    pub fn parse(v: &JsValue) -> Result<Options, JsValue> {
        if !v.is_object() {
            return Err(bad(
                "refreshUrl",
                "is required: pass an options object such as { refreshUrl: '/auth/refresh' }",
            ));
        }
        for key in js::list("Object", "keys", v).iter() {
            let k = key.as_string().unwrap_or_default();
            if !KNOWN.contains(&k.as_str()) {
                return Err(bad(&k, "is not a TokenManager option"));
            }
        }
        let refresh_url = http_url(&js::get(v, "refreshUrl"), "refreshUrl")?;
        let logout = js::get(v, "logoutUrl");
        let logout_url = if logout.is_undefined() || logout.is_null() {
            None
        } else {
            Some(http_url(&logout, "logoutUrl")?)
        };

        let origins_v = js::get(v, "apiOrigins");
        let origins = if origins_v.is_undefined() {
            let own = base_url()
                .and_then(|b| Url::new(&b))
                .and_then(|u| origin_of(&u));
            AllowedOrigins::new(own.map_or_else(Vec::new, |o| vec![o]))
        } else {
            if !js::is_array(&origins_v) {
                return Err(bad(
                    "apiOrigins",
                    "must be an array of origin strings such as 'https://api.example.com'",
                ));
            }
            let mut list = Vec::new();
            for item in js::list("Array", "from", &origins_v).iter() {
                let parsed = item.as_string().and_then(|s| Url::new(&s)).filter(|u| {
                    let path = u.get("pathname");
                    (path == "/" || path.is_empty())
                        && ["search", "hash", "username", "password"]
                            .iter()
                            .all(|k| u.get(k).is_empty())
                });
                // Checked on the text: engines differ on whether `*` is a host code point at all.
                if item.as_string().is_some_and(|s| s.contains('*')) {
                    return Err(bad("apiOrigins", "must list each origin: wildcards such as 'https://*.example.com' are not supported"));
                }
                match parsed.as_ref().and_then(origin_of) {
                    Some(o) => list.push(o),
                    None => {
                        return Err(bad(
                            "apiOrigins",
                            "must contain only http(s) origins such as 'https://api.example.com'",
                        ))
                    }
                }
            }
            AllowedOrigins::new(list)
        };

        let defaults = SessionConfig::default();
        let margin_ms = seconds(
            &js::get(v, "refreshMarginSeconds"),
            "refreshMarginSeconds",
            defaults.margin_ms,
            true,
        )?;
        let refresh_timeout_ms = seconds(
            &js::get(v, "refreshTimeoutSeconds"),
            "refreshTimeoutSeconds",
            defaults.refresh_timeout_ms,
            false,
        )?;
        let lock_timeout_ms = seconds(
            &js::get(v, "lockTimeoutSeconds"),
            "lockTimeoutSeconds",
            refresh_timeout_ms.saturating_add(1000),
            false,
        )?;

        let tf = js::get(v, "tokenField");
        let token_field = if tf.is_undefined() {
            None
        } else {
            Some(
                tf.as_string()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad("tokenField", "must be a non-empty string"))?,
            )
        };

        // An explicit `refreshHeaders` replaces the default (`{}` sends none).
        let hv = js::get(v, "refreshHeaders");
        let mut headers = Vec::new();
        if hv.is_undefined() {
            for (k, v) in DEFAULT_REFRESH_HEADERS {
                headers.push((String::from(*k), String::from(*v)));
            }
        } else {
            if !hv.is_object() || js::is_array(&hv) {
                return Err(bad(
                    "refreshHeaders",
                    "must be an object of header names to string values",
                ));
            }
            let check = js::construct("Headers", &[])
                .map_err(|_| bad("refreshHeaders", "cannot be checked here"))?;
            for entry in js::list("Object", "entries", &hv).iter() {
                let name = js::get(&entry, "0").as_string().unwrap_or_default();
                let value = js::get(&entry, "1")
                    .as_string()
                    .ok_or_else(|| bad("refreshHeaders", "must have string values"))?;
                let appended = js::call(
                    &check,
                    "append",
                    &[&JsValue::from_str(&name), &JsValue::from_str(&value)],
                );
                if appended.is_err() || name.eq_ignore_ascii_case("authorization") {
                    return Err(bad(
                        "refreshHeaders",
                        "contains an invalid header name or value",
                    ));
                }
                headers.push((name, value));
            }
        }

        let ct = js::get(v, "crossTab");
        let cross_tab = if ct.is_undefined() || ct.is_null() {
            Some(["wasm-token-manager:", &refresh_url].concat())
        } else if ct.as_bool() == Some(false) {
            None
        } else {
            Some(
                ct.as_string()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad("crossTab", "must be a channel name string or false"))?,
            )
        };

        let dbg = js::get(v, "debug");
        let debug = if dbg.is_undefined() {
            false
        } else {
            dbg.as_bool()
                .ok_or_else(|| bad("debug", "must be a boolean"))?
        };

        let lu = js::get(v, "legacyUpgradeUrl");
        let legacy_upgrade_url = if lu.is_undefined() || lu.is_null() {
            None
        } else {
            Some(http_url(&lu, "legacyUpgradeUrl")?)
        };
        let lt = js::get(v, "legacyToken");
        let legacy_token = if lt.is_undefined() || lt.is_null() {
            None
        } else {
            let t = lt
                .as_string()
                .filter(|t| crate::session::check_b64token(t).is_ok())
                .ok_or_else(|| {
                    bad(
                        "legacyToken",
                        "must be a token string (RFC 6750 b64token, at most 8 KiB)",
                    )
                })?;
            if legacy_upgrade_url.is_none() {
                return Err(bad(
                    "legacyToken",
                    "needs 'legacyUpgradeUrl', where it is exchanged",
                ));
            }
            Some(t)
        };

        Ok(Options {
            refresh_url,
            logout_url,
            origins,
            headers,
            cross_tab,
            lock_timeout_ms: lock_timeout_ms.min(i32::MAX as u64) as u32,
            debug,
            session: SessionConfig {
                margin_ms,
                refresh_timeout_ms,
                token_field,
                ..SessionConfig::default()
            },
            legacy_upgrade_url,
            legacy_token,
        })
    }

    /// Whether a request URL (absolute, as `Request.url` gives it) may receive the bearer.
    pub fn allows(&self, url: &str) -> bool {
        Url::new(url)
            .and_then(|u| origin_of(&u))
            .is_some_and(|o| self.origins.allows(&o))
    }

    /// The headers of refresh and logout calls, as a plain object.
    pub fn headers_object(&self) -> JsValue {
        let o: JsValue = Object::new().into();
        for (k, v) in &self.headers {
            js::set(&o, k, &JsValue::from_str(v));
        }
        o
    }
}
