// A Node CommonJS program that loads the package with require() (Node 20.19+ loads an ES module this way when
// its graph has no top-level await).
'use strict';
const { check, fail } = require('./checks.cjs');

let mod;
try {
  mod = require('wasm-token-manager');
} catch (error) {
  fail(error);
}
if (mod) check(mod).catch(fail);
