//! Messages between tabs (src/session/crosstab.rs): any string is decoded or refused; what is accepted
//! encodes to a message that decodes to itself, and a session handles it (C48).
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wasm_token_manager::session::{Message, Session, SessionConfig, MAX_MESSAGE_LEN};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    raw: &'a str,
    now_ms: u64,
}

fuzz_target!(|input: Input<'_>| {
    let Some(m) = Message::decode(input.raw) else { return };
    assert!(input.raw.len() <= MAX_MESSAGE_LEN);
    let wire = m.encode();
    assert_eq!(Message::decode(&wire).as_ref(), Some(&m), "{wire:?} does not decode to itself");
    let now = input.now_ms % (1 << 53);
    let mut s = Session::new(SessionConfig::default());
    let _ = s.handle_message(now, m);
    while s.poll_action().is_some() {}
    let _ = s.poll_timeout();
});
