// A Vite app with no configuration and no wasm plugin.
import '../check.js';
