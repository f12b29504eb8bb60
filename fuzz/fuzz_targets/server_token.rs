//! The server's readers of presented credentials (server/src/tokens.rs, legacy.rs, config.rs): any string as a
//! bearer access token, a legacy token (verified with a configured legacy HMAC key, as the server does), a
//! refresh-cookie value or a duration flag. Only errors, never a panic, and
//! nothing the fuzzer writes is ever accepted as a token, since it cannot sign (S04, S05, S09, S27, S33, S34).
#![no_main]
use std::sync::{Arc, OnceLock};

use auth_server::clock::ManualClock;
use auth_server::config::{parse_duration, Config};
use auth_server::tokens::{parse_header, RefreshToken};
use auth_server::App;
use libfuzzer_sys::fuzz_target;

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let mut config = Config::default();
        config.legacy.hmac_secret_file = Some(wtm_fuzz::secret_file("legacy", "fuzz-legacy-shared-secret"));
        let app = auth_server::app(config, Arc::new(ManualClock::new(1_700_000_000))).expect("the app builds");
        assert!(app.state.migration.verifier.is_some(), "the legacy key is configured");
        app
    })
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let state = &app().state;
    let _ = parse_header(s);
    if let Some(v) = &state.migration.verifier {
        let _ = v.looks_legacy(s);
    }
    assert!(rt().block_on(state.authenticate(s)).is_err(), "an unsigned input was accepted as an access token: {s:?}");
    assert!(
        state.verify_legacy(s).is_err(),
        "an unsigned input was accepted as a legacy token: {s:?}"
    );
    if let Some(t) = RefreshToken::parse(s) {
        assert_eq!(t.expose(), s);
    }
    let _ = parse_duration(s);
});
