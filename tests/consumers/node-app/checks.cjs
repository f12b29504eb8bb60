// The documented server-side behaviour, checked in a plain Node process (no DOM): importing and constructing
// work; every network method and `ready` reject with TokenManagerError UNSUPPORTED_ENVIRONMENT; nothing keeps
// the process alive. Used by import.mjs (`import()`) and require.cjs (`require()`); each prints one JSON line
// when its process exits by itself, which tests/e2e/consumer-setups.test.mjs reads.
'use strict';

const result = { loaded: false, unhandledRejections: [], checks: {} };

process.on('unhandledRejection', (reason) => {
  result.unhandledRejections.push(`${reason?.name}: ${reason?.message} (${reason?.code})`);
});
// Printed when the event loop is empty, i.e. when nothing keeps the process alive any more.
process.on('exit', () => { process.stdout.write(`${JSON.stringify(result)}\n`); });

function describe(error) {
  return {
    name: error?.name ?? null,
    code: error?.code ?? null,
    message: String(error?.message ?? error),
    isError: error instanceof Error,
  };
}

async function outcome(mod, run) {
  try {
    const value = await run();
    return { resolved: true, value: typeof value };
  } catch (error) {
    return { ...describe(error), instanceOfTokenManagerError: typeof mod.TokenManagerError === 'function' && error instanceof mod.TokenManagerError };
  }
}

/** Runs every check against the loaded module namespace or exports object `mod`. */
async function check(mod) {
  result.loaded = true;
  result.exports = Object.keys(mod).sort();
  result.typeofTokenManager = typeof mod.TokenManager;
  result.typeofTokenManagerError = typeof mod.TokenManagerError;
  let tm;
  try {
    tm = new mod.TokenManager({ refreshUrl: 'https://app.example/auth/refresh' });
    result.constructed = true;
  } catch (error) {
    result.constructed = false;
    result.constructError = describe(error);
    return;
  }
  // A second manager that nobody awaits: its rejected `ready` must not surface as an unhandled rejection.
  new mod.TokenManager({ refreshUrl: 'https://app.example/auth/refresh' });
  result.isAuthenticated = tm.isAuthenticated;
  result.readyIsPromise = typeof tm.ready?.then === 'function';
  result.checks.ready = await outcome(mod, () => tm.ready);
  result.checks.fetch = await outcome(mod, () => tm.fetch('https://app.example/api/me'));
  result.checks.login = await outcome(mod, () => tm.login('https://app.example/auth/login', { method: 'POST' }));
  result.checks.refresh = await outcome(mod, () => tm.refresh());
  result.checks.logout = await outcome(mod, () => tm.logout());
  result.isAuthenticatedAfter = tm.isAuthenticated;
}

function fail(error) {
  result.loadError = describe(error);
}

module.exports = { check, fail };
