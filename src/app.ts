import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { KeyVerifier } from './auth/keys.js';
import { looksLikeJwt, verifyToken } from './auth/tokens.js';
import type { Config } from './config.js';
import type { Context } from './context.js';
import type { Db } from './db/types.js';
import { authHook, hasScope, type Principal } from './http/auth.js';
import { frameworkError, registerErrorHandler } from './http/error-handler.js';
import { registerJsonParser } from './http/json-body.js';
import { HeartbeatLane, laneServer } from './http/heartbeat-lane.js';
import { registerSecurity, requestId, SECURITY_HEADERS } from './http/security.js';
import { statusJson } from './http/status-view.js';
import { registerValidation } from './http/validation.js';
import { Problem } from './http/schemas.js';
import { routes } from './http/routes/index.js';
import { Coalescer } from './liveness/coalescer.js';
import { Metrics } from './metrics.js';
import { StateRegistry } from './states/registry.js';
import { EventHub } from './events/hub.js';
import { type Clock, systemClock } from './time.js';
import { WebhookWorker } from './webhooks/worker.js';

export interface AppDeps {
  db: Db;
  clock?: Clock;
  /** A pino logger; tests pass none (silent). */
  logger?: FastifyServerOptions['loggerInstance'];
}

export type App = FastifyInstance;

// Slow clients cannot hold connections: bounded header, request and keep-alive times.
const TIMEOUTS = { connectionTimeout: 30_000, requestTimeout: 30_000, keepAliveTimeout: 10_000 };

/**
 * Builds the HTTP app on an open, migrated database. Starts no scheduled jobs (see `startJobs`) but the
 * heartbeat flush timer and the webhook worker, which `app.close()` stops (after a final flush).
 */
export async function buildApp(config: Config, deps: AppDeps): Promise<App> {
  const clock = deps.clock ?? systemClock;
  let lane: HeartbeatLane | undefined;
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    bodyLimit: 1024 * 1024,
    ...TIMEOUTS,
    return503OnClosing: true,
    // A 128-character user id in a path may arrive percent-encoded (up to 12 characters each).
    routerOptions: { maxParamLength: 2048 },
    // Router rejections (malformed %-escapes, over-long params) are problem+json too.
    frameworkErrors: (err, req, reply) => frameworkError(err, req as FastifyRequest, reply as FastifyReply),
    // One structured line per request (onResponse below) instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: (req) => requestId(req.headers),
    // Our own node:http server, so the heartbeat lane sees requests before Fastify does.
    serverFactory: (handler) => laneServer(handler, TIMEOUTS, () => lane),
  }).withTypeProvider<TypeBoxTypeProvider>();

  const states = new StateRegistry(deps.db);
  await states.load();
  const keys = new KeyVerifier(deps.db);
  const metrics = new Metrics();
  const coalescer = new Coalescer({
    db: deps.db,
    clock,
    timeoutSec: config.heartbeatTimeoutSec,
    flushIntervalMs: config.flushIntervalMs,
    chunk: deps.db.kind === 'pglite' ? 500 : 10_000,
    onFlush: metrics.observeFlush,
    onError: (err) => app.log.warn({ err }, 'heartbeat flush failed; will retry'),
  });
  metrics.watch(deps.db, coalescer);
  const events = new EventHub(deps.db, (err) => app.log.warn({ err }, 'event delivery failed'));
  await events.start();
  // A state written elsewhere (a client, the sweep, another instance) invalidates the heartbeat cache.
  events.subscribe((e) => {
    if (e.source !== 'heartbeat') coalescer.forget(e.user_id);
  });
  // Sends the webhook outbox; woken by the hub, polls as a fallback. Safe in every instance (leases).
  const webhooks = new WebhookWorker({ db: deps.db, events, retryBaseMs: config.webhookRetryBaseMs, log: app.log });
  const ck: Context = { config, db: deps.db, clock, states, keys, coalescer, events, metrics, webhooks };
  app.decorate('ck', ck);

  app.addSchema(Problem);
  registerValidation(app);
  registerJsonParser(app);
  registerErrorHandler(app);
  // Hooks run on every request, heartbeats included: one per phase, callback style (no promise each).
  app.addHook('onRequest', (req, reply, done) => {
    reply.headers(SECURITY_HEADERS);
    reply.header('x-request-id', req.id);
    done();
  });
  // The level is fixed at start-up: decide once, not per request.
  const logRequests = deps.logger !== undefined && ['trace', 'debug', 'info'].includes(deps.logger.level);
  // One line per answered request (here and in the heartbeat lane); 5xx are logged by the error handler.
  const logRequest = (log: FastifyBaseLogger, line: { reqId?: string; method: string; url: string; status: number; ms: number }) => {
    if (line.status < 500) log.info({ ...line, ms: Math.round(line.ms) }, 'request');
  };
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.observeRequest(req.method, route, reply.statusCode, reply.elapsedTime);
    if (logRequests) logRequest(req.log, { method: req.method, url: req.routeOptions.url ?? req.url, status: reply.statusCode, ms: reply.elapsedTime });
    done();
  });
  const verifyBearer = async (bearer: string): Promise<Principal | undefined> => {
    if (looksLikeJwt(bearer)) {
      const t = config.tokenSecret ? await verifyToken(config.tokenSecret, bearer, clock.now()) : undefined;
      return t && { kind: 'token', id: t.jti, scopes: t.scopes, userId: t.userId };
    }
    const key = await keys.verify(bearer);
    return key && { kind: 'key', id: key.id, scopes: key.scopes };
  };
  await registerSecurity(app, config, verifyBearer);
  const cachedBearer = (bearer: string): Principal | undefined => {
    const key = keys.cached(bearer);
    return key && { kind: 'key', id: key.id, scopes: key.scopes };
  };
  app.addHook('preHandler', authHook(verifyBearer, cachedBearer));

  await app.register(routes);
  // Rate limits and CORS are Fastify hooks: with either on, every heartbeat goes through Fastify.
  if (config.heartbeatLane && config.rateLimit === 0 && config.corsOrigins.length === 0) {
    const render = statusJson(states);
    lane = new HeartbeatLane({
      admits: (bearer) => {
        const key = keys.cached(bearer);
        return key !== undefined && hasScope(key, 'ingest');
      },
      answer: (user) => {
        const r = coalescer.beatKnown(user);
        return r && render(r);
      },
      requestId,
      done: (id, ms) => {
        metrics.observeRequest('POST', '/heartbeat', 200, ms);
        if (logRequests) logRequest(app.log, { reqId: id, method: 'POST', url: '/heartbeat', status: 200, ms });
      },
    });
    metrics.watchLane(lane);
    app.addHook('preClose', (done) => {
      lane?.close();
      done();
    });
  }
  coalescer.start();
  webhooks.start();
  app.addHook('onClose', async () => {
    await webhooks.stop();
    await coalescer.stop().catch((err) => app.log.error({ err }, 'final heartbeat flush failed'));
    await events.stop();
  });
  return app;
}
