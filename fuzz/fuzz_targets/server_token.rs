//! The server's readers of presented credentials (server/src/tokens.rs, config.rs): any string as a bearer
//! access token, a legacy token, a refresh-cookie value or a duration flag. Only errors, never a panic, and
//! nothing the fuzzer writes is ever accepted as a token, since it cannot sign (S04, S05, S09, S27, S33, S34).
#![no_main]
use std::sync::{Arc, OnceLock};

use auth_server::clock::ManualClock;
use auth_server::config::{parse_duration, Config};
use auth_server::tokens::{parse_header, verify_legacy_token, RefreshToken};
use auth_server::App;
use libfuzzer_sys::fuzz_target;

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        auth_server::app(Config::default(), Arc::new(ManualClock::new(1_700_000_000))).expect("the app builds")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let state = &app().state;
    let _ = parse_header(s);
    assert!(state.authenticate(s).is_err(), "an unsigned input was accepted as an access token: {s:?}");
    assert!(
        verify_legacy_token(s, &state.legacy_key, &state.config.issuer, state.started_at).is_err(),
        "an unsigned input was accepted as a legacy token: {s:?}"
    );
    if let Some(t) = RefreshToken::parse(s) {
        assert_eq!(t.expose(), s);
    }
    let _ = parse_duration(s);
});
