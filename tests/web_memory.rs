//! Browser test of the allocator under a long-lived manager (`wasm-pack test --headless --chrome` / `--firefox`):
//! thousands of requests, refreshes and replayed bodies through one `TokenManager` must not grow the
//! WebAssembly memory once it has warmed up. An allocator that never frees (a bump allocator) or that leaks
//! on a pattern the manager uses fails it. The measure is a count of requests, never time.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use wasm_token_manager::TokenManager;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
const b64 = (s) => btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
let seq = 0;
function mint() {
  const now = Math.floor(Date.now() / 1000);
  seq += 1;
  return b64(JSON.stringify({ alg: 'HS256', typ: 'at+jwt' })) + '.' +
    b64(JSON.stringify({ sub: 'u', iat: now, exp: now + 3600, jti: 'j' + seq })) + '.c2ln';
}
const json = (obj, status = 200) => new Response(JSON.stringify(obj), { status, headers: { 'content-type': 'application/json' } });

// One pass of the workload: a plain GET; every 7th request a POST whose token the server has revoked (401,
// one refresh, the body replayed), with a body of a varying size; every 50th an explicit refresh.
async function step(tm, s, i) {
  const r = await tm.fetch('/api/get' + (i % 13));
  if (r.status !== 200) throw new Error('GET ' + i + ': status ' + r.status);
  await r.text();
  if (i % 7 === 0) {
    s.valid = 'revoked';
    const body = 'x'.repeat(100 + ((i * 37) % 4000));
    const p = await tm.fetch('/api/post', { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
    if (p.status !== 200) throw new Error('POST ' + i + ': status ' + p.status);
    const echoed = await p.json();
    if (echoed.length !== body.length) throw new Error('POST ' + i + ': body not replayed');
  }
  if (i % 50 === 0 && !(await tm.refresh())) throw new Error('refresh ' + i + ' failed');
}

export async function run(make, memory, warmUp, more) {
  const realFetch = globalThis.fetch;
  const s = { valid: null, refreshes: 0 };
  globalThis.fetch = async (input, init) => {
    const req = new Request(input, init);
    const path = new URL(req.url).pathname;
    if (path === '/auth/refresh' || path === '/auth/login') { s.refreshes += 1; s.valid = mint(); return json({ accessToken: s.valid, expiresIn: 3600 }); }
    if (req.headers.get('authorization') !== 'Bearer ' + s.valid) return json({ error: 'invalid_token' }, 401);
    return json(req.method === 'POST' ? { length: (await req.text()).length } : { ok: true });
  };
  const tm = make({ refreshUrl: '/auth/refresh', crossTab: false });
  try {
    await tm.login('/auth/login', { method: 'POST' });
    for (let i = 0; i < warmUp; i++) await step(tm, s, i);
    const warm = memory.buffer.byteLength;
    for (let i = warmUp; i < warmUp + more; i++) await step(tm, s, i);
    return { warm, after: memory.buffer.byteLength, refreshes: s.refreshes };
  } finally {
    tm.dispose();
    globalThis.fetch = realFetch;
  }
}
"#)]
extern "C" {
    fn run(make: &js_sys::Function, memory: &JsValue, warm_up: u32, more: u32) -> js_sys::Promise;
}

fn number(v: &JsValue, key: &str) -> f64 {
    js_sys::Reflect::get(v, &JsValue::from_str(key))
        .ok()
        .and_then(|n| n.as_f64())
        .unwrap_or(f64::NAN)
}

/// 300 warm-up requests, then 3,000 more (with about 430 replayed POSTs and 490 refreshes): the memory the
/// first 300 needed is enough for all of them.
#[wasm_bindgen_test]
async fn memory_stays_bounded_over_thousands_of_requests() {
    let make = Closure::<dyn Fn(JsValue) -> Result<JsValue, JsValue>>::new(|opts: JsValue| {
        TokenManager::new(opts.unchecked_into(), None, None, None).map(JsValue::from)
    });
    let result = JsFuture::from(run(
        make.as_ref().unchecked_ref(),
        &wasm_bindgen::memory(),
        300,
        3_000,
    ))
    .await;
    let result = match result {
        Ok(r) => r,
        Err(e) => panic!("workload failed: {e:?}"),
    };
    let (warm, after, refreshes) = (
        number(&result, "warm"),
        number(&result, "after"),
        number(&result, "refreshes"),
    );
    assert!(
        refreshes > 400.0,
        "the workload did not refresh: {refreshes} refresh calls"
    );
    assert_eq!(
        after, warm,
        "the wasm memory grew from {warm} B to {after} B over 3,000 requests after warm-up"
    );
}
