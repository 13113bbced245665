import { errorResponses } from '../schemas.js';
import type { App } from '../types.js';

export default async function metrics(app: App) {
  const { metrics: m } = app.ck;

  // Needs a key with the read scope: the numbers are service-wide (traffic, user counts, the pool), which
  // a per-user token must not see. Prometheus sends the key with `authorization: { credentials_file: ... }`
  // in the scrape config (docs/metrics.md).
  app.get('/metrics', {
    config: { scope: 'read', keysOnly: true },
    schema: {
      summary: 'Prometheus metrics of this instance (text exposition format)',
      response: errorResponses(401, 403),
    },
  }, async (req, reply) => {
    const text = await m.scrape((err) => req.log.warn({ err }, 'a metrics scrape hook failed'));
    return reply.type(m.contentType).send(text);
  });
}
