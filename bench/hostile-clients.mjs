// Issue 9 / S41 probe: does auth-server keep answering while hostile clients hold connections?
// Starts the release binary on loopback under `ulimit -n 1024` (the usual default), then opens
// SLOW connections that send a request head one byte every 2 s (slowloris) and IDLE connections
// that send nothing, all from 127.0.0.2, while a control client on 127.0.0.1 asks GET /healthz
// every 250 ms on fresh connections.
// Reports how many hostile connections the server closed and when, and how the control fared.
// Loopback only; bounded in count and time (it stops after DURATION seconds).
//
//   cargo build --release -p auth-server
//   node bench/hostile-clients.mjs [slow=1000] [idle=2000] [duration-seconds=20] [-- server flags...]
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'target/release/auth-server');
const dash = process.argv.indexOf('--');
const args = dash === -1 ? process.argv.slice(2) : process.argv.slice(2, dash);
const serverFlags = dash === -1 ? [] : process.argv.slice(dash + 1);
const SLOW = Number(args[0] ?? 1000);
const IDLE = Number(args[1] ?? 2000);
const DURATION_S = Number(args[2] ?? 20);

const quoted = [BIN, '--addr', '127.0.0.1:0', '--log', 'warn', ...serverFlags].map((a) => `'${a}'`).join(' ');
const child = spawn('bash', ['-c', `ulimit -n 1024; exec ${quoted}`], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise((resolve, reject) => {
  readline.createInterface({ input: child.stdout }).on('line', (l) => {
    const m = /listening on http:\/\/(\S+)/.exec(l);
    if (m) resolve(m[1]);
  });
  child.once('exit', () => reject(new Error('auth-server exited')));
});
const [host, port] = url.split(':');
const t0 = Date.now();
const secs = () => (Date.now() - t0) / 1000;

/**
 * Opens a connection; `feed` runs once connected. Resolves with the time (s) the server closed it,
 * 'open' if it was still open at the end, or 'never' if the handshake never completed.
 */
function hostile(feed) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port: Number(port), localAddress: '127.0.0.2' });
    let timer;
    let connected = false;
    let done = false;
    const finish = (v) => { if (!done) { done = true; clearInterval(timer); resolve(v); } };
    s.on('connect', () => { connected = true; timer = feed(s); });
    s.on('error', () => {});
    s.on('close', () => finish(connected ? secs() : 'never'));
    setTimeout(() => { finish(connected ? 'open' : 'never'); s.destroy(); }, DURATION_S * 1000).unref();
  });
}

const slow = Array.from({ length: SLOW }, () => hostile((s) => {
  s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
  return setInterval(() => s.write('a'), 2000);
}));
const idle = Array.from({ length: IDLE }, () => hostile(() => undefined));

let ok = 0;
let failed = 0;
const control = (async () => {
  while (secs() < DURATION_S - 1) {
    try {
      const r = await fetch(`http://${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (r.ok) ok += 1; else failed += 1;
    } catch { failed += 1; }
    await new Promise((r) => setTimeout(r, 250));
  }
})();

const summary = (name, closes) => {
  const closed = closes.filter((t) => typeof t === 'number').sort((a, b) => a - b);
  const open = closes.filter((t) => t === 'open').length;
  const never = closes.filter((t) => t === 'never').length;
  const pct = (p) => (closed.length ? closed[Math.min(closed.length - 1, Math.floor(p * closed.length))].toFixed(1) : '-');
  return `${name}: ${closes.length} opened, ${closed.length} closed by the server (at p50 ${pct(0.5)} s, `
    + `p100 ${pct(1)} s), ${open} still open after ${DURATION_S} s, ${never} never connected`;
};
const [slowCloses, idleCloses] = await Promise.all([Promise.all(slow), Promise.all(idle), control]);
const metrics = await (await fetch(`http://${url}/metrics`)).text();
child.kill('SIGTERM');
console.log(summary('slow heads', slowCloses));
console.log(summary('idle connections', idleCloses));
console.log(`control GET /healthz: ${ok} answered, ${failed} failed`);
for (const l of metrics.split('\n')) if (/^auth_connection/.test(l)) console.log(l);
