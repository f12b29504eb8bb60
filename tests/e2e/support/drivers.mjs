// Two browser drivers behind one small interface, so that a scenario (tests/e2e/support/dpop-scenarios.mjs) is
// written once and runs in Chromium and in Firefox:
//
//   driver.newContext()            -> context: a fresh profile (cookies, IndexedDB, BroadcastChannel of its own)
//   context.open(server, options)  -> tab: the harness page (tests/e2e/fixtures/app/) with its requests recorded
//                                     (window.recordWire) and a manager from setup(options) unless options is null
//   context.cookies(server)        -> [{ name, value, path, httpOnly, secure, sameSite }] of the server's /auth path,
//                                     httpOnly ones included
//   context.addCookies(server, cs) -> puts those cookies (as cookies() lists them) into this context's jar
//   context.close()
//   tab.call(name, ...args)        -> the awaited result of window[name](...args) in the page (JSON values)
//   tab.reload(options)            -> reloads the page and sets the manager up again
//   tab.wire()                     -> the requests the tab sent: [{ path, method, authorization, dpop }]
//   tab.errors()                   -> page and console errors seen (Chromium; Firefox: none collected, see below)
//
// Chromium: Debian's chromium through playwright-core (support/browser.mjs); `wire()` is what the network layer
// saw (page.on('request')). Firefox: the real Firefox ESR ($WTM_FIREFOX) through geckodriver ($WTM_GECKODRIVER)
// and selenium-webdriver (Playwright's Firefox needs its own patched build, and its WebDriver-BiDi channel fails
// on Firefox ESR at newContext); one Firefox session per context, its tabs as WebDriver windows; `wire()` is the
// page's own record of what the manager handed to fetch (window.wire), as classic WebDriver has no network events.
import { launchChromium } from './browser.mjs';
import { collectErrors } from './app.mjs';

const READY_MS = 20_000;

/** The fields of a cookie both drivers read and write (Playwright and WebDriver name them alike). */
const cookieFields = ({ name, value, path, httpOnly, secure, sameSite }) => ({ name, value, path, httpOnly, secure, sameSite });

// ---------------------------------------------------------------------------------------------- Chromium

/** A Chromium driver; `start()` launches the browser, `stop()` closes it. */
export function chromiumDriver() {
  let browser;
  return {
    name: 'chromium',
    async start() { browser = await launchChromium(); },
    async stop() { await browser?.close(); },
    async newContext() {
      const context = await browser.newContext();
      return {
        async open(server, options) {
          const page = await context.newPage();
          const errors = collectErrors(page);
          const wire = [];
          page.on('request', (req) => {
            const h = req.headers();
            wire.push({ path: new URL(req.url()).pathname, method: req.method(), authorization: h.authorization ?? null, dpop: h.dpop ?? null });
          });
          const prepare = async (o) => {
            await page.waitForFunction(() => window.harnessReady === true, null, { timeout: READY_MS });
            await page.evaluate(() => window.recordWire());
            if (o !== null) await page.evaluate((x) => window.setup(x), o);
          };
          await page.goto(`${server.url}/index.html`);
          await prepare(options);
          return {
            call: (name, ...args) => page.evaluate(([n, a]) => window[n](...a), [name, args]),
            async reload(o) { await page.reload(); await prepare(o); },
            wire: async () => wire.filter((r) => !r.path.startsWith('/vendor/') && !/\.(js|wasm|html|css)$/.test(r.path)),
            errors: () => errors,
            page,
          };
        },
        async cookies(server) {
          return (await context.cookies(`${server.url}/auth/refresh`)).map(cookieFields);
        },
        async addCookies(server, cookies) {
          const domain = new URL(server.url).hostname;
          await context.addCookies(cookies.map((c) => ({ ...c, domain })));
        },
        close: () => context.close(),
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------- Firefox

/** Runs async functions one at a time (one WebDriver session serves all its windows). */
function serial() {
  let last = Promise.resolve();
  return (fn) => {
    const run = last.then(fn, fn);
    last = run.catch(() => {});
    return run;
  };
}

/** Whether Firefox and geckodriver are there to drive ($WTM_FIREFOX, $WTM_GECKODRIVER from .toolchain/env). */
export function firefoxAvailable() {
  return Boolean(process.env.WTM_FIREFOX && process.env.WTM_GECKODRIVER);
}

/** A Firefox driver: each context is a headless Firefox session of its own (a fresh profile). */
export function firefoxDriver() {
  let webdriver;
  let firefox;
  return {
    name: 'firefox',
    async start() {
      webdriver = await import('selenium-webdriver');
      firefox = await import('selenium-webdriver/firefox.js');
    },
    async stop() {},
    async newContext() {
      const options = new firefox.Options().setBinary(process.env.WTM_FIREFOX).addArguments('-headless');
      const service = new firefox.ServiceBuilder(process.env.WTM_GECKODRIVER);
      const driver = await new webdriver.Builder().forBrowser('firefox')
        .setFirefoxOptions(options).setFirefoxService(service).build();
      await driver.manage().setTimeouts({ script: 60_000, pageLoad: READY_MS });
      const one = serial();
      let firstWindowUsed = false;
      // Calls window[name](...args) and hands back { ok } or { error }, so a page-side rejection becomes a node one.
      const CALL = `const done = arguments[arguments.length - 1];
        Promise.resolve().then(() => window[arguments[0]](...arguments[1]))
          .then((ok) => done({ ok: ok === undefined ? null : ok }), (e) => done({ error: String(e && e.stack || e) }));`;
      const exec = async (handle, name, args) => {
        await driver.switchTo().window(handle);
        const r = await driver.executeAsyncScript(CALL, name, args);
        if (r && 'error' in r) throw new Error(`window.${name}() in Firefox: ${r.error}`);
        return r.ok;
      };
      const prepare = async (handle, o) => {
        await driver.switchTo().window(handle);
        await driver.wait(() => driver.executeScript('return window.harnessReady === true'), READY_MS, 'harness not ready');
        await exec(handle, 'recordWire', []);
        if (o !== null) await exec(handle, 'setup', [o]);
      };
      return {
        open: (server, o) => one(async () => {
          if (firstWindowUsed) await driver.switchTo().newWindow('tab');
          firstWindowUsed = true;
          const handle = await driver.getWindowHandle();
          await driver.get(`${server.url}/index.html`);
          await prepare(handle, o);
          const tab = {
            call: (name, ...args) => one(() => exec(handle, name, args)),
            reload: (ro) => one(async () => {
              await driver.switchTo().window(handle);
              await driver.navigate().refresh();
              await prepare(handle, ro);
            }),
            wire: async () => (await tab.call('wireInPage')).map(({ path, method, authorization, dpop }) => ({ path, method, authorization, dpop })),
            errors: () => [],
          };
          return tab;
        }),
        // WebDriver lists the cookies of the current document's URL: read them from a window on the /auth path.
        cookies: (server) => one(async () => {
          const back = await driver.getWindowHandle();
          await driver.switchTo().newWindow('tab');
          await driver.get(`${server.url}/auth/cookies`);
          const all = await driver.manage().getCookies();
          await driver.close();
          await driver.switchTo().window(back);
          return all.map(cookieFields);
        }),
        // WebDriver adds a cookie for the current document's domain: the first window is on the server's harness.
        addCookies: (server, cookies) => one(async () => {
          const [first] = await driver.getAllWindowHandles();
          await driver.switchTo().window(first);
          for (const c of cookies) await driver.manage().addCookie(c);
        }),
        close: () => one(() => driver.quit()),
      };
    },
  };
}
