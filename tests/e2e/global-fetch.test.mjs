// The product's promise is that an app replaces fetch with the manager's. An app that does it globally
// (`window.fetch = tm.fetch`) must not send the manager's own requests (the API send, the refresh call, the
// retry, the logout) back through the wrapper: that recursed without end before. Real server, real package.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from './support/browser.mjs';
import { startAuthServer } from './support/server.mjs';
import { HARNESS_DIR, openHarness, routeVendors } from './support/app.mjs';

let browser;
let server;
before(async () => {
  browser = await launchChromium();
  server = await startAuthServer({ www: HARNESS_DIR, accessTtl: 120 });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('window.fetch = tm.fetch: calls carry the bearer, a 401 is refreshed once and retried, logout works', { timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  await routeVendors(context);
  const { page, errors } = await openHarness(context, server);
  try {
    assert.equal(await page.evaluate(() => window.loginDemo()), 200);
    const before = await server.stats();
    const result = await page.evaluate(async () => {
      window.fetch = window.tm.fetch;
      const first = await fetch('/api/me');
      await window.revokeAccess(); // the next call meets a 401 and must refresh through the platform fetch
      const second = await fetch('/api/me');
      const body = await second.json();
      await window.tm.logout();
      const third = await fetch('/api/me');
      return { first: first.status, second: second.status, sub: body.sub, third: third.status, authed: window.tm.isAuthenticated };
    });
    const after = await server.stats();
    assert.deepEqual(result, { first: 200, second: 200, sub: 'demo', third: 401, authed: false });
    assert.equal(after.refreshCalls - before.refreshCalls, 1, 'one refresh call for the revoked token');
    assert.equal(after.logouts - before.logouts, 1, 'the logout reached the server');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
