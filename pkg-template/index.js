// Entry module of the wasm-token-manager npm package.
// Instantiates the WebAssembly module once, at import, from the .wasm file next to this module, so that
// `import { TokenManager } from 'wasm-token-manager'` is ready to use. Importing does nothing else:
// no timers, no listeners, no globals touched, until a TokenManager is constructed.
import init, { TokenManager } from './wasm_token_manager.js';

await init({ module_or_path: new URL('./wasm_token_manager_bg.wasm', import.meta.url) });

export { TokenManager };
