// The in-page half of bench/run.mjs: loads contenders (bench/contenders/*.js, bundled to ./c/NAME.js) and runs
// the measured loops in the page, so no Playwright round trip falls inside a measurement.
const realFetch = window.fetch.bind(window);
const clients = {};
const BODY = new Uint8Array(64 * 1024).fill(97);

const JSON_BODY = '{"sub":"demo"}';
let missingBearer = 0;
/** A fetch that answers /api/ requests at once (other requests, e.g. the package's .wasm, go to the network). */
function stubFetch(input, init) {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  if (!url.includes('/api/')) return realFetch(input, init);
  const headers = input instanceof Request ? input.headers : new Headers(init?.headers);
  if (!headers.get('authorization')) missingBearer += 1;
  return Promise.resolve(new Response(JSON_BODY, { status: 200, headers: { 'content-type': 'application/json' } }));
}

window.bench = {
  isolated: () => window.crossOriginIsolated,
  installStub() { window.fetch = stubFetch; },
  missingBearer: () => missingBearer,
  async create(name, options = {}) {
    const { create } = await import(`./c/${name}.js`);
    const client = create(options);
    await client.ready;
    clients[name] = client;
    return true;
  },
  login: (name) => clients[name].login(),
  dispose(name) { clients[name]?.dispose(); delete clients[name]; },

  /** `count` sequential calls; per-call times in ms, and the statuses that were not 200. */
  async seq(name, op, count) {
    const c = clients[name];
    const call = op === 'post' ? () => c.post('/api/echo', BODY) : () => c.get('/api/me');
    const times = new Array(count);
    let bad = 0;
    for (let i = 0; i < count; i += 1) {
      const t0 = performance.now();
      const status = await call();
      times[i] = performance.now() - t0;
      if (status !== 200) bad += 1;
    }
    return { times, bad };
  },

  /** `n` concurrent GETs; per-request latency (ms) of those that succeeded, and the failures. */
  async burst(name, n) {
    const c = clients[name];
    const lat = [];
    const failures = {};
    const t0 = performance.now();
    await Promise.all(Array.from({ length: n }, async () => {
      const s = performance.now();
      try {
        const status = await c.get('/api/me');
        if (status === 200) lat.push(performance.now() - s);
        else failures[status] = (failures[status] ?? 0) + 1;
      } catch (e) {
        const key = `${e?.name ?? 'error'}: ${String(e?.message ?? e).slice(0, 80)}`;
        failures[key] = (failures[key] ?? 0) + 1;
      }
    }));
    return { lat, failures, wall: performance.now() - t0 };
  },

  /**
   * Keeps `concurrency` GETs in flight until `count` were issued or `deadlineMs` passed; resolves when all
   * issued have settled. { issued, ok, failed, pending (issued but unsettled at the end: always 0 unless a
   * request hangs), ms }.
   */
  async soak(name, count, concurrency, deadlineMs) {
    const c = clients[name];
    const end = performance.now() + deadlineMs;
    let issued = 0; let ok = 0; let failed = 0;
    const t0 = performance.now();
    const worker = async () => {
      while (issued < count && performance.now() < end) {
        issued += 1;
        try { if ((await c.get('/api/me')) === 200) ok += 1; else failed += 1; } catch { failed += 1; }
      }
    };
    // A request that never settles would hang here: bounded by the deadline plus 15 s.
    const all = Promise.all(Array.from({ length: concurrency }, worker));
    let timer;
    const timeout = new Promise((resolve) => { timer = setTimeout(resolve, deadlineMs + 15_000); });
    await Promise.race([all, timeout]);
    clearTimeout(timer);
    return { issued, ok, failed, pending: issued - ok - failed, ms: performance.now() - t0 };
  },
};
window.benchReady = true;
