// DPoP end to end in Chromium (issue 14 item 9): the real package with `dpop: true` against the real server with
// `--dpop required`/`allowed`, and node as the attacker who copied the access token, the refresh cookie or a proof.
// The scenarios are in support/dpop-scenarios.mjs (shared with dpop-firefox.test.mjs); this file runs all of them.
import { registerDpopTests } from './support/dpop-scenarios.mjs';
import { chromiumDriver } from './support/drivers.mjs';

registerDpopTests(chromiumDriver(), 'Chromium');
