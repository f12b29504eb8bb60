// A small loopback reverse proxy that puts an app's dev server (vite, next start) and the auth server behind one
// origin, as a production deployment does: the manager's refresh cookie is SameSite=Strict with Path=/auth, so the
// page and /auth must be same-origin. Requests whose path starts with one of `backendPrefixes` go to the auth
// server, everything else (including WebSocket upgrades, e.g. Vite's HMR) to the app server. The Host header is
// passed through unchanged, so the auth server's Origin check sees the proxy's own origin, which is the page's.
import http from 'node:http';
import net from 'node:net';

export const AUTH_PREFIXES = ['/auth/', '/api/', '/demo/', '/metrics'];

/**
 * Sends `req` on to `to` (a URL: host and port) as it came, Host header included, and pipes the answer back into
 * `res` (502 if the upstream cannot be reached). `onAnswer(up)`, when given, takes the upstream answer instead.
 */
export function forward(to, req, res, onAnswer) {
  const upstream = http.request({
    host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers,
  }, onAnswer ?? ((up) => {
    res.writeHead(up.statusCode, up.statusMessage, up.rawHeaders);
    up.pipe(res);
  }));
  upstream.on('error', (e) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`proxy: ${e.message}`);
  });
  req.pipe(upstream);
}

/**
 * Starts the proxy on 127.0.0.1 (a free port). `backend` and `app` are base URLs (http://127.0.0.1:PORT).
 * Returns { url, port, close, requests } where `requests` lists { method, path, to } for every request seen.
 */
export async function startProxy({ backend, app, backendPrefixes = AUTH_PREFIXES }) {
  const requests = [];
  const sockets = new Set();
  const target = (pathname) => new URL(backendPrefixes.some((p) => pathname.startsWith(p)) ? backend : app);

  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    const to = target(pathname);
    requests.push({ method: req.method, path: pathname, to: to.port });
    forward(to, req, res);
  });

  // WebSocket (and any other) upgrades: replay the request head to the app server and splice the two sockets.
  server.on('upgrade', (req, socket, head) => {
    const { pathname } = new URL(req.url, 'http://x');
    const to = target(pathname);
    requests.push({ method: req.method, path: pathname, to: to.port, upgrade: true });
    const upstream = net.connect(Number(to.port), to.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head?.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    const drop = () => { upstream.destroy(); socket.destroy(); };
    upstream.on('error', drop);
    socket.on('error', drop);
    socket.on('close', () => upstream.destroy());
  });
  const { url, port, close } = await listenLoopback(server, sockets);
  return { url, port, requests, close };
}

/**
 * Starts `server` on 127.0.0.1 (a free port), keeping its connections in `sockets`. Resolves { url, port, close };
 * `close()` drops every connection still open (and anything else the caller added to `sockets`), then the server.
 */
export async function listenLoopback(server, sockets = new Set()) {
  server.on('connection', (socket) => { sockets.add(socket); socket.on('close', () => sockets.delete(socket)); });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
