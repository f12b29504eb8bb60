// Refresh throughput and latency of the reference server's release build on loopback, per session store
// (issue 12 item 10): the in-memory store, 1 instance on Redis, 2 instances on one Redis. The load tool is
// autocannon: every connection holds its own session and chains its refreshes (each request sends the cookie the
// previous answer set), so every request is a real rotation (consume + mint + ES256 access token), never a grace
// answer. Bounded in time: `--seconds` per configuration (default 10) after a 2-second warm-up.
//
//   node bench/server-load.mjs [--seconds 10] [--rounds 3] [--connections 16] [--no-write]
//
// The three configurations run interleaved, `--rounds` times each in a rotating order (the machine is shared, so a
// slow moment hits every configuration alike); a row gives the median of its rounds' rates and the p50/p99 of all
// its requests' latencies.
//
// Builds target/release/auth-server first (cargo build --release -p auth-server), starts redis-server itself
// (tests/e2e/support/redis.mjs), and writes its section of BENCHMARKS.md between the `server-load` markers
// (bench/run.mjs keeps that section when it rewrites the file).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import autocannon from 'autocannon';
import { ROOT, startAuthServer } from '../tests/e2e/support/server.mjs';
import { startRedis, redisCommand } from '../tests/e2e/support/redis.mjs';

const args = process.argv.slice(2);
const arg = (name, d) => { const i = args.indexOf(name); return i >= 0 ? Number(args[i + 1]) : d; };
const SECONDS = arg('--seconds', 10);
const CONNECTIONS = arg('--connections', 16);
const ROUNDS = arg('--rounds', 3);
const WARMUP_SECONDS = 2;
const WRITE = !args.includes('--no-write');
const ORIGIN = 'http://bench.test';
export const MARK_START = '<!-- server-load:start -->';
export const MARK_END = '<!-- server-load:end -->';

const log = (...a) => console.log('[server-load]', ...a);
const BIN = path.join(ROOT, 'target/release/auth-server');
log('cargo build --release -p auth-server');
execFileSync('cargo', ['build', '--release', '-q', '-p', 'auth-server'], { cwd: ROOT, stdio: 'inherit' });

const cookieOf = (setCookie) => {
  const lines = Array.isArray(setCookie) ? setCookie : [setCookie].filter(Boolean);
  const line = lines.find((c) => /Path=\/auth/i.test(c) && !/Max-Age=0/i.test(c));
  return line ? line.split(';')[0] : null;
};

async function login(url) {
  const res = await fetch(`${url}/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json', origin: ORIGIN },
    body: JSON.stringify({ username: 'demo', password: 'demo' }),
  });
  if (res.status !== 200) throw new Error(`login: ${res.status} ${await res.text()}`);
  return cookieOf(res.headers.getSetCookie());
}

/** Runs autocannon against `url` for `seconds` with `connections`, each on its own session; collects latencies. */
async function load(url, connections, seconds, latencies) {
  const pool = [];
  for (let i = 0; i < connections; i += 1) pool.push(await login(url));
  const counts = { ok: 0, other: 0 };
  const refresh = {
    method: 'POST',
    path: '/auth/refresh',
    setupRequest(req, context) {
      if (!context.cookie) context.cookie = pool.pop();
      return { ...req, headers: { ...req.headers, 'x-requested-with': 'fetch', origin: ORIGIN, cookie: context.cookie } };
    },
    onResponse(status, _body, context, headers) {
      if (status === 200) {
        counts.ok += 1;
        context.cookie = cookieOf(headers['set-cookie'] ?? headers['Set-Cookie']) ?? context.cookie;
      } else {
        counts.other += 1;
      }
    },
  };
  // autocannon clears a connection's context each time it wraps around its list of requests, so the list is one
  // chained refresh repeated more often than a connection can send in the run: the context (the connection's
  // session cookie) then lives for the whole run.
  const instance = autocannon({ url, connections, duration: seconds, requests: Array(1_000_000).fill(refresh) });
  instance.on('response', (_client, _status, _bytes, ms) => latencies?.push(ms));
  const result = await instance;
  return { ...counts, result };
}

/** Refreshes the servers answered from the grace window (the parent again), summed: 0 when every request rotated. */
const graceAnswers = async (servers) => (await Promise.all(servers.map((x) => x.metric('auth_refresh_requests_total', { outcome: 'grace' })))).reduce((a, b) => a + b, 0);

const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };

/** One timed run of `label` against `servers`: { ok, other, grace, latencies } (after a short warm-up). */
async function measure(label, servers) {
  const urls = servers.map((x) => x.url);
  const per = Math.max(1, Math.floor(CONNECTIONS / urls.length));
  await Promise.all(urls.map((u) => load(u, per, WARMUP_SECONDS, null)));
  const graceBefore = await graceAnswers(servers);
  const latencies = [];
  const runs = await Promise.all(urls.map((u) => load(u, per, SECONDS, latencies)));
  const ok = runs.reduce((n, r) => n + r.ok, 0);
  const other = runs.reduce((n, r) => n + r.other, 0);
  const grace = (await graceAnswers(servers)) - graceBefore;
  log(`${label}: ${(ok / SECONDS).toFixed(0)} refreshes/s, p99 ${quantile(latencies, 0.99).toFixed(1)} ms, non-200: ${other}, grace: ${grace}`);
  return { ok, other, grace, latencies, connections: per * urls.length };
}

const kekDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wtm-bench-kek-'));
const kek = path.join(kekDir, 'kek');
fs.writeFileSync(kek, crypto.randomBytes(32).toString('base64'), { mode: 0o600 });
// Rate limits off (startAuthServer's default); no per-user cap (16 sessions of one user); no idle keep-alive or header-read limit, so
// the harness's own fetches (logins, /metrics) never race a server closing an idle pooled connection between rounds.
const common = ['--allowed-origin', ORIGIN, '--max-sessions-per-user', '0', '--keep-alive-timeout', '0', '--header-read-timeout', '0'];
const server = (extra) => startAuthServer({ www: false, pkg: false, demo: false, args: [...common, ...extra], bin: BIN });
const redis = await startRedis();
const redisVersion = (await redisCommand(redis.port, ['INFO', 'server'])).match(/redis_version:(\S+)/)?.[1];
const started = Date.now();
const rows = [];
try {
  const onRedis = ['--store', redis.url, '--key-encryption-key-file', kek];
  const mem = await server([]);
  const r1 = await server(onRedis);
  const r2 = await server(onRedis);
  const configs = [
    { label: 'in-memory store', servers: [mem] },
    { label: 'Redis', servers: [r1] },
    { label: 'Redis', servers: [r1, r2] },
  ].map((c) => ({ ...c, runs: [] }));
  for (let round = 0; round < ROUNDS; round += 1) {
    for (let i = 0; i < configs.length; i += 1) {
      const c = configs[(i + round) % configs.length];
      c.runs.push(await measure(`round ${round + 1}: ${c.label}, ${c.servers.length} instance(s)`, c.servers));
    }
  }
  for (const c of configs) {
    const all = c.runs.flatMap((r) => r.latencies);
    rows.push({
      label: c.label, instances: c.servers.length, connections: c.runs[0].connections,
      perSecond: quantile(c.runs.map((r) => r.ok / SECONDS), 0.5),
      rates: c.runs.map((r) => Math.round(r.ok / SECONDS)),
      p50: quantile(all, 0.5), p99: quantile(all, 0.99),
      other: c.runs.reduce((n, r) => n + r.other, 0), grace: c.runs.reduce((n, r) => n + r.grace, 0),
    });
  }
  for (const x of [mem, r1, r2]) await x.stop();
} finally {
  await redis.stop();
  fs.rmSync(kekDir, { recursive: true, force: true });
}

const fmt = (n) => Math.round(n).toLocaleString('en-US');
const md = [
  MARK_START,
  '## Server: refreshes per second by session store',
  '',
  `Written by \`node bench/server-load.mjs\` (${ROUNDS} rounds, the rows interleaved in a rotating order, ${SECONDS} s per row and round after a ${WARMUP_SECONDS} s warm-up; `
    + `${new Date(started).toISOString().replace(/\.\d+Z$/, 'Z')}; wall time ${Math.round((Date.now() - started) / 1000)} s). `
    + `The reference server's release build (\`target/release/auth-server\`) on loopback, driven by autocannon `
    + `${JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/autocannon/package.json'), 'utf8')).version} in this Node process: `
    + `${CONNECTIONS} connections in all (split evenly over the instances), each holding its own session and sending the `
    + 'cookie its previous answer set, so every request is a full rotation (read the family, consume the token, mint the '
    + 'child, sign an ES256 access token). Redis ' + (redisVersion ?? '?') + ` (Debian's redis-server, no persistence) on the same machine; `
    + `${os.cpus().length} cores shared by the server(s), Redis and the load tool, so the figures are relative, not capacity.`,
  '',
  '| store | instances | connections | refreshes/s (median of rounds) | each round | p50 latency | p99 latency | non-200 answers | grace answers |',
  '| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |',
  ...rows.map((r) => `| ${r.label} | ${r.instances} | ${r.connections} | ${fmt(r.perSecond)} | ${r.rates.map(fmt).join(', ')} | ${r.p50.toFixed(2)} ms | ${r.p99.toFixed(2)} ms | ${r.other} | ${r.grace} |`),
  '',
  '"grace answers" counts refreshes the servers answered from the grace window (the same cookie presented twice, read '
    + 'from the servers\' `auth_refresh_requests_total{outcome="grace"}`); every other 200 was a rotation. Where the few '
    + 'repeats come from in the load tool was not investigated.',
  '',
  'Every rotation on Redis is two round trips (a read script, then a compare-and-set script). All rows share the same '
    + 'cores with Redis and the load tool, so they compare the stores; they do not measure capacity (on separate machines '
    + 'each instance brings its own cores and Redis is the one shared part).',
  MARK_END,
].join('\n');
console.log(`\n${md}\n`);
if (WRITE) {
  const file = path.join(ROOT, 'BENCHMARKS.md');
  const text = fs.readFileSync(file, 'utf8');
  const re = new RegExp(`${MARK_START}[\\s\\S]*?${MARK_END}`);
  fs.writeFileSync(file, re.test(text) ? text.replace(re, md) : `${text.trimEnd()}\n\n${md}\n`);
  log('wrote its section of BENCHMARKS.md');
}
