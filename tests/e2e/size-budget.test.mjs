// The size budget is enforced (issue 11 item 1): scripts/size.sh, which scripts/build.sh runs last, fails when the
// built package's gzip -9 total exceeds the budget — size-budget.json's number, or `--budget N` — and passes at or
// under it. Runs against pkg/ as scripts/build.sh left it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './support/server.mjs';

const size = (...args) => spawnSync('bash', [path.join(ROOT, 'scripts/size.sh'), ...args], { cwd: ROOT, encoding: 'utf8' });
const total = (out) => Number(/\[size\] total\s+(\d+) B gzip -9/.exec(out)?.[1]);

test('the built package is within the checked-in budget', () => {
  const r = size();
  const budget = JSON.parse(fs.readFileSync(path.join(ROOT, 'size-budget.json'), 'utf8')).totalGzipBytes;
  assert.equal(r.status, 0, r.stderr);
  assert.ok(Number.isInteger(budget) && budget > 0, `size-budget.json's totalGzipBytes is ${budget}`);
  assert.ok(total(r.stdout) <= budget, r.stdout);
  assert.match(r.stdout, new RegExp(`budget ${budget} B`));
});

test('a budget one byte under the total fails, with a message that says by how much; the total itself passes', () => {
  const measured = total(size('--budget', String(Number.MAX_SAFE_INTEGER)).stdout);
  assert.ok(measured > 0, 'no total printed');
  const under = size('--budget', String(measured - 1));
  assert.equal(under.status, 1);
  assert.match(under.stderr, new RegExp(`is ${measured} B gzip -9, 1 B over its budget of ${measured - 1} B`));
  assert.equal(size('--budget', String(measured)).status, 0);
});

test('a tiny budget fails; a budget that is not a number is refused', () => {
  assert.equal(size('--budget', '1000').status, 1);
  const bad = size('--budget', 'lots');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /whole number of bytes/);
});

test('the counted files are the wasm and every JS module the package lists except the inline copy and the DPoP module, which is printed on its own', () => {
  const files = JSON.parse(fs.readFileSync(path.join(ROOT, 'pkg/package.json'), 'utf8')).files;
  const gz = (f) => spawnSync('gzip', ['-9', '-c', path.join(ROOT, 'pkg', f)]).stdout.length;
  const expected = files.filter((f) => f.endsWith('.wasm') || (f.endsWith('.js') && !f.endsWith('.inline.js') && !f.endsWith('_dpop.js')))
    .reduce((sum, f) => sum + gz(f), 0);
  const out = size().stdout;
  assert.equal(total(out), expected);
  const dpop = gz('wasm_token_manager_dpop.js');
  assert.ok(files.includes('wasm_token_manager_dpop.js'), 'the package lists the DPoP module');
  assert.match(out, new RegExp(`DPoP .* ${dpop} B gzip -9 \\(only with the dpop option; with it: ${expected + dpop} B\\)`));
});
