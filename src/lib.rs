//! wasm-token-manager: a fetch wrapper for single-page apps.
//!
//! The access token lives in memory only; the refresh token is an httpOnly cookie the app never sees. The
//! manager attaches `Authorization: Bearer …` to requests for trusted origins, renews the token before it
//! expires, refreshes once for any number of concurrent callers (and once for all the tabs of the app),
//! retries a 401 once with a replayed body, and logs out everywhere.
//!
//! ```js
//! import { TokenManager } from 'wasm-token-manager';
//!
//! const tm = new TokenManager({ refreshUrl: '/auth/refresh', logoutUrl: '/auth/logout' });
//! await tm.login('/auth/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
//! const res = await tm.fetch('/api/me');            // bearer attached, 401 → one refresh → one retry
//! const api = ky.create({ fetch: tm.fetch });        // works detached
//! tm.events.addEventListener('sessionexpired', () => showLogin());
//! await tm.logout();
//! ```
//!
//! Layout: [`session`] is the pure core (no browser imports; time is a parameter; decisions are values),
//! tested natively; `web` (wasm32 only) is the thin browser shell exporting the `TokenManager` class.
#![deny(missing_docs)]
// Issue 9 item 11: a panic in wasm poisons the instance for good, so no input path may panic. Denied for the
// library (not its `#[cfg(test)]` code); `cargo clippy` for the native and the wasm32 target checks both halves.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod session;
#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::TokenManager;

/// The allocator of the wasm build: talc's, which grows the WebAssembly memory as needed and reuses what is freed
/// (smaller than std's dlmalloc; see Cargo.toml). Native builds keep the system allocator.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
