// Spawns the reference auth server (target/debug/auth-server, built by `cargo test --workspace` or
// `cargo build -p auth-server`) on a free loopback port, with short lifetimes and relaxed rate limits for tests,
// and reads its counters. One server per test file: start it in `before`, stop it in `after`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SERVER_BIN = process.env.WTM_AUTH_SERVER || path.join(ROOT, 'target/debug/auth-server');

/** Flags that switch the rate limits off: the tests drive far more refreshes per minute than a person. */
export const NO_RATE_LIMITS = ['--login-rate-per-min', '0', '--refresh-rate-per-min', '0', '--refresh-ip-rate-per-5min', '0'];

/**
 * Starts `auth-server --addr 127.0.0.1:0 --www <www> --pkg pkg [--demo] [--access-ttl N] ...` and waits for its
 * `listening on http://127.0.0.1:PORT` line. Returns { url, port, origin, stop, metrics, metric, stats, logs }.
 *
 * options: accessTtl (seconds), demo (default true), www (default the demo site; false: none), pkg (default $WTM_PKG or
 * pkg/; false: none, for tests that need no page), rateLimits
 * (default false: the limits are switched off), args (extra flags), bin (default target/debug/auth-server).
 */
export async function startAuthServer({
  accessTtl, demo = true, www = path.join(ROOT, 'www'), pkg = process.env.WTM_PKG || path.join(ROOT, 'pkg'), rateLimits = false, args = [],
  bin = SERVER_BIN,
} = {}) {
  const SERVER_BIN = bin;
  if (!fs.existsSync(SERVER_BIN)) {
    throw new Error(`${SERVER_BIN} is missing: run \`cargo build -p auth-server\` (scripts/test.sh builds it in tier 1)`);
  }
  if (pkg && !fs.existsSync(path.join(pkg, 'index.js'))) throw new Error(`${pkg}/index.js is missing: run scripts/build.sh`);
  const argv = ['--addr', '127.0.0.1:0', ...(www ? ['--www', www] : []), ...(pkg ? ['--pkg', pkg] : []), '--log', 'warn'];
  if (demo) argv.push('--demo');
  if (accessTtl !== undefined) argv.push('--access-ttl', String(accessTtl));
  if (!rateLimits) argv.push(...NO_RATE_LIMITS);
  argv.push(...args);

  const child = spawn(SERVER_BIN, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = [];
  const keep = (line) => { logs.push(line); if (logs.length > 400) logs.shift(); };
  readline.createInterface({ input: child.stderr }).on('line', keep);
  const lines = readline.createInterface({ input: child.stdout });

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('auth-server printed no `listening on` line within 15 s')), 15_000);
    function fail(error) {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${error.message}\n${SERVER_BIN} ${argv.join(' ')}\n${logs.join('\n')}`));
    }
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`auth-server exited early (code ${code}, signal ${signal})`)));
    lines.on('line', (line) => {
      keep(line);
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) { clearTimeout(timer); child.removeAllListeners('exit'); child.removeAllListeners('error'); resolve(m[1].replace(/\/$/, '')); }
    });
  });
  const { port } = new URL(url);

  async function stop() {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  }

  /** Kills the process at once (SIGKILL: no drain), as a crashed instance. */
  async function kill() {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** The server's Prometheus text, parsed into a Map from `name{labels}` (labels as printed) to a number. */
  async function metrics() {
    const res = await fetch(`${url}/metrics`);
    if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
    return parsePrometheus(await res.text());
  }

  /** One counter: `metric('auth_refresh_requests_total', { outcome: 'ok' })`; the sum over all series when no labels are given. */
  async function metric(name, labels) {
    const map = await metrics();
    if (!map.names.has(name)) {
      throw new Error(`/metrics has no ${name} (neither a # TYPE line nor a series); it has: ${[...map.names].join(', ')}`);
    }
    return sumSeries(map, name, labels);
  }

  /** GET /demo/stats (the demo's JSON counters). */
  async function stats() {
    const res = await fetch(`${url}/demo/stats`);
    if (!res.ok) throw new Error(`GET /demo/stats answered ${res.status}`);
    return res.json();
  }

  return { url, origin: url, port: Number(port), stop, kill, metrics, metric, stats, logs, argv };
}

/**
 * Parses Prometheus text exposition into a Map of `name{a="x",b="y"}` (labels sorted) → value; `map.names` is the
 * set of metric names seen (in `# TYPE` lines or series), so a misspelt name fails instead of reading as 0.
 */
export function parsePrometheus(text) {
  const out = new Map();
  out.names = new Set();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const type = /^#\s*TYPE\s+(\S+)/.exec(line);
    if (type) out.names.add(type[1]);
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
      .map(([, k, v]) => [k, v]).sort(([a], [b]) => a.localeCompare(b));
    const key = labels.length ? `${m[1]}{${labels.map(([k, v]) => `${k}="${v}"`).join(',')}}` : m[1];
    out.set(key, Number(m[3]));
    out.names.add(m[1]);
  }
  return out;
}

/** Sum of the series of `name` whose labels include `labels` (all series of `name` when `labels` is empty). */
export function sumSeries(map, name, labels = {}) {
  let sum = 0;
  for (const [key, value] of map) {
    const base = key.split('{')[0];
    if (base !== name) continue;
    const ok = Object.entries(labels).every(([k, v]) => key.includes(`${k}="${v}"`));
    if (ok) sum += value;
  }
  return sum;
}
