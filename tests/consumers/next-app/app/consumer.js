'use client';
// A client component that imports the package and keeps one manager at module level, as apps do. Next.js also
// evaluates this module on the server to prerender the page, where there is no DOM: importing and constructing
// must work there (the manager is inert on the server), and the page must prerender.
import { useEffect } from 'react';
import { TokenManager } from 'wasm-token-manager';
import { publish, runFlow } from '../flow.js';

const tm = new TokenManager({ refreshUrl: '/auth/refresh', logoutUrl: '/auth/logout' });

export default function Consumer() {
  useEffect(() => { publish(runFlow(tm)); }, []);
  return <p id="consumer">client component rendered; signed in: {String(tm.isAuthenticated)}</p>;
}
