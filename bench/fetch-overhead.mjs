// Superseded by the per-call section of bench/run.mjs (scripts/bench.sh), which covers every contender; kept
// because the README's "Per-request cost" figures name this command.
//
// What a request costs through the manager, against plain fetch and against a real peer (axios with
// axios-auth-refresh and a bearer interceptor), in headless Chromium against a loopback server. Each arm sends
// the same authenticated GET sequentially; arms are interleaved over several rounds and the median time per
// request of each arm is compared with plain fetch measured in the same run. Run scripts/build.sh first.
//
//   node bench/fetch-overhead.mjs [requests-per-round] [rounds]
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../tests/e2e/support/browser.mjs';
import { startStaticServer } from '../tests/e2e/support/static-server.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const N = Number(process.argv[2] ?? 200);
const ROUNDS = Number(process.argv[3] ?? 5);

const server = await startStaticServer(ROOT);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  await page.goto(`${server.url}/bench/blank.html`);
  const result = await page.evaluate(async ({ N, ROUNDS }) => {
    const { TokenManager } = await import('/pkg/index.js');
    const axios = (await import('axios')).default;
    const createAuthRefreshInterceptor = (await import('/node_modules/axios-auth-refresh/dist/index.esm.js')).default;

    const b64 = (o) => btoa(JSON.stringify(o)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const now = Math.floor(Date.now() / 1000);
    const token = `${b64({ alg: 'ES256' })}.${b64({ sub: 'bench', iat: now, exp: now + 3600 })}.c2ln`;

    const tm = new TokenManager({ refreshUrl: '/auth/refresh', crossTab: false });
    tm.setAccessToken(token);
    const client = axios.create();
    client.interceptors.request.use((config) => { config.headers.Authorization = `Bearer ${token}`; return config; });
    createAuthRefreshInterceptor(client, () => Promise.resolve());

    const arms = {
      'fetch (baseline)': () => fetch('/whoami', { headers: { Authorization: `Bearer ${token}` } }).then((r) => r.json()),
      'tm.fetch': () => tm.fetch('/whoami').then((r) => r.json()),
      'axios + axios-auth-refresh': () => client.get('/whoami').then((r) => r.data),
    };
    const times = Object.fromEntries(Object.keys(arms).map((k) => [k, []]));
    for (const arm of Object.values(arms)) for (let i = 0; i < 20; i++) await arm(); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, arm] of Object.entries(arms)) {
        const t0 = performance.now();
        for (let i = 0; i < N; i++) {
          const body = await arm();
          if (body.authorization !== `Bearer ${token}`) throw new Error(`${name} did not send the bearer`);
        }
        times[name].push((performance.now() - t0) / N);
      }
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    tm.dispose();
    return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
  }, { N, ROUNDS });

  const base = result['fetch (baseline)'];
  console.log(`sequential authenticated GETs, ${N} per round, ${ROUNDS} rounds, median per request (headless Chromium, loopback)`);
  for (const [name, ms] of Object.entries(result)) {
    console.log(`${name.padEnd(28)} ${ms.toFixed(3)} ms/request   ${(ms / base).toFixed(2)}x fetch`);
  }
} finally {
  await browser.close();
  await server.close();
}
