// A throwaway redis-server for end-to-end tests and benchmarks: Debian's `redis-server` (installed by
// scripts/bootstrap.sh; $WTM_REDIS_SERVER or PATH) on a free loopback port, with a temporary directory and no
// persistence (`--save ''`, `--appendonly no`). `stop()` ends it and removes the directory; a test process that
// exits or is stopped by a signal kills every instance still running (tests/e2e/support/processes.mjs), so a failing test leaves none behind.
//
//   const redis = await startRedis();   // { url: 'redis://127.0.0.1:PORT/0', port, dir, command, stop, restart }
//   ...
//   await redis.stop();
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, killGroup, launch } from './processes.mjs';

export const REDIS_SERVER = process.env.WTM_REDIS_SERVER || 'redis-server';

/**
 * Sends one command as RESP to 127.0.0.1:port and resolves with the raw reply text (e.g. `+PONG\r\n`).
 * Rejects on a connection error or after `timeout` ms. Enough for PING and CONFIG in tests; not a client.
 */
export function redisCommand(port, args, { timeout = 2_000 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks = [];
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`redis ${args[0]}: no answer within ${timeout} ms`)); }, timeout);
    socket.once('error', (e) => { clearTimeout(timer); reject(e); });
    socket.on('data', (d) => {
      chunks.push(d);
      const text = Buffer.concat(chunks).toString('utf8');
      if (/\r\n$/.test(text)) { clearTimeout(timer); socket.end(); resolve(text); }
    });
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')}`);
  });
}

function spawnOnce(port, dir, extra) {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
    '--daemonize', 'no', '--logfile', '', ...extra];
  const p = launch(REDIS_SERVER, args);
  let gone = false;
  p.exited.then(() => { gone = true; });
  return { ...p, args, gone: () => gone };
}

async function waitReady(p, port, timeout) {
  const started = Date.now();
  while (Date.now() - started < timeout) {
    if (p.gone()) return false;
    try { if ((await redisCommand(port, ['PING'], { timeout: 500 })).startsWith('+PONG')) return true; } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/**
 * Starts redis-server and waits until it answers PING (at most `timeout` ms; a port taken in between is retried
 * on another). `extra` are more command-line options (e.g. ['--maxmemory-policy', 'allkeys-lru']).
 * Returns { url, port, dir, stop(), restart(), output() }: `restart()` stops it and starts it again on the same
 * port (an outage the clients must survive; with `--save ''` the data does not survive it).
 */
export async function startRedis({ extra = [], timeout = 10_000 } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wtm-redis-'));
  let last = '';
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await freePort();
    let p = spawnOnce(port, dir, extra);
    if (await waitReady(p, port, timeout)) {
      const stopProcess = async () => {
        if (p.gone()) return;
        killGroup(p.child, 'SIGTERM');
        const t = setTimeout(() => killGroup(p.child, 'SIGKILL'), 3_000);
        await p.exited;
        clearTimeout(t);
      };
      return {
        url: `redis://127.0.0.1:${port}/0`,
        port,
        dir,
        output: () => p.output(),
        /** Stops the process (SIGTERM, then SIGKILL after 3 s) without removing the directory. */
        pause: stopProcess,
        /** Starts it again on the same port (after `pause`, or as a restart). */
        async restart() {
          await stopProcess();
          p = spawnOnce(port, dir, extra);
          if (!await waitReady(p, port, timeout)) throw new Error(`redis-server did not come back on ${port}:\n${p.output()}`);
        },
        async stop() {
          await stopProcess();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    last = p.output();
    killGroup(p.child, 'SIGKILL');
    await p.exited;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  throw new Error(`${REDIS_SERVER} did not answer PING (is it installed? scripts/bootstrap.sh installs it):\n${last}`);
}
