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
    assert_eq!(Origin::parse_serialized("http://app.ex\0{\"username\":\"demo\",\"password\""), None);
    assert_eq!(Origin::parse_serialized("http://a:b:80"), None);
    assert_eq!(Origin::new("http", "a:b", ""), None);
    for c in ['\0', '\t', '\n', '\r', ' ', '#', '/', ':', '<', '>', '?', '@', '[', '\\', ']', '^', '|', '%', '\u{7f}', '\u{1}'] {
        let host = format!("api{c}example.com");
        assert_eq!(Origin::new("https", &host, ""), None, "{host:?} accepted");
    }
    for host in ["[::1", "::1]", "[::1]x", "[]", "[g::1]", "[::1]:[::2]"] {
        assert_eq!(Origin::new("https", host, ""), None, "{host:?} accepted");
    }
    // What browsers give as URL.hostname still works, and every accepted origin parses back to itself.
    for s in ["http://[::1]:8080", "https://[2001:db8::1]", "https://api.example.com:8443", "http://127.0.0.1", "https://xn--bcher-kva.example"] {
        let o = Origin::parse_serialized(s).unwrap_or_else(|| panic!("{s} refused"));
        assert_eq!(o.serialize(), s);
        assert_eq!(Origin::parse_serialized(&o.serialize()), Some(o));
    }
}
