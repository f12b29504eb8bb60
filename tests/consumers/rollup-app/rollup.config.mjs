// The minimal configuration any Rollup app that imports from node_modules needs: an input, an output folder
// (ES modules, so code-split chunks work), and node-resolve for bare specifiers. Nothing here is about
// wasm-token-manager or wasm.
import { nodeResolve } from '@rollup/plugin-node-resolve';

export default {
  input: 'src/main.js',
  output: { dir: 'dist', format: 'es' },
  plugins: [nodeResolve()],
};
