// Memory figures of a Chromium page through the DevTools protocol, for the soak and large-body tests (and the
// benchmark's soak section): the JS heap after forced garbage collection, event listeners, live promises, and the
// size of every WebAssembly memory the page created.

/**
 * An init script (context.addInitScript) that keeps every `WebAssembly.Memory` the page's modules export in
 * `window.wasmMemories`, so their size can be read; a wasm memory only ever grows, so its size is its peak.
 */
export function keepWasmMemories() {
  window.wasmMemories = [];
  const keep = (result) => {
    for (const v of Object.values((result.instance ?? result).exports ?? {})) if (v instanceof WebAssembly.Memory) window.wasmMemories.push(v);
    return result;
  };
  const { instantiate, instantiateStreaming } = WebAssembly;
  WebAssembly.instantiate = (...a) => instantiate(...a).then(keep);
  WebAssembly.instantiateStreaming = (...a) => instantiateStreaming(...a).then(keep);
}

/** Bytes of every wasm memory kept by `keepWasmMemories` in `page`. */
export const wasmBytes = (page) => page.evaluate(() => window.wasmMemories.reduce((n, m) => n + m.buffer.byteLength, 0));

/**
 * After two forced garbage collections: { heap (JS heap used, bytes), backing (ArrayBuffer backing stores, bytes,
 * null where the browser does not report it), listeners (jsEventListeners), promises (live Promise objects) }.
 */
export async function memorySnapshot(cdp) {
  await cdp.send('HeapProfiler.collectGarbage');
  await cdp.send('HeapProfiler.collectGarbage');
  const heap = await cdp.send('Runtime.getHeapUsage');
  const dom = await cdp.send('Memory.getDOMCounters');
  const proto = await cdp.send('Runtime.evaluate', { expression: 'Promise.prototype', objectGroup: 'soak' });
  const objs = await cdp.send('Runtime.queryObjects', { prototypeObjectId: proto.result.objectId, objectGroup: 'soak' });
  const len = await cdp.send('Runtime.callFunctionOn', { objectId: objs.objects.objectId, functionDeclaration: 'function () { return this.length; }', returnByValue: true });
  await cdp.send('Runtime.releaseObjectGroup', { objectGroup: 'soak' });
  return { heap: heap.usedSize, backing: heap.backingStorageSize ?? null, listeners: dom.jsEventListeners, promises: len.result.value };
}
