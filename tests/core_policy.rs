//! Native tests of the small pure helpers: origins (C49, C50), Retry-After (C25), timer clamping (C08, C47).
#![cfg(not(target_arch = "wasm32"))]

use wasm_token_manager::session::*;

fn o(s: &str) -> Origin {
    Origin::parse_serialized(s).unwrap_or_else(|| panic!("{s} refused"))
}

#[test]
fn c50_origin_normalisation() {
    assert_eq!(o("https://API.Example.com"), o("https://api.example.com"));
    assert_eq!(
        o("https://api.example.com:443"),
        o("https://api.example.com")
    );
    assert_eq!(o("http://api.example.com:80"), o("http://api.example.com"));
    assert_eq!(o("https://api.example.com/"), o("https://api.example.com"));
    assert_ne!(o("http://api.example.com"), o("https://api.example.com"));
    assert_ne!(
        o("https://api.example.com:8443"),
        o("https://api.example.com")
    );
    assert_eq!(o("http://[::1]:8080").serialize(), "http://[::1]:8080");
    assert_eq!(o("http://[::1]").serialize(), "http://[::1]");
    assert_eq!(
        Origin::new("HTTPS:", "API.example.com", "443"),
        Some(o("https://api.example.com"))
    );
    assert_eq!(
        o("http://localhost:8080").serialize(),
        "http://localhost:8080"
    );
}

#[test]
fn c50_lookalikes_do_not_match() {
    let allowed = AllowedOrigins::new(vec![o("https://api.example.com")]);
    assert!(allowed.allows(&o("https://api.example.com")));
    assert!(allowed.allows(&o("https://API.EXAMPLE.COM:443")));
    // What WHATWG URL parsing gives for the look-alikes: the host is the one after '@', etc.
    for (scheme, host, port) in [
        ("https:", "api.example.com.evil.com", ""),
        ("https:", "evil.com", ""),
        ("http:", "api.example.com", ""),
        ("https:", "api.example.com", "8443"),
        ("https:", "xn--pple-43d.com", ""),
    ] {
        let origin = Origin::new(scheme, host, port).unwrap();
        assert!(!allowed.allows(&origin), "{scheme}//{host}:{port} allowed");
    }
}

#[test]
fn c49_non_http_and_bad_origins_refused() {
    for s in [
        "null",
        "data:text/plain,x",
        "blob:https://a.com/x",
        "file:///etc",
        "ftp://a.com",
        "https://",
        "https://a.com/path",
        "https://user@a.com",
        "https://a.com:99999",
        "https://a.com:x",
        "https://a b.com",
    ] {
        assert!(Origin::parse_serialized(s).is_none(), "{s} accepted");
    }
    assert!(Origin::new("javascript:", "x", "").is_none());
}

#[test]
fn c25_retry_after_forms() {
    let now = 1_700_000_000_000u64; // Tue, 14 Nov 2023 22:13:20 GMT
    assert_eq!(parse_retry_after("0", now), Some(0));
    assert_eq!(parse_retry_after(" 30 ", now), Some(30_000));
    assert_eq!(parse_retry_after("301", now), Some(MAX_RETRY_AFTER_MS));
    assert_eq!(
        parse_retry_after("18446744073709551616", now),
        Some(MAX_RETRY_AFTER_MS)
    );
    for bad in [
        "",
        "1e9",
        "-1",
        "1.5",
        "soon",
        "30s",
        "Tue, 14 Nov 2023 25:00:00 GMT",
        "Tue, 32 Nov 2023 22:14:20 GMT",
        "Tue, 14 Foo 2023 22:14:20 GMT",
    ] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
    }
    assert_eq!(
        parse_retry_after("Tue, 14 Nov 2023 22:14:20 GMT", now),
        Some(60_000)
    );
    assert_eq!(
        parse_retry_after("Tuesday, 14-Nov-23 22:14:20 GMT", now),
        Some(60_000)
    );
    assert_eq!(
        parse_retry_after("Tue Nov 14 22:14:20 2023", now),
        Some(60_000)
    );
    assert_eq!(
        parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now),
        Some(0),
        "a past date means now"
    );
    assert_eq!(
        parse_retry_after("Wed, 15 Nov 2023 22:14:20 GMT", now),
        Some(MAX_RETRY_AFTER_MS)
    );
    assert_eq!(
        parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(784_111_777_000)
    );
    assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
    assert_eq!(
        parse_http_date("Thu, 29 Feb 2024 12:00:00 GMT"),
        Some(1_709_208_000_000)
    );
}

#[test]
fn c08_timer_delays_clamped() {
    assert_eq!(clamp_timer_delay(0), 0);
    assert_eq!(clamp_timer_delay(1234), 1234);
    assert_eq!(clamp_timer_delay(u64::MAX), 2_147_483_647);
    assert_eq!(clamp_timer_delay(MAX_TIMER_DELAY_MS + 1), 2_147_483_647);
}

#[test]
fn error_codes_are_stable() {
    assert_eq!(ErrorCode::InvalidOption.as_str(), "INVALID_OPTION");
    assert_eq!(ErrorCode::InvalidToken.as_str(), "INVALID_TOKEN");
    assert_eq!(ErrorCode::BadResponse.as_str(), "BAD_RESPONSE");
    assert_eq!(ErrorCode::Disposed.as_str(), "DISPOSED");
    assert_eq!(ErrorCode::LogoutFailed.as_str(), "LOGOUT_FAILED");
    assert_eq!(
        ErrorCode::LegacyUpgradeFailed.as_str(),
        "LEGACY_UPGRADE_FAILED"
    );
    assert_eq!(TokenError::TooLong.code(), ErrorCode::InvalidToken);
    assert_eq!(BodyError::NotJson.code(), ErrorCode::BadResponse);
}
