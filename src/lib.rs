//! wasm-token-manager: a fetch wrapper for single-page apps.
#![deny(missing_docs)]

pub mod session;
#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::TokenManager;
