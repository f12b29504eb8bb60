// A fault-injecting reverse proxy on loopback, in front of the real auth server (catalogue 4(c): "a
// fault-injecting proxy in front of the reference server"). The page is loaded through the proxy, so every request
// the package makes (the page, the wasm, /auth/*, /api/*) crosses it; the Host header is passed through unchanged,
// so the server's Origin check sees the proxy's origin, which is the page's.
//
// Faults are armed per path and fire on the next `times` requests to it (then the path passes again):
//   drop-answer  forward the request, wait for the server's whole answer (so a refresh rotation is committed),
//                then close the browser's connection without a byte: the answer is lost (F5)
//   hang         accept the request and never answer, nor forward it, until the browser gives up (F7)
//   status       answer `status` with `headers` and `body` without forwarding (503 for a period, 429 + Retry-After)
//   reset        close the connection at once, without forwarding (connection reset)
//   delay        hold the request `ms` milliseconds, then forward it
// `handle(prefix, fn)` serves paths starting with `prefix` from the test itself (redirect chains, a body sink).
import http from 'node:http';
import { forward, listenLoopback } from './proxy.mjs';

/**
 * Starts the proxy on 127.0.0.1 (a free port) in front of `backend` (a base URL such as http://127.0.0.1:PORT).
 * Returns { url, port, fault, clear, handle, log, close }: `log` lists every request seen as
 * { method, path, authorization, fault (the fault applied, or null), closedByClient (set once the browser closed the connection
 * before any answer) }.
 */
export async function startFaultProxy(backend) {
  const to = new URL(backend);
  const rules = new Map(); // path -> [{ kind, times, ... }]
  const handlers = [];
  const log = [];

  const take = (path) => {
    const list = rules.get(path);
    const rule = list?.[0];
    if (!rule) return null;
    rule.times -= 1;
    if (rule.times <= 0) list.shift();
    return rule;
  };

  // A dropped answer is read whole first: by then the server has committed whatever the request did.
  const dropAnswer = (req, entry) => (up) => {
    up.on('data', () => {});
    up.on('end', () => { entry.upstreamStatus = up.statusCode; req.socket.destroy(); });
  };

  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    const entry = { method: req.method, path: pathname, authorization: req.headers.authorization ?? null, fault: null, closedByClient: false };
    log.push(entry);
    res.on('close', () => { if (!res.writableFinished) entry.closedByClient = true; });
    const custom = handlers.find((h) => pathname.startsWith(h.prefix));
    if (custom) { custom.fn(req, res); return; }
    const rule = take(pathname);
    entry.fault = rule?.kind ?? null;
    switch (rule?.kind) {
      case undefined:
        forward(to, req, res);
        break;
      case 'drop-answer':
        forward(to, req, res, dropAnswer(req, entry));
        break;
      case 'hang':
        req.resume(); // read and discard the body; never answer
        break;
      case 'status':
        req.resume();
        res.writeHead(rule.status, { 'content-type': 'application/json', ...(rule.headers ?? {}) });
        res.end(rule.body ?? JSON.stringify({ error: 'temporarily_unavailable' }));
        break;
      case 'reset':
        req.socket.destroy();
        break;
      case 'delay':
        setTimeout(() => forward(to, req, res), rule.ms);
        break;
      default:
        throw new Error(`unknown fault ${rule.kind}`);
    }
  });
  const { url, port, close } = await listenLoopback(server);
  return {
    url,
    port,
    log,
    /** Arms a fault on `path` for its next `times` requests (default 1); faults on one path apply in order. */
    fault(path, spec) {
      const list = rules.get(path) ?? [];
      list.push({ times: 1, ...spec });
      rules.set(path, list);
    },
    /** Disarms every fault still armed. */
    clear() { rules.clear(); },
    /** Serves requests whose path starts with `prefix` with `fn(req, res)` instead of the server. */
    handle(prefix, fn) { handlers.push({ prefix, fn }); },
    /** The requests seen on `path` (optionally only those that met `fault`). */
    seen(path, fault) { return log.filter((e) => e.path === path && (fault === undefined || e.fault === fault)); },
    close,
  };
}
