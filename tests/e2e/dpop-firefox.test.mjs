// DPoP end to end in Firefox (issue 14 item 9): the same scenarios as dpop.test.mjs (support/dpop-scenarios.mjs),
// driven in the real Firefox ESR through geckodriver and selenium-webdriver (support/drivers.mjs says why not
// Playwright). Needs $WTM_FIREFOX and $WTM_GECKODRIVER (scripts/bootstrap.sh installs both; .toolchain/env names them).
import { registerDpopTests } from './support/dpop-scenarios.mjs';
import { firefoxAvailable, firefoxDriver } from './support/drivers.mjs';

registerDpopTests(firefoxDriver(), 'Firefox', () => {
  if (!firefoxAvailable()) throw new Error('WTM_FIREFOX and WTM_GECKODRIVER are not set: source .toolchain/env (scripts/bootstrap.sh writes it)');
});
