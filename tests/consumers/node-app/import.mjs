// A Node ESM program that loads the package with a dynamic import().
import { check, fail } from './checks.cjs';

await import('wasm-token-manager').then(check, fail);
