import type { App } from '../../app.js';
import { errorResponses } from '../schemas.js';

export default async function metrics(app: App) {
  const { metrics: m } = app.ck;

  // Needs the read scope: the numbers reveal traffic and user counts. Prometheus sends the key with
  // `authorization: { credentials_file: ... }` in the scrape config (docs/metrics.md).
  app.get('/metrics', {
    config: { scope: 'read' },
    schema: {
      summary: 'Prometheus metrics of this instance (text exposition format)',
      response: errorResponses(401, 403),
    },
  }, async (req, reply) => {
    const text = await m.scrape((err) => req.log.warn({ err }, 'a metrics scrape hook failed'));
    return reply.type(m.contentType).send(text);
  });
}
