import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { SECURITY_HEADERS } from '../security.js';
import type { App } from '../types.js';

/** public/ at the package root: the same relative path from src/http/routes and dist/http/routes. */
export const PUBLIC_DIR = fileURLToPath(new URL('../../../public/', import.meta.url));

/** Same-origin only, no inline script or style; the page talks to this API and nothing else. */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

// The API's security headers (but its cache-control: static files revalidate with their ETag) plus the page's own.
const { 'cache-control': _noStore, ...API_HEADERS } = SECURITY_HEADERS;
const PAGE_HEADERS = { ...API_HEADERS, 'content-security-policy': DASHBOARD_CSP, 'x-frame-options': 'DENY' };

/**
 * The dashboard: public/ served as plain files (no build step) at `/`. Public routes (no scope): the page
 * asks for an API key and calls the API with it. Only files present at start-up get a route
 * (`wildcard: false`), so no request path can reach outside public/.
 */
export default async function dashboard(app: App) {
  // Encapsulated: these headers go on the dashboard's responses only, not on the API's.
  app.addHook('onSend', async (_req, reply) => {
    reply.headers(PAGE_HEADERS);
  });
  await app.register(fastifyStatic, {
    root: PUBLIC_DIR,
    wildcard: false,
    index: 'index.html',
    dotfiles: 'deny',
    decorateReply: false,
    // Revalidate with the ETag each time, so a new release is picked up without a hard reload.
    cacheControl: true,
    maxAge: 0,
  });
}
