// A Vite app with no vite.config and no wasm plugin, run with `vite` (dev) and built with `vite build`
// by Vite 5, 6, 7 and 8.
import { publish, runFlow } from '../flow.js';

publish(runFlow());
