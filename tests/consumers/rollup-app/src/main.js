// A Rollup app: ES module output to dist/, nothing configured for the package (see rollup.config.mjs).
import { publish, runFlow } from '../flow.js';

publish(runFlow());
