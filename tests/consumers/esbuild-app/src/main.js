// An esbuild app, bundled from the command line with no plugin and no loader option:
// `esbuild src/main.js --bundle --format=esm` and esbuild's default (iife) format.
import { publish, runFlow } from '../flow.js';

publish(runFlow());
