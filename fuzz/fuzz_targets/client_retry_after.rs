//! `Retry-After` values (src/session/retry_after.rs): delay-seconds and the three HTTP-date forms. Never a
//! panic, never a delay over the cap (C25).
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wasm_token_manager::session::{parse_http_date, parse_retry_after, MAX_RETRY_AFTER_MS};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    value: &'a str,
    now_ms: u64,
}

fuzz_target!(|input: Input<'_>| {
    if let Some(d) = parse_retry_after(input.value, input.now_ms) {
        assert!(d <= MAX_RETRY_AFTER_MS, "{:?} gave {d} ms", input.value);
    }
    if let Some(at) = parse_http_date(input.value) {
        // Whatever the date, the delay it gives is capped.
        assert!(parse_retry_after(input.value, input.now_ms).is_some_and(|d| d <= MAX_RETRY_AFTER_MS), "{at}");
    }
});
