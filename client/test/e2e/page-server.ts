// The test pages' origin: serves the pages (and, until ck serves it, the client bundle) and passes every
// other request through to ck, so the pages talk to ck same-origin, as the dashboard does.
import { readFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Serve /client.js from this harness (the bundle built in dist/). Set to false once ck serves
 * GET /client.js itself: the request is then passed through to ck like any other.
 */
export const CLIENT_JS_FROM_HARNESS = false;

const BUNDLE = new URL('../../dist/ck-client.browser.js', import.meta.url);
const PAGE = '<!doctype html><meta charset="utf-8"><title>ck-client e2e</title><script type="module" src="/boot.js"></script><p>ck-client e2e</p>';
/** What a page does: import the client from ck. (window.ckClient is for the tests to drive it.) */
const BOOT = "import * as ckClient from '/client.js'; window.ckClient = ckClient;";
/** The dashboard's policy: same-origin scripts only, so no blob: Worker. */
const STRICT_CSP = "default-src 'self'; script-src 'self'; connect-src 'self'";

export interface PageServer {
  url: string;
  /** Requests that reached ck, in order (method, path, whether it carried a bearer). */
  seen: { method: string; path: string; auth: boolean; at: number }[];
  close(): Promise<void>;
}

export async function startPageServer(ckUrl: string): Promise<PageServer> {
  const target = new URL(ckUrl);
  const seen: PageServer['seen'] = [];
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (path === '/page.html' || path === '/strict.html') {
      const headers: Record<string, string> = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' };
      if (path === '/strict.html') headers['content-security-policy'] = STRICT_CSP;
      res.writeHead(200, headers).end(PAGE);
      return;
    }
    if (path === '/boot.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' }).end(BOOT);
      return;
    }
    if (path === '/client.js' && CLIENT_JS_FROM_HARNESS) {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' }).end(readFileSync(BUNDLE));
      return;
    }
    seen.push({ method: req.method!, path, auth: /^Bearer /.test(req.headers.authorization ?? ''), at: Date.now() });
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path, headers: { ...req.headers, host: target.host } }, (up) => {
      res.writeHead(up.statusCode!, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
