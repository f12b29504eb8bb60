// scripts/shorten-names.mjs, the build step that shortens wasm-bindgen's import and export names in the wasm and
// the glue alike: on a small module and glue of wasm-bindgen's shape, the renamed pair still works, and a glue
// that does not match the wasm fails the step without writing either file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './support/server.mjs';

const IMPORT = '__wbg_ping_0123456789abcdef';
const MODULE = './tiny_bg.js';

/** A wasm module importing `MODULE`.`IMPORT` (a function) and exporting `memory` and `tiny_run`, which calls it. */
function tinyWasm() {
  const str = (s) => [s.length, ...Buffer.from(s)];
  const section = (id, body) => [id, body.length, ...body];
  return Buffer.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 0, 0]), // one type: [] -> []
    ...section(2, [1, ...str(MODULE), ...str(IMPORT), 0x00, 0]), // the import: func of type 0
    ...section(3, [1, 0]), // one function of type 0
    ...section(5, [1, 0x00, 1]), // one memory, at least 1 page
    ...section(7, [2, ...str('memory'), 0x02, 0, ...str('tiny_run'), 0x00, 1]),
    ...section(10, [1, 4, 0, 0x10, 0, 0x0b]), // tiny_run: call 0; end
  ]);
}

/** Glue of the shape wasm-bindgen's `--target web` output has (the import object, `wasm.<export>` accesses). */
const GLUE = `let wasm;
export const calls = [];
function __wbg_get_imports() {
    const import0 = {
        __proto__: null,
        ${IMPORT}: function() {
            calls.push(wasm.memory.buffer.byteLength);
        },
    };
    return {
        __proto__: null,
        "${MODULE}": import0,
    };
}
export function run() { wasm.tiny_run(); }
export function init(module) { wasm = new WebAssembly.Instance(module, __wbg_get_imports()).exports; }
`;

const dirs = [];
after(() => { for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true }); });

function setUp(glue) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wtm-shorten-'));
  dirs.push(dir);
  fs.writeFileSync(path.join(dir, 'tiny_bg.wasm'), tinyWasm());
  fs.writeFileSync(path.join(dir, 'tiny.mjs'), glue);
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/shorten-names.mjs'), path.join(dir, 'tiny_bg.wasm'), path.join(dir, 'tiny.mjs')],
    { encoding: 'utf8', env: { ...process.env, PATH: `${path.join(ROOT, 'node_modules/.bin')}${path.delimiter}${process.env.PATH}` } });
  return { dir, r };
}

test('the renamed wasm and glue still work together, and no long name is left', async () => {
  const { dir, r } = setUp(GLUE);
  assert.equal(r.status, 0, r.stderr);
  const module = new WebAssembly.Module(fs.readFileSync(path.join(dir, 'tiny_bg.wasm')));
  const names = [...WebAssembly.Module.imports(module).flatMap((i) => [i.module, i.name]), ...WebAssembly.Module.exports(module).map((e) => e.name)];
  assert.ok(names.every((n) => n.length <= 2), `names left long: ${names.join(', ')}`);
  const glue = fs.readFileSync(path.join(dir, 'tiny.mjs'), 'utf8');
  for (const old of [IMPORT, MODULE, 'tiny_run', 'wasm.memory']) assert.ok(!glue.includes(old), `the glue still names ${old}`);
  const g = await import(pathToFileURL(path.join(dir, 'tiny.mjs')).href);
  g.init(module);
  g.run();
  assert.deepEqual(g.calls, [65536], 'the import was not called through the renamed names');
});

for (const [what, broken, message] of [
  ['an import the glue does not provide', GLUE.replace(`${IMPORT}: function`, '__wbg_other_0123456789abcdef: function'), `import ${IMPORT}: expected 1 occurrence`],
  ['an export the wasm does not have', GLUE.replace('wasm.tiny_run()', 'wasm.tiny_walk()'), 'the glue reads wasm.tiny_walk'],
  ['another import module', GLUE.replace(`"${MODULE}": import0`, '"./elsewhere.js": import0'), `module ${MODULE}: expected 1 occurrence`],
]) {
  test(`a glue with ${what} fails the step and leaves both files as they were`, () => {
    const { dir, r } = setUp(broken);
    assert.equal(r.status, 1, r.stderr);
    assert.ok(r.stderr.includes(message), r.stderr);
    assert.deepEqual(fs.readFileSync(path.join(dir, 'tiny_bg.wasm')), tinyWasm());
    assert.equal(fs.readFileSync(path.join(dir, 'tiny.mjs'), 'utf8'), broken);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['tiny.mjs', 'tiny_bg.wasm']);
  });
}
