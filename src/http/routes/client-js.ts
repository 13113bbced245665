import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERRORS } from '../errors.js';
import type { App } from '../types.js';

/** ck-client's browser bundle (client/, built by the root `npm run build`): the same path from src/ and dist/. */
export const CLIENT_BUNDLE = fileURLToPath(new URL('../../../client/dist/ck-client.browser.js', import.meta.url));

function load(): { body: Buffer; etag: string } | undefined {
  try {
    const body = readFileSync(CLIENT_BUNDLE);
    return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
  } catch {
    return undefined;
  }
}

/**
 * GET /client.js: ck-client as one ES module, so a page can `import { CkClient } from 'https://ck…/client.js'`.
 * Public code, no secrets: any origin may load it (a cross-origin module script is a CORS request), and it
 * revalidates with its ETag so a new release is picked up at once. Read once at start-up.
 */
export default async function clientJs(app: App) {
  const bundle = load();
  app.get('/client.js', {
    schema: { summary: 'The ck-client browser bundle (ES module)', hide: true },
  }, async (req, reply) => {
    if (!bundle) throw ERRORS.notFound('the client bundle is not built (npm run build)');
    reply.headers({
      'content-type': 'text/javascript; charset=utf-8',
      'cache-control': 'no-cache',
      etag: bundle.etag,
      'access-control-allow-origin': '*',
      'cross-origin-resource-policy': 'cross-origin',
    });
    if (req.headers['if-none-match'] === bundle.etag) return reply.status(304).send();
    return reply.send(bundle.body);
  });
}
