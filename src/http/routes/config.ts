import { Type } from '@sinclair/typebox';
import { errorResponses } from '../schemas.js';
import type { App } from '../types.js';

/** GET /config: what clients need to behave (heartbeat cadence, idle decay, how far back they may write). */
export default async function config(app: App) {
  const { config: c } = app.ck;
  const body = { heartbeat_timeout: c.heartbeatTimeoutSec, idle_timeout: c.idleTimeoutSec, max_backfill: c.maxBackfillSec };
  app.get('/config', {
    config: { scope: 'any' },
    schema: {
      summary: 'The timeouts a client works with, in seconds (any valid key or token)',
      response: {
        200: Type.Object({ heartbeat_timeout: Type.Integer(), idle_timeout: Type.Integer(), max_backfill: Type.Integer() }),
        ...errorResponses(401),
      },
    },
  }, async () => body);
}
