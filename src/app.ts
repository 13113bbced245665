import Fastify, { LogController, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { KeyVerifier } from './auth/keys.js';
import { TokenRevocations } from './auth/revocations.js';
import { tokenSecret } from './auth/token-secret.js';
import { looksLikeJwt, verifyToken } from './auth/tokens.js';
import type { Config } from './config.js';
import type { Context } from './context.js';
import { DatabaseClock } from './db/clock.js';
import { ReadRouter } from './db/replica.js';
import type { Db } from './db/types.js';
import { eventsAfter } from './events/event.js';
import { EventHub } from './events/hub.js';
import { EventStreams } from './events/streams.js';
import type { Principal } from './http/auth.js';
import { clientError, frameworkError, registerErrorHandler } from './http/error-handler.js';
import { HeartbeatLane, laneRefusal } from './http/heartbeat-lane.js';
import { registerJsonParser } from './http/json-body.js';
import { createNodeServer } from './http/node-server.js';
import { registerRequestHooks } from './http/request-hooks.js';
import { heartbeatRoute } from './http/routes/heartbeat.js';
import { routes } from './http/routes/index.js';
import { Problem } from './http/schemas.js';
import { registerSecurity, requestId } from './http/security.js';
import type { App } from './http/types.js';
import { registerValidation } from './http/validation.js';
import { Coalescer } from './liveness/coalescer.js';
import { CheckpointWriter } from './checkpoints/writer.js';
import { Metrics } from './metrics.js';
import { StateRegistry } from './states/registry.js';
import { aggregationLagSeconds } from './summaries/sql.js';
import type { Clock } from './time.js';
import { countPending } from './webhooks/outbox.js';
import { WebhookWorker } from './webhooks/worker.js';

/**
 * Bounds on what Server-Sent Events clients can make this instance hold (docs/events.md): a replay reads
 * 100 events at a time, a client more than 1 MiB behind is cut off, and all clients together may be
 * 64 MiB behind before the furthest behind are cut off.
 */
export const SSE_LIMITS = { pageSize: 100, maxBuffered: 1024 * 1024, maxHeld: 1000, maxTotalBuffered: 64 * 1024 * 1024 };

export interface AppDeps {
  db: Db;
  /** Where stored times come from; default the database's clock (DatabaseClock). Tests pass their own. */
  clock?: Clock;
  /** A pino logger; tests pass none (silent). */
  logger?: FastifyServerOptions['loggerInstance'];
  /** A streaming replica's pool (CK_READ_DATABASE_URL) for heavy reads; the caller opens and closes it. */
  replica?: Db;
  /**
   * Your own hooks and routes, registered before ck's routes (embedding ck in a larger service). A
   * request-wide hook turns the heartbeat lane off: every heartbeat then runs through it.
   */
  extend?: (app: App) => void | Promise<void>;
}

/**
 * Builds the HTTP app on an open, migrated database. Starts no scheduled jobs (see `startJobs`) but the
 * heartbeat flush timer and the webhook worker, which `app.close()` stops (after a final flush).
 */
export async function buildApp(config: Config, deps: AppDeps): Promise<App> {
  const db = deps.db;
  let lane: HeartbeatLane<unknown> | undefined;
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    bodyLimit: 1024 * 1024,
    // Requests on kept-alive connections while closing get ck's own 503 (request-hooks.ts).
    return503OnClosing: false,
    // A 128-character user id in a path may arrive percent-encoded (up to 12 characters each).
    routerOptions: { maxParamLength: 2048 },
    // Router and parser rejections are problem+json too.
    frameworkErrors: (err, req, reply) => frameworkError(err, req as FastifyRequest, reply as FastifyReply),
    clientErrorHandler: clientError,
    // One structured line per request (request-hooks.ts) instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: (req) => requestId(req.headers),
    // Our own node:http server, so the heartbeat lane sees requests before Fastify does.
    serverFactory: (handler) => createNodeServer(handler, () => lane && ((req, res, next) => lane!.serve(req, res, next))),
  }).withTypeProvider<TypeBoxTypeProvider>();

  const clock = deps.clock ?? (await DatabaseClock.start(db, (err) => app.log.warn({ err }, 'reading the database clock failed')));
  const states = new StateRegistry(db);
  await states.load();
  const keys = new KeyVerifier(db);
  const metrics = new Metrics();
  const timeouts = { heartbeatSec: config.heartbeatTimeoutSec, idleSec: config.idleTimeoutSec };
  const events = new EventHub(db, { onError: (err) => app.log.warn({ err }, 'reading the event log failed; will retry') });
  // Write transactions in flight at once: a few per instance, within the pool (PGlite has one connection).
  const lanes = db.kind === 'pglite' ? 1 : Math.max(1, Math.min(4, Math.floor(config.poolSize / 2)));
  const coalescer = new Coalescer({
    db,
    clock,
    timeouts,
    flushIntervalMs: config.flushIntervalMs,
    chunk: db.kind === 'pglite' ? 500 : 10_000,
    lanes,
    onCommit: () => events.wake(),
    onBatch: (kind, n, ms) => metrics.observeBatch(kind, n, ms),
    onFlush: metrics.observeFlush,
    onError: (err) => app.log.warn({ err }, 'heartbeat flush failed; will retry'),
  });
  const checkpoints = new CheckpointWriter({
    db, clock, timeouts, lanes,
    onBatch: (n, ms) => metrics.observeBatch('checkpoints', n, ms),
    onCommit: (users) => {
      for (const u of users) coalescer.forget(u);
      events.wake();
    },
  });
  metrics.watch(db, coalescer);
  metrics.onScrape(async () => metrics.webhookBacklog.set(await countPending(db)));
  metrics.onScrape(async () => metrics.aggregationLag.set(await aggregationLagSeconds(db, clock.now())));
  await events.start();
  // A state written elsewhere (a client, the sweep, another instance) invalidates the heartbeat cache.
  events.subscribe(({ type, event }) => {
    if (type === 'state' && event.source !== 'heartbeat') coalescer.forget(event.user_id);
  });
  // Sends the webhook outbox; woken by the hub, polls as a fallback. Safe in every instance (leases).
  const webhooks = new WebhookWorker({ db, events, retryBaseMs: config.webhookRetryBaseMs, timeoutMs: config.webhookTimeoutMs,
    allowPrivate: config.webhookAllowPrivate, log: app.log });
  const streams = new EventStreams(events, {
    ...SSE_LIMITS,
    keepAliveMs: config.sseKeepAliveSec * 1000,
    readPage: (users, sessions) => (after, limit) => eventsAfter(db, after, users, limit, sessions),
    onOpen: () => metrics.sseClients.inc(),
    onClose: () => metrics.sseClients.dec(),
    onCut: (reason) => app.log.info({ reason }, 'event stream cut off'),
  });
  const secret = await tokenSecret(db, config.tokenSecret);
  const revocations = new TokenRevocations(db, (err) => app.log.warn({ err }, 'reading token revocations failed; will retry'));
  await revocations.start();
  const reads = new ReadRouter({
    primary: db, replica: deps.replica, maxLagMs: config.readMaxLagMs,
    onChange: (state, detail) => app.log[state === 'replica' ? 'info' : 'warn']({ replica: state, detail }, `heavy reads: ${state === 'replica' ? 'on the replica' : 'on the primary'}`),
  });
  const ck: Context = { config, db, clock, timeouts, states, keys, coalescer, checkpoints, events, streams, metrics, webhooks, tokenSecret: secret, revocations, reads };
  app.decorate('ck', ck);

  app.addSchema(Problem);
  registerValidation(app);
  registerJsonParser(app);
  registerErrorHandler(app);
  const verify = async (bearer: string): Promise<Principal | undefined> => {
    if (looksLikeJwt(bearer)) {
      const t = await verifyToken(secret, bearer, clock.now());
      return t && !revocations.has(t.jti) ? { kind: 'token', id: t.jti, scopes: t.scopes, userId: t.userId } : undefined;
    }
    const key = await keys.verify(bearer);
    return key && { kind: 'key', id: key.id, scopes: key.scopes };
  };
  const cached = (bearer: string): Principal | undefined => {
    const key = keys.cached(bearer);
    return key && { kind: 'key', id: key.id, scopes: key.scopes };
  };
  const logRequests = deps.logger !== undefined && ['trace', 'debug', 'info'].includes(deps.logger.level);
  const hooks = registerRequestHooks(app, { metrics, logRequests, verify, cached });
  await registerSecurity(app, config, verify);
  await deps.extend?.(app);
  await app.register(routes);
  app.addHook('preClose', (done) => {
    lane?.close();
    done();
  });
  app.addHook('onClose', async () => {
    streams.stop();
    await webhooks.stop();
    await coalescer.stop().catch((err) => app.log.error({ err }, 'final heartbeat flush failed'));
    await events.stop();
    await revocations.stop();
    if (clock instanceof DatabaseClock) clock.stop();
  });
  await app.ready();

  // The lane stands in for POST /heartbeat only where it reproduces every hook Fastify runs there.
  const route = heartbeatRoute(ck);
  const refused = config.heartbeatLane ? laneRefusal(app, route.method, route.url) : 'CK_HEARTBEAT_LANE=off';
  if (refused === undefined) {
    const l = new HeartbeatLane({ route, cachedPrincipal: cached, requestId, answered: (a) => hooks.answered(a) });
    metrics.watchLane(l);
    lane = l as HeartbeatLane<unknown>;
  } else if (config.heartbeatLane) {
    app.log.warn({ reason: refused }, 'heartbeat lane off: every heartbeat goes through the router');
  }
  coalescer.start();
  webhooks.start();
  return app;
}
