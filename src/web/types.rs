//! The JS types the exported wasm class takes and gives, by their TypeScript names in wasm-bindgen's internal
//! declarations. The package's public declarations are hand-written: `pkg-template/index.d.ts`.

use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The options object (`TokenManagerOptions` in `index.d.ts`).
    #[wasm_bindgen(typescript_type = "object")]
    pub type TokenManagerOptions;
    /// The events target (`TokenManagerEvents` in `index.d.ts`).
    #[wasm_bindgen(typescript_type = "EventTarget", extends = web_sys::EventTarget)]
    pub type TokenManagerEvents;
    /// The bound fetch (`TokenManagerFetch` in `index.d.ts`).
    #[wasm_bindgen(
        typescript_type = "(input: RequestInfo | URL, init?: RequestInit) => Promise<Response>"
    )]
    pub type TokenManagerFetch;
    /// `RequestInfo | URL` in TypeScript.
    #[wasm_bindgen(typescript_type = "RequestInfo | URL")]
    pub type RequestInput;
    /// `RequestInit` in TypeScript.
    #[wasm_bindgen(typescript_type = "RequestInit")]
    pub type RequestInitLike;
}
