//! Inputs the fuzzers (fuzz/, run by scripts/fuzz.sh) found to break a property, kept as ordinary tests so
//! the fix stays fixed without a nightly toolchain. Each test says which target found it and what it broke.
#![cfg(not(target_arch = "wasm32"))]

use wasm_token_manager::session::Origin;

/// client_origin: `Origin::new` accepted a host holding a NUL, a quote and a colon, whose serialisation
/// then no longer parsed back (`http://app.ex\0{"username":"demo","password"`); and an allowlist entry
/// such as `http://a:b:80` became an origin with host `a:b` that no URL can have. A host is now refused
/// when it holds a WHATWG forbidden domain code point (a colon only inside an IPv6 literal's brackets).
#[test]
fn c48_fuzz_origin_hosts_with_forbidden_code_points_are_refused() {
    assert_eq!(
        Origin::parse_serialized("http://app.ex\0{\"username\":\"demo\",\"password\""),
        None
    );
    assert_eq!(Origin::parse_serialized("http://a:b:80"), None);
    assert_eq!(Origin::new("http", "a:b", ""), None);
    for c in [
        '\0', '\t', '\n', '\r', ' ', '#', '/', ':', '<', '>', '?', '@', '[', '\\', ']', '^', '|',
        '%', '\u{7f}', '\u{1}',
    ] {
        let host = format!("api{c}example.com");
        assert_eq!(Origin::new("https", &host, ""), None, "{host:?} accepted");
    }
    for host in ["[::1", "::1]", "[::1]x", "[]", "[g::1]", "[::1]:[::2]"] {
        assert_eq!(Origin::new("https", host, ""), None, "{host:?} accepted");
    }
    // What browsers give as URL.hostname still works, and every accepted origin parses back to itself.
    for s in [
        "http://[::1]:8080",
        "https://[2001:db8::1]",
        "https://api.example.com:8443",
        "http://127.0.0.1",
        "https://xn--bcher-kva.example",
    ] {
        let o = Origin::parse_serialized(s).unwrap_or_else(|| panic!("{s} refused"));
        assert_eq!(o.serialize(), s);
        assert_eq!(Origin::parse_serialized(&o.serialize()), Some(o));
    }
}

/// client_retry_after: `parse_http_date` read `"\u{b} Nov  6 0008:49:7 1997"` as an asctime date (a vertical
/// tab as the weekday, a four-digit hour, a one-digit second), while `parse_retry_after` trimmed the vertical
/// tab as whitespace first and then refused the same value, so the two disagreed. HTTP-dates are now read as
/// RFC 9110 §5.6.7 writes them (weekday names, two-digit time fields, two-digit days except asctime's), and only
/// HTTP's optional whitespace (space, tab) is trimmed around a `Retry-After` value.
#[test]
fn c25_fuzz_http_dates_are_read_strictly() {
    use wasm_token_manager::session::{parse_http_date, parse_retry_after};
    let crash = "\u{b} Nov  6 0008:49:7 1997";
    assert_eq!(parse_http_date(crash), None);
    assert_eq!(parse_retry_after(crash, 0), None);
    for bad in [
        "Sun Nov  6 0008:49:37 1994",
        "Sun Nov  6 08:49:7 1994",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun 06 Nov 1994 08:49:37 GMT",
        "Sunday, 6-Nov-94 08:49:37 GMT",
        "Sun, 06-Nov-94 08:49:37 GMT",
        "Funday, 06-Nov-94 08:49:37 GMT",
        "Sun, Nov  6 08:49:37 1994",
        "sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(parse_http_date(bad), None, "{bad:?}");
    }
    for good in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Sun Nov 06 08:49:37 1994",
    ] {
        assert_eq!(parse_http_date(good), Some(784_111_777_000), "{good:?}");
    }
    assert_eq!(
        parse_retry_after("\u{b}120", 0),
        None,
        "a vertical tab is not optional whitespace"
    );
    assert_eq!(parse_retry_after("\t120 ", 0), Some(120_000));
}
