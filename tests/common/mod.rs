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
