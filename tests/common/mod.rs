//! Helpers shared by the native test files (`mod common;`).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// base64 of `data` with the URL-safe alphabet and no padding (`url_safe`), or the standard alphabet with
/// padding, from the base64 crate, so token fixtures are never encoded by the code under test.
pub fn b64(data: &[u8], url_safe: bool) -> String {
    if url_safe {
        URL_SAFE_NO_PAD.encode(data)
    } else {
        STANDARD.encode(data)
    }
}

/// Every action the session has queued, drained in order.
#[allow(dead_code)] // not every test file that includes this module drives a Session
pub fn drain(
    s: &mut wasm_token_manager::session::Session,
) -> Vec<wasm_token_manager::session::Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

/// The ids of the refresh calls started among `actions`.
#[allow(dead_code)]
pub fn starts(
    actions: &[wasm_token_manager::session::Action],
) -> Vec<wasm_token_manager::session::RefreshId> {
    use wasm_token_manager::session::Action;
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartRefresh { id } => Some(*id),
            _ => None,
        })
        .collect()
}

/// The events among `actions`, in order.
#[allow(dead_code)]
pub fn events(
    actions: &[wasm_token_manager::session::Action],
) -> Vec<wasm_token_manager::session::Event> {
    use wasm_token_manager::session::Action;
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}
