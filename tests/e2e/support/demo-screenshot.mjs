// Takes the README's screenshot of the live demo: starts the server as scripts/demo.sh does (on a free port),
// signs in, clicks through a few buttons so the counters and the event log have something to show, and writes
// www/screenshot.png. Not a test (node --test does not pick it up); run it by hand after scripts/build.sh:
//
//   node tests/e2e/support/demo-screenshot.mjs [out.png]
import path from 'node:path';
import { launchChromium } from './browser.mjs';
import { ROOT, startAuthServer } from './server.mjs';
import { until } from './app.mjs';

const out = path.resolve(process.argv[2] ?? path.join(ROOT, 'www/screenshot.png'));
const server = await startAuthServer({ rateLimits: true, args: ['--dpop', 'allowed'] });
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  const click = async (sel) => {
    const seq = await page.getAttribute('#result', 'data-seq');
    await page.click(sel);
    await page.waitForFunction((s) => document.querySelector('#result').dataset.seq !== s, seq, { timeout: 20_000 });
  };
  await page.goto(`${server.url}/`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
  await page.click('#btn-login');
  await page.waitForSelector('#state[data-state="in"]', { timeout: 10_000 });
  await click('#btn-call');
  await click('#btn-burst');
  await click('#btn-revoke');
  await click('#btn-call');
  // A short outage (the button asks for 30 s; shortened here) so the log shows a refreshfailed and the recovery.
  await page.route('**/demo/fail-refresh', (route) => route.continue({ postData: JSON.stringify({ seconds: 2 }) }));
  await click('#btn-fail');
  await until(async () => (await server.stats()).refreshFailingForSeconds === 0, { timeout: 10_000, what: 'the outage to end' });
  await page.waitForSelector('#state[data-state="in"]', { timeout: 30_000 });
  await click('#btn-burst');
  await click('#btn-steal'); // the stolen copies refused next to the manager's own call
  await page.mouse.move(1, 1); // no hover highlight in the picture
  await page.waitForTimeout(2_500); // let the countdowns move away from their start
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.stop();
}
