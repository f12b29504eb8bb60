// The TypeScript API is a contract: the declarations wasm-bindgen generates must equal the checked-in copy,
// so every API change shows up as a diff in review (update tests/api/ deliberately when it is intended).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// wasm-bindgen appends the loader's declarations (InitInput, InitOutput with the wasm's export names, which
// carry symbol hashes that change with the compiler, and initSync/init). The package does not export them
// (index.d.ts), so the contract is everything before that section.
const LOADER = 'export type InitInput';
function publicApi(text) {
  const cut = text.indexOf(LOADER);
  assert.ok(cut > 0, `the generated declarations have no "${LOADER}" section: has wasm-bindgen changed its output?`);
  return text.slice(0, cut).trimEnd() + '\n';
}

test('the public part of the generated wasm_token_manager.d.ts equals tests/api/wasm_token_manager.d.ts', () => {
  const generated = publicApi(fs.readFileSync(path.join(ROOT, 'pkg/wasm_token_manager.d.ts'), 'utf8'));
  const checkedIn = fs.readFileSync(path.join(ROOT, 'tests/api/wasm_token_manager.d.ts'), 'utf8');
  assert.equal(generated, checkedIn, 'the public API changed: review it, then run scripts/update-api.sh');
});

test('the npm package version is in step with Cargo.toml', () => {
  const cargo = fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8').match(/^version = "([^"]+)"/m)[1];
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'pkg/package.json'), 'utf8'));
  assert.equal(pkg.version, cargo);
  assert.equal(pkg.name, 'wasm-token-manager');
  // Only the entry module has an effect (instantiating the wasm); a bundler must keep it.
  assert.deepEqual(pkg.sideEffects, ['./index.js']);
  assert.equal(pkg.types, './index.d.ts');
});
