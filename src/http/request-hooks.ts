import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Metrics } from '../metrics.js';
import { authHook, ckOwnUser, type Principal } from './auth.js';
import { baseHeaders } from './security.js';

/** One answered request, as the metrics and the request log see it. */
export interface Answered {
  reqId: string;
  method: string;
  /** The route pattern (`/status/:user_id`), `unmatched` outside any route: the metrics label. */
  route: string;
  /** What the log line shows: the route pattern, or the raw URL outside any route. */
  url: string;
  status: number;
  ms: number;
}

export interface RequestHookDeps {
  metrics: Metrics;
  /** Request log lines are written at info level; decided once at start-up. */
  logRequests: boolean;
  verify: (bearer: string) => Promise<Principal | undefined>;
  cached: (bearer: string) => Principal | undefined;
}

/**
 * The request-wide hooks, registered here and nowhere else. The heartbeat lane answers some requests
 * without them and must reproduce each one; it checks the hooks Fastify actually runs on its route against
 * LANE_REPRODUCES, so a hook added anywhere else turns the lane off instead of being bypassed.
 * Hooks are named functions: the names are what that check compares.
 */
export function registerRequestHooks(app: FastifyInstance, deps: RequestHookDeps) {
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', function ckRequestHeaders(req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
    reply.headers(baseHeaders(req.id));
    // While the app drains, a request on a kept-alive connection is still served (everything runs until
    // the last connection closed), and its connection is closed after the answer: the client's next
    // request opens a new one, on another instance.
    if (closing) reply.header('connection', 'close');
    done();
  });
  app.addHook('preHandler', authHook(deps.verify, deps.cached));
  app.addHook('preHandler', ckOwnUser);
  /** Metrics and the request log line for an answer; `log` is the request's logger (it carries reqId). */
  const answered = (a: Answered, log?: FastifyBaseLogger) => {
    deps.metrics.observeRequest(a.method, a.route, a.status, a.ms);
    // 5xx are logged by the error handler, with the error.
    if (deps.logRequests && a.status < 500) {
      (log ?? app.log.child({ reqId: a.reqId })).info({ method: a.method, url: a.url, status: a.status, ms: Math.round(a.ms) }, 'request');
    }
  };
  app.addHook('onResponse', function ckObserveResponse(req: FastifyRequest, reply: FastifyReply, done: () => void) {
    const route = req.routeOptions.url;
    answered({ reqId: req.id, method: req.method, route: route ?? 'unmatched', url: route ?? req.url, status: reply.statusCode, ms: reply.elapsedTime }, req.log);
    done();
  });
  return { answered, isClosing: () => closing };
}

/** Per phase, the hooks whose effect the heartbeat lane reproduces (see heartbeat-lane.ts). */
export const LANE_REPRODUCES: Readonly<Record<string, readonly string[]>> = {
  onRequest: ['ckRequestHeaders'],
  preParsing: ['ckReplayLaneBody'],
  preHandler: ['ckAuthenticate', 'ckOwnUser'],
  onResponse: ['ckObserveResponse'],
};
