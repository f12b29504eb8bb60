// A webpack 5 app with no configuration file at all: webpack's defaults take src/index.js to dist/main.js.
// No wasm rule, no experiments flag.
import { publish, runFlow } from '../flow.js';

publish(runFlow());
