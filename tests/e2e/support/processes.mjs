// Child processes for e2e tests that build and serve consumer apps (npm ci, bundlers, vite dev, next start).
// Each child runs in its own process group, so a stop or a timeout ends its workers too; every group still
// alive when the test process exits is killed, so a failing test leaves no server or port behind.
import { spawn } from 'node:child_process';
import net from 'node:net';

const live = new Set();
function killAll() {
  for (const child of live) {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killAll);
// A test process stopped by a signal (the runner's timeout, Ctrl-C) fires no 'exit' event by itself.
let signalsHooked = false;
function hookSignals() {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
    process.once(signal, () => { killAll(); process.exit(code); });
  }
}

/** Sends `signal` to the child's whole process group (a no-op once it is gone). */
export function killGroup(child, signal) {
  try { process.kill(-child.pid, signal); } catch { /* already gone */ }
}

/**
 * Spawns `command` in its own process group, killed when the test process exits. Returns { child, exited, output }:
 * `exited` resolves with { code, signal } when it ends; `output()` is what it printed so far (stdout and stderr).
 */
export function launch(command, args, { cwd, env } = {}) {
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  live.add(child);
  hookSignals();
  const output = [];
  child.stdout.on('data', (d) => output.push(d));
  child.stderr.on('data', (d) => output.push(d));
  const exited = new Promise((resolve) => {
    child.once('error', (error) => { output.push(Buffer.from(`spawn error: ${error.message}\n`)); resolve({ code: null, signal: null }); });
    child.once('close', (code, signal) => { live.delete(child); resolve({ code, signal }); });
  });
  return { child, exited, output: () => Buffer.concat(output).toString('utf8') };
}

/**
 * Runs a command to completion. Resolves with { code, signal, output, ms, timedOut }; a run still going after
 * `timeout` ms is killed with its whole process group (timedOut: true). Never rejects.
 */
export async function run(command, args, { cwd, env = {}, timeout = 300_000 } = {}) {
  const started = Date.now();
  const p = launch(command, args, { cwd, env });
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; killGroup(p.child, 'SIGKILL'); }, timeout);
  const { code, signal } = await p.exited;
  clearTimeout(timer);
  return { code, signal, output: p.output(), ms: Date.now() - started, timedOut };
}

/** A free TCP port on 127.0.0.1 (for servers that must be told their port up front). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts a long-running server (vite dev, next start) and waits until `url` answers any HTTP response.
 * Returns { url, ms, stop, output, exited } (`exited` resolves with { code, signal } if it ends). Rejects with the server's output if it exits or does not answer in time.
 */
export async function startServer(command, args, { cwd, env = {}, url, timeout = 120_000 }) {
  const started = Date.now();
  const p = launch(command, args, { cwd, env });
  let exited = null;
  p.exited.then((r) => { exited = r; });
  const stop = async () => {
    if (exited) return;
    killGroup(p.child, 'SIGTERM');
    const timer = setTimeout(() => killGroup(p.child, 'SIGKILL'), 5_000);
    await p.exited;
    clearTimeout(timer);
    killGroup(p.child, 'SIGKILL'); // workers that ignored SIGTERM
  };
  for (;;) {
    if (exited) throw new Error(`${command} ${args.join(' ')} exited (code ${exited.code}, signal ${exited.signal}) before answering:\n${p.output()}`);
    if (Date.now() - started > timeout) {
      await stop();
      throw new Error(`${command} ${args.join(' ')} did not answer ${url} within ${timeout} ms:\n${p.output()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      await res.arrayBuffer();
      break;
    } catch { /* not up yet */ }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { url, ms: Date.now() - started, stop, output: p.output, exited: p.exited };
}
