import swagger from '@fastify/swagger';
import checkpoints from './checkpoints.js';
import clientJs from './client-js.js';
import config from './config.js';
import dashboard from './dashboard.js';
import events from './events.js';
import health from './health.js';
import heartbeat from './heartbeat.js';
import keys from './keys.js';
import metrics from './metrics.js';
import states from './states.js';
import status from './status.js';
import summaries from './summaries.js';
import tokens from './tokens.js';
import users from './users.js';
import webhooks from './webhooks.js';
import type { App } from '../types.js';

export async function routes(app: App) {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'ck', version: '0.1.0', description: 'User state and presence tracking' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  for (const r of [health, config, heartbeat, checkpoints, status, states, keys, tokens, events, summaries, users, dashboard, clientJs, metrics, webhooks]) await app.register(r);
}
