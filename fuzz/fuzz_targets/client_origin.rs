//! Origins (src/session/origin.rs): a serialised origin and the parts of a parsed URL. Whatever is accepted
//! serialises to a form that parses back to the same origin and is matched by an allowlist of itself (C49, C50).
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wasm_token_manager::session::{AllowedOrigins, Origin};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    serialized: &'a str,
    scheme: &'a str,
    host: &'a str,
    port: &'a str,
}

fn check(o: Origin) {
    let text = o.serialize();
    let again = Origin::parse_serialized(&text);
    assert_eq!(again.as_ref(), Some(&o), "{text:?} does not parse back");
    assert!(text.starts_with("http://") || text.starts_with("https://"));
    assert!(AllowedOrigins::new(vec![o.clone()]).allows(&o));
}

fuzz_target!(|input: Input<'_>| {
    if let Some(o) = Origin::parse_serialized(input.serialized) {
        check(o);
    }
    if let Some(o) = Origin::new(input.scheme, input.host, input.port) {
        check(o);
    }
});
