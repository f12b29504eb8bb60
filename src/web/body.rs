//! Capped body reading: a login or refresh answer is read chunk by chunk, at most `MAX_BODY_BYTES` (C23).

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::facade::{ReadResult, Response};
use super::js;
use crate::session::{CappedBody, MAX_BODY_BYTES};

/// How reading a login or refresh body ended.
pub(super) enum BodyRead {
    /// The whole body, within the cap.
    Complete(CappedBody),
    /// The body is, or declares itself, larger than [`MAX_BODY_BYTES`]; the stream was cancelled (C23).
    TooLarge,
    /// Reading failed (the connection broke, the call was aborted, a chunk was not bytes).
    Failed(JsValue),
}

/// Reads `resp`'s body chunk by chunk into a [`CappedBody`] and cancels the stream at the first chunk that
/// does not fit, so a huge or never-ending body is read no further than the cap (C23).
/// A body chunk as a `Uint8Array` of this realm. A chunk from another realm (jsdom's window next to Node's
/// `fetch`, an iframe's stream) fails `instanceof` but is still a byte view: it is copied into this realm's type.
pub(super) fn byte_chunk(value: &JsValue) -> Option<js_sys::Uint8Array> {
    if let Some(chunk) = value.dyn_ref::<js_sys::Uint8Array>() {
        return Some(chunk.clone());
    }
    if !js_sys::ArrayBuffer::is_view(value)
        || js::get(value, "BYTES_PER_ELEMENT").as_f64() != Some(1.0)
    {
        return None;
    }
    Some(js_sys::Uint8Array::new(value))
}

pub(super) async fn read_capped(resp: &Response) -> BodyRead {
    let Some(stream) = resp.body() else {
        return BodyRead::Complete(CappedBody::new());
    };
    let declared = resp
        .headers()
        .get("content-length")
        .and_then(|s| s.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        js::discard(stream.cancel());
        return BodyRead::TooLarge;
    }
    let reader = match stream.get_reader() {
        Ok(r) => r,
        Err(e) => return BodyRead::Failed(e),
    };
    let mut body = CappedBody::new();
    loop {
        let next = match reader.read() {
            Ok(p) => JsFuture::from(p).await,
            Err(e) => Err(e),
        };
        let next: ReadResult = match next {
            Ok(n) => n.unchecked_into(),
            Err(e) => return BodyRead::Failed(e),
        };
        if next.done() {
            return BodyRead::Complete(body);
        }
        let Some(chunk) = byte_chunk(&next.value()) else {
            js::discard(reader.cancel_reader());
            return BodyRead::Failed(
                js_sys::TypeError::new("response body chunk is not a Uint8Array").into(),
            );
        };
        // Checked before the chunk is copied out of JavaScript.
        if !body.fits(chunk.length() as usize) || body.push(&chunk.to_vec()).is_err() {
            js::discard(reader.cancel_reader());
            return BodyRead::TooLarge;
        }
    }
}
