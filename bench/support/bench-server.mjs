// A minimal loopback auth + API server for the benchmarks, speaking the reference server's contract
// (server/README.md) closely enough for every contender: `POST /auth/login` (JSON credentials) and
// `POST /auth/refresh` (the httpOnly `rt` cookie plus the `X-Requested-With` CSRF header) answer
// `{"accessToken", "expiresIn", "tokenType"}`; the refresh token rotates at every refresh, the immediate parent
// replayed within a grace window gets the current child back, an older one is a reuse and ends the family;
// `GET /api/me` and `POST /api/echo` need `Authorization: Bearer <token>` and answer 401 with
// `WWW-Authenticate: Bearer error="invalid_token"` otherwise.
//
// Why not the reference server itself: its debug build (the one the tests use) verifies ES256 signatures
// unoptimized, about 9 ms per request and 13 s for a burst of 1,000 on this machine, so it would dominate every
// figure here. This server checks a token by one Map lookup; it runs in the harness's own process and counts
// exactly what reached it (refresh calls, 401s), which is what the expiry and soak figures report.
//
// It also serves static files (with the headers that make a page cross-origin isolated, so performance.now()
// has 5 µs resolution instead of 100 µs) and the built package at /pkg/.
import http from 'node:http';
import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
};
const ISOLATION = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
};

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

/**
 * Starts the server on 127.0.0.1 (a free port).
 *   statics: { '/prefix/': '/dir' } (longest prefix first is not needed: prefixes must not overlap)
 *   accessTtl: access-token lifetime in seconds (default 3600)
 *   graceSeconds: reuse grace window (default 10, as the reference server)
 * Returns { url, close, counters, mint(ttl), expireAll(), reset() }.
 */
export async function startBenchServer({ statics = {}, accessTtl = 3600, graceSeconds = 10 } = {}) {
  const counters = { refresh: 0, refreshOk: 0, refreshRefused: 0, reuse: 0, login: 0, api: 0, api401: 0 };
  const access = new Map();   // token -> exp (seconds)
  const refresh = new Map();  // rt -> { family, child, usedAt }
  const families = new Map(); // family -> { current, alive }
  let ttl = accessTtl;

  function mint(lifetime = ttl) {
    const now = Math.floor(Date.now() / 1000);
    const exp = now + lifetime;
    const token = `${b64url({ alg: 'ES256', typ: 'JWT' })}.${b64url({ sub: 'demo', iat: now, exp, jti: crypto.randomUUID() })}.c2ln`;
    access.set(token, exp);
    return token;
  }
  function tokenAnswer(res, rt) {
    const headers = { 'content-type': 'application/json', 'cache-control': 'no-store' };
    if (rt) headers['set-cookie'] = `rt=${rt}; Path=/auth; HttpOnly; SameSite=Strict`;
    res.writeHead(200, headers);
    res.end(JSON.stringify({ accessToken: mint(), expiresIn: ttl, tokenType: 'Bearer' }));
  }
  function newFamily() {
    const family = crypto.randomUUID();
    const rt = crypto.randomBytes(16).toString('base64url');
    refresh.set(rt, { family, child: null, usedAt: 0 });
    families.set(family, { current: rt, alive: true });
    return rt;
  }
  function json(res, status, body, extra = {}) {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...extra });
    res.end(JSON.stringify(body));
  }
  function bearerOk(req) {
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    if (!m) return false;
    const exp = access.get(m[1]);
    return exp !== undefined && exp > Date.now() / 1000;
  }
  const unauthorized = (res) => json(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
  const cookie = (req, name) => (req.headers.cookie ?? '').split(/;\s*/).map((c) => c.split('='))
    .find(([k]) => k === name)?.[1];

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const p = url.pathname;
    try {
      if (p === '/api/me' && req.method === 'GET') {
        counters.api += 1;
        if (!bearerOk(req)) { counters.api401 += 1; unauthorized(res); return; }
        json(res, 200, { sub: 'demo' });
        return;
      }
      if (p === '/api/echo' && req.method === 'POST') {
        counters.api += 1;
        if (!bearerOk(req)) { counters.api401 += 1; req.resume(); unauthorized(res); return; }
        let length = 0;
        for await (const chunk of req) length += chunk.length;
        json(res, 200, { length });
        return;
      }
      if (p === '/auth/login' && req.method === 'POST') {
        counters.login += 1;
        let body = '';
        for await (const chunk of req) body += chunk;
        const creds = JSON.parse(body || '{}');
        if (creds.username !== 'demo' || creds.password !== 'demo') { json(res, 401, { error: 'invalid_credentials' }); return; }
        tokenAnswer(res, newFamily());
        return;
      }
      if (p === '/auth/refresh' && req.method === 'POST') {
        counters.refresh += 1;
        req.resume();
        if (req.headers['x-requested-with'] !== 'fetch') { counters.refreshRefused += 1; json(res, 403, { error: 'csrf' }); return; }
        const rt = cookie(req, 'rt');
        const entry = rt && refresh.get(rt);
        const fam = entry && families.get(entry.family);
        if (!entry || !fam?.alive) { counters.refreshRefused += 1; json(res, 401, { error: 'invalid_grant' }); return; }
        if (fam.current === rt) { // rotate
          const child = crypto.randomBytes(16).toString('base64url');
          refresh.set(child, { family: entry.family, child: null, usedAt: 0 });
          entry.child = child;
          entry.usedAt = Date.now();
          fam.current = child;
          counters.refreshOk += 1;
          tokenAnswer(res, child);
          return;
        }
        if (entry.child === fam.current && Date.now() - entry.usedAt <= graceSeconds * 1000) { // parent within grace
          counters.refreshOk += 1;
          tokenAnswer(res, fam.current);
          return;
        }
        fam.alive = false; // reuse of an older token: the family ends, as on the reference server
        counters.reuse += 1;
        counters.refreshRefused += 1;
        json(res, 401, { error: 'invalid_grant' });
        return;
      }
      if (p === '/auth/logout' && req.method === 'POST') {
        req.resume();
        const entry = refresh.get(cookie(req, 'rt'));
        if (entry) families.get(entry.family).alive = false;
        res.writeHead(204, { 'set-cookie': 'rt=; Path=/auth; Max-Age=0' }).end();
        return;
      }
      for (const [prefix, dir] of Object.entries(statics)) {
        if (!p.startsWith(prefix)) continue;
        const root = path.resolve(dir);
        let file = path.normalize(path.join(root, decodeURIComponent(p.slice(prefix.length))));
        if (!file.startsWith(root)) break;
        if (file === root || p.endsWith('/')) file = path.join(file, 'index.html');
        const body = await fs.readFile(file);
        res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store', ...ISOLATION });
        res.end(body);
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    } catch (e) {
      if (!res.headersSent) res.writeHead(e.code === 'ENOENT' || e.code === 'EISDIR' ? 404 : 500, { 'content-type': 'text/plain' });
      res.end(String(e.message));
    }
  });
  server.keepAliveTimeout = 60_000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    counters,
    mint,
    /** Every access token issued so far stops being accepted: the server answers 401 as after its expiry. */
    expireAll() { access.clear(); },
    setAccessTtl(seconds) { ttl = seconds; },
    reset() { for (const k of Object.keys(counters)) counters[k] = 0; },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}
