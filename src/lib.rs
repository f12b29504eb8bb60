//! wasm-token-manager: a fetch wrapper for single-page apps.
#![deny(missing_docs)]

pub mod session;
