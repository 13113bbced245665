import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { KeyVerifier } from './auth/keys.js';
import type { Config } from './config.js';
import type { Context } from './context.js';
import type { Db } from './db/types.js';
import { authHook } from './http/auth.js';
import { registerErrorHandler } from './http/error-handler.js';
import { registerJsonParser } from './http/json-body.js';
import { registerValidation } from './http/validation.js';
import { Problem } from './http/schemas.js';
import { routes } from './http/routes/index.js';
import { Coalescer } from './liveness/coalescer.js';
import { StateRegistry } from './states/registry.js';
import { EventHub } from './events/hub.js';
import { type Clock, systemClock } from './time.js';

export interface AppDeps {
  db: Db;
  clock?: Clock;
  /** A pino logger; tests pass none (silent). */
  logger?: FastifyServerOptions['loggerInstance'];
}

export type App = FastifyInstance;

/**
 * Builds the HTTP app on an open, migrated database. Starts no background jobs (see `startJobs`) but the
 * heartbeat flush timer, which `app.close()` stops after a final flush.
 */
export async function buildApp(config: Config, deps: AppDeps): Promise<App> {
  const clock = deps.clock ?? systemClock;
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    bodyLimit: 1024 * 1024,
    // Slow clients cannot hold connections: bounded header, request and keep-alive times.
    connectionTimeout: 30_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 10_000,
    return503OnClosing: true,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.-]{1,128}$/.test(given) ? given : crypto.randomUUID();
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const states = new StateRegistry(deps.db);
  await states.load();
  const keys = new KeyVerifier(deps.db);
  const coalescer = new Coalescer({
    db: deps.db,
    clock,
    timeoutSec: config.heartbeatTimeoutSec,
    flushIntervalMs: config.flushIntervalMs,
    chunk: deps.db.kind === 'pglite' ? 500 : 10_000,
    onError: (err) => app.log.warn({ err }, 'heartbeat flush failed; will retry'),
  });
  const events = new EventHub(deps.db, (err) => app.log.warn({ err }, 'event delivery failed'));
  await events.start();
  // A state written elsewhere (a client, the sweep, another instance) invalidates the heartbeat cache.
  events.subscribe((e) => {
    if (e.source !== 'heartbeat') coalescer.forget(e.user_id);
  });
  const ck: Context = { config, db: deps.db, clock, states, keys, coalescer, events };
  app.decorate('ck', ck);

  app.addSchema(Problem);
  registerValidation(app);
  registerJsonParser(app);
  registerErrorHandler(app);
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  app.addHook('preHandler', authHook(async (bearer) => {
    const key = await keys.verify(bearer);
    return key && { kind: 'key', id: key.id, scopes: key.scopes };
  }));

  await app.register(routes);
  coalescer.start();
  app.addHook('onClose', async () => {
    await coalescer.stop().catch((err) => app.log.error({ err }, 'final heartbeat flush failed'));
    await events.stop();
  });
  return app;
}
