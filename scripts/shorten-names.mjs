// Shortens wasm-bindgen's import and export names (`__wbg_get_2080c49015e35254`, `tokenmanager_login`, the import
// module `./wasm_token_manager_bg.js`) to one or two letters, in the wasm and in the JS glue alike. The names appear
// in both files and compress poorly (each import name carries a 16-digit hash).
//
//   node scripts/shorten-names.mjs <wasm> <glue.js>
//
// The wasm is renamed by binaryen (`wasm-opt --minify-imports-and-exports-and-modules`, which prints the mapping);
// the glue (wasm-bindgen's unminified `--target web` output) is rewritten here: the keys of its import object, its
// module key, and every `wasm.<export>` access. Then both are checked against each other: every import the wasm
// declares is a key of the glue's import object, every export the glue reads exists, and no old name is left. Any
// mismatch fails the build (exit 1), so a wasm-bindgen upgrade that changes the glue's shape cannot ship a package
// that fails at instantiation.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const [wasmPath, gluePath] = process.argv.slice(2);
if (!wasmPath || !gluePath) {
  console.error('usage: node scripts/shorten-names.mjs <wasm> <glue.js>');
  process.exit(2);
}
const out = `${wasmPath}.short`; // binaryen's output, renamed over the input only once everything checked out
const fail = (msg) => {
  fs.rmSync(out, { force: true });
  console.error(`[shorten-names] error: ${msg}`);
  process.exit(1);
};
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const before = new WebAssembly.Module(fs.readFileSync(wasmPath));
const modules = [...new Set(WebAssembly.Module.imports(before).map((i) => i.module))];
if (modules.length !== 1) fail(`expected one import module, found ${JSON.stringify(modules)}`);

// The features the wasm is built with, as in scripts/build.sh.
const printed = execFileSync('wasm-opt', [
  '--enable-bulk-memory', '--enable-bulk-memory-opt', '--enable-nontrapping-float-to-int', '--enable-sign-ext',
  '--enable-mutable-globals', '--enable-multivalue',
  '--minify-imports-and-exports-and-modules', wasmPath, '-o', out,
], { encoding: 'utf8' });
const map = JSON.parse(printed.slice(printed.indexOf('{')));
const after = new WebAssembly.Module(fs.readFileSync(out));
const newModules = [...new Set(WebAssembly.Module.imports(after).map((i) => i.module))];
if (newModules.length !== 1) fail(`expected one import module after renaming, found ${JSON.stringify(newModules)}`);
const [oldModule, newModule] = [modules[0], newModules[0]];

let glue = fs.readFileSync(gluePath, 'utf8');
const replaceExactlyOnce = (pattern, replacement, what) => {
  const matches = glue.match(new RegExp(pattern, 'g')) || [];
  if (matches.length !== 1) fail(`${what}: expected 1 occurrence in the glue, found ${matches.length}`);
  glue = glue.replace(new RegExp(pattern), replacement);
};

// The import object: `const import0 = { __proto__: null, <name>: function(…) {…}, … }` and its module key.
for (const [module, name, short] of map.imports) {
  if (module !== oldModule) fail(`import ${module}.${name} is not from ${oldModule}`);
  replaceExactlyOnce(`(?<=\\n\\s+)${escape(name)}(?=: function\\()`, short, `import ${name}`);
}
replaceExactlyOnce(`(?<=\\n\\s+)${escape(JSON.stringify(oldModule))}(?=: import0,)`, JSON.stringify(newModule), `module ${oldModule}`);

// The exports: every `wasm.<name>` access.
for (const [name, short] of map.exports) {
  glue = glue.replace(new RegExp(`\\bwasm\\.${escape(name)}\\b`, 'g'), `wasm.${short}`);
}

// The check: the glue now names exactly what the wasm has.
const exportNames = new Set(WebAssembly.Module.exports(after).map((e) => e.name));
for (const used of glue.matchAll(/\bwasm\.([A-Za-z_$][\w$]*)/g)) {
  if (!exportNames.has(used[1])) fail(`the glue reads wasm.${used[1]}, which the wasm does not export`);
}
for (const { name } of WebAssembly.Module.imports(after)) {
  if (!new RegExp(`\\n\\s+${escape(name)}: function\\(`).test(glue)) fail(`the wasm imports ${name}, which the glue does not provide`);
}
for (const [, name] of map.imports) if (glue.includes(name)) fail(`the glue still names import ${name}`);

fs.renameSync(out, wasmPath);
fs.writeFileSync(gluePath, glue);
console.error(`[shorten-names] ${map.imports.length} imports and ${map.exports.length} exports renamed`);
