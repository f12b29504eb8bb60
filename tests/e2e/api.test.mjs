// The TypeScript declarations (pkg-template/index.d.ts, shipped as index.d.ts) are the package's contract. They
// are written by hand, so these tests hold them to the runtime: every declared member of TokenManager exists on
// a real instance and nothing else does, and the declared error codes are exactly the codes the package raises
// (the wasm side's ErrorCode and the entry module's own).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DTS = fs.readFileSync(path.join(ROOT, 'pkg/index.d.ts'), 'utf8');

/** The member names declared in the body of `export class NAME { ... }` (one member per line). */
function declaredMembers(name) {
  const m = new RegExp(`export class ${name}\\b[^{]*\\{([\\s\\S]*?)\\n\\}`).exec(DTS);
  assert.ok(m, `index.d.ts declares no class ${name}`);
  const names = new Set();
  for (const line of m[1].split('\n')) {
    const member = /^\s{2}(?:readonly\s+)?(\[Symbol\.\w+\]|[A-Za-z_$][\w$]*)\s*[(:]/.exec(line);
    if (member) names.add(member[1]);
  }
  return names;
}

test('every member declared on TokenManager exists at run time, and no other public member does', async () => {
  // In Node the entry module loads (nothing else: the manager is inert there), which is all this needs.
  const { TokenManager } = await import(pathToFileURL(path.join(ROOT, 'pkg/index.js')).href);
  const tm = new TokenManager({ refreshUrl: 'https://app.example/auth/refresh' });
  const runtime = new Set([
    ...Object.keys(tm),
    ...Object.getOwnPropertyNames(TokenManager.prototype),
    // Symbol.for('Symbol.dispose') is the same member for engines without a native Symbol.dispose.
    ...Object.getOwnPropertySymbols(TokenManager.prototype)
      .filter((s) => s !== Symbol.for('Symbol.dispose') || Symbol.dispose === s)
      .map((s) => (s === Symbol.dispose ? '[Symbol.dispose]' : String(s))),
  ]);
  const declared = declaredMembers('TokenManager');
  for (const set of [runtime, declared]) set.delete('constructor');
  assert.deepEqual([...runtime].sort(), [...declared].sort());
  const viaPolyfillKey = TokenManager.prototype[Symbol.for('Symbol.dispose')];
  assert.equal(typeof viaPolyfillKey, 'function', "down-levelled `using` looks up Symbol.for('Symbol.dispose')");
  tm.dispose();
});

test('the declared error codes are exactly the codes the package raises', () => {
  const declared = /export type TokenManagerErrorCode =([^;]*);/.exec(DTS)[1].match(/'[A-Z_]+'/g).map((s) => s.slice(1, -1));
  const rust = fs.readFileSync(path.join(ROOT, 'src/session/error.rs'), 'utf8');
  const wasmCodes = [...rust.matchAll(/ErrorCode::\w+ => "([A-Z_]+)"/g)].map((m) => m[1]);
  const entry = fs.readFileSync(path.join(ROOT, 'pkg-template/index.js'), 'utf8');
  const entryCodes = [...entry.matchAll(/TokenManagerError\(\s*'([A-Z_]+)'/g)].map((m) => m[1]);
  assert.ok(wasmCodes.length >= 5 && entryCodes.length >= 3, 'the code lists were not found: has the source moved?');
  assert.deepEqual([...new Set(declared)].sort(), [...new Set([...wasmCodes, ...entryCodes])].sort());
});

test('the npm package version is in step with Cargo.toml', () => {
  const cargo = fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8').match(/^version = "([^"]+)"/m)[1];
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'pkg/package.json'), 'utf8'));
  assert.equal(pkg.version, cargo);
  assert.equal(pkg.name, 'wasm-token-manager');
  // Importing has no effect (the wasm loads at the first construction), so a bundler may drop an unused import.
  assert.equal(pkg.sideEffects, false);
  assert.equal(pkg.types, './index.d.ts');
});
