//! The browser shell: I/O only. It reads the clock, performs fetches, arms one timer, dispatches events,
//! and reports results back to the pure [`crate::session::Session`].
//!
//! Rules kept throughout: no `RefCell` borrow is held across an `.await` or a call into JS (listeners
//! may call back in); no `unwrap`/`expect`/indexing on input paths (a panic poisons the instance).
#![deny(clippy::await_holding_refcell_ref)]

mod body;
mod dpop;
mod driver;
mod facade;
mod fetch;
mod js;
mod lifecycle;
mod manager;
mod options;
mod owners;
mod refresh;
mod tabs;
mod timer;
mod types;
mod waiters;

pub use manager::TokenManager;
