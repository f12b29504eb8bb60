// A small static file server on loopback for tests: serves one directory with the right MIME types
// (wasm streaming compilation needs application/wasm), and answers GET /whoami with the request's
// Authorization header and Origin, so tests can see what a page actually sent.
import http from 'node:http';
import fs from 'node:fs/promises';
import path from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/**
 * Starts a server for `root` on 127.0.0.1 (a free port). Returns { url, port, close, requests } where
 * `requests` lists every request seen as { method, path, authorization, origin }.
 */
export async function startStaticServer(root, { host = '127.0.0.1' } = {}) {
  const requests = [];
  const rootAbs = path.resolve(root);
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    requests.push({
      method: req.method,
      path: url.pathname,
      authorization: req.headers.authorization ?? null,
      origin: req.headers.origin ?? null,
    });
    if (url.pathname === '/whoami') {
      res.writeHead(200, {
        'content-type': 'application/json',
        'access-control-allow-origin': '*',
        'access-control-allow-headers': 'authorization, content-type',
      });
      res.end(JSON.stringify({ authorization: req.headers.authorization ?? null, method: req.method }));
      return;
    }
    let file = path.normalize(path.join(rootAbs, decodeURIComponent(url.pathname)));
    if (!file.startsWith(rootAbs)) { res.writeHead(403).end(); return; }
    try {
      if ((await fs.stat(file)).isDirectory()) file = path.join(file, 'index.html');
      const body = await fs.readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  await new Promise((resolve) => server.listen(0, host, resolve));
  const { port } = server.address();
  return {
    url: `http://${host}:${port}`,
    port,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}
