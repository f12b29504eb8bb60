// Refresh throughput and latency of the reference server's release build on loopback, per session store
// (issue 12 item 10): the in-memory store, 1 instance on Redis, 2 instances on one Redis. The load tool is
// autocannon: every connection holds its own session and chains its refreshes (each request sends the cookie the
// previous answer set), so every request is a real rotation (consume + mint + ES256 access token), never a grace
// answer. Bounded in time: `--seconds` per configuration (default 10) after a 2-second warm-up.
//
//   node bench/server-load.mjs [--seconds 10] [--connections 16] [--no-write]
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
  const instance = autocannon({
    url,
    connections,
    duration: seconds,
    requests: [{
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
    }],
  });
  instance.on('response', (_client, _status, _bytes, ms) => latencies?.push(ms));
  const result = await instance;
  return { ...counts, result };
}

const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };

async function measure(label, urls) {
  const per = Math.max(1, Math.floor(CONNECTIONS / urls.length));
  log(`${label}: warm-up ${WARMUP_SECONDS} s`);
  await Promise.all(urls.map((u) => load(u, per, WARMUP_SECONDS, null)));
  log(`${label}: ${SECONDS} s, ${per * urls.length} connections over ${urls.length} instance(s)`);
  const latencies = [];
  const runs = await Promise.all(urls.map((u) => load(u, per, SECONDS, latencies)));
  const ok = runs.reduce((n, r) => n + r.ok, 0);
  const other = runs.reduce((n, r) => n + r.other, 0);
  const row = {
    label, instances: urls.length, connections: per * urls.length, ok, other,
    perSecond: ok / SECONDS, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99),
  };
  log(`${label}: ${row.perSecond.toFixed(0)} refreshes/s, p50 ${row.p50} ms, p99 ${row.p99} ms, non-200: ${other}`);
  return row;
}

const kekDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wtm-bench-kek-'));
const kek = path.join(kekDir, 'kek');
fs.writeFileSync(kek, crypto.randomBytes(32).toString('base64'), { mode: 0o600 });
const common = ['--allowed-origin', ORIGIN, '--max-sessions-per-user', '0']; // rate limits off: startAuthServer's default
const server = (extra) => startAuthServer({ www: false, pkg: false, demo: false, args: [...common, ...extra], bin: BIN });
const redis = await startRedis();
const redisVersion = (await redisCommand(redis.port, ['INFO', 'server'])).match(/redis_version:(\S+)/)?.[1];
const rows = [];
const started = Date.now();
try {
  const mem = await server([]);
  rows.push(await measure('in-memory store, 1 instance', [mem.url]));
  await mem.stop();
  const onRedis = ['--store', redis.url, '--key-encryption-key-file', kek];
  const r1 = await server(onRedis);
  rows.push(await measure('Redis, 1 instance', [r1.url]));
  const r2 = await server(onRedis);
  rows.push(await measure('Redis, 2 instances', [r1.url, r2.url]));
  await r1.stop();
  await r2.stop();
} finally {
  await redis.stop();
  fs.rmSync(kekDir, { recursive: true, force: true });
}

const fmt = (n) => Math.round(n).toLocaleString('en-US');
const md = [
  MARK_START,
  '## Server: refreshes per second by session store',
  '',
  `Written by \`node bench/server-load.mjs\` (${SECONDS} s per row after a ${WARMUP_SECONDS} s warm-up; ${new Date(started).toISOString().replace(/\.\d+Z$/, 'Z')}). `
    + `The reference server's release build (\`target/release/auth-server\`) on loopback, driven by autocannon `
    + `${JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/autocannon/package.json'), 'utf8')).version} in this Node process: `
    + `${CONNECTIONS} connections in all (split evenly over the instances), each holding its own session and sending the `
    + 'cookie its previous answer set, so every request is a full rotation (read the family, consume the token, mint the '
    + 'child, sign an ES256 access token). Redis ' + (redisVersion ?? '?') + ` (Debian's redis-server, no persistence) on the same machine; `
    + `${os.cpus().length} cores shared by the server(s), Redis and the load tool, so the figures are relative, not capacity.`,
  '',
  '| store | instances | connections | refreshes/s | p50 latency | p99 latency | non-200 answers |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows.map((r) => `| ${r.label.replace(/, \d instances?$/, '')} | ${r.instances} | ${r.connections} | ${fmt(r.perSecond)} | ${r.p50} ms | ${r.p99} ms | ${r.other} |`),
  '',
  'On 2 cores a second instance adds no CPU, so the 2-instance row shows the cost of sharing (every rotation is two '
    + 'Redis round trips: a read script, then a compare-and-set script), not scale-out; on separate machines each '
    + 'instance brings its own cores and Redis is the shared part.',
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
