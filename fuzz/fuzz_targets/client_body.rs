//! Login and refresh answers (src/session/body.rs + json.rs) with any Content-Type and token field, fed both
//! to the parser and to a live session state machine, which must stay usable afterwards (C19–C23, C48, C58, C62).
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wasm_token_manager::session::{
    check_b64token, is_json_content_type, parse_token_body, Session, SessionConfig, TokenSource, MAX_BODY_BYTES,
};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    content_type: Option<&'a str>,
    token_field: Option<&'a str>,
    now_ms: u64,
    source: u8,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    // Mostly the media type the parser wants, so the body is what gets fuzzed.
    let ct = match input.content_type {
        Some(ct) if input.source & 0x80 != 0 => Some(ct),
        _ => Some("application/json"),
    };
    let field = input.token_field.filter(|_| input.source & 0x40 != 0);
    if let Ok(b) = parse_token_body(input.body, ct, field) {
        assert!(ct.is_some_and(is_json_content_type));
        assert!(input.body.len() <= MAX_BODY_BYTES);
        assert!(check_b64token(b.token.expose()).is_ok());
        assert!(b.expires_in.is_none_or(|e| e.is_finite() && e > 0.0));
    }
    let now = input.now_ms % (1 << 53);
    let mut s = Session::new(SessionConfig { token_field: field.map(str::to_owned), ..SessionConfig::default() });
    let source = [TokenSource::Login, TokenSource::Refresh, TokenSource::Set][usize::from(input.source % 3)];
    let stored = s.set_token_body(now, input.body, ct, source).is_ok();
    assert_eq!(stored, s.has_token());
    while s.poll_action().is_some() {}
    let _ = s.poll_timeout();
    let _ = s.is_authenticated(now);
    // Still usable: a refresh can be asked for and the deadline handled.
    let _ = s.request_refresh(now);
    s.handle_timeout(now.saturating_add(1));
    while s.poll_action().is_some() {}
});
