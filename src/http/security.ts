import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { bearerOf, type Principal } from './auth.js';
import { ERRORS } from './errors.js';

/** On every API response; a route that sets its own cache-control (static files) overrides no-store. */
export const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
} as const;

/** The headers every answer carries, whoever writes it (the router, the heartbeat lane, a raw error). */
export function baseHeaders(requestId: string | undefined): Record<string, string> {
  return requestId === undefined ? { ...SECURITY_HEADERS } : { ...SECURITY_HEADERS, 'x-request-id': requestId };
}

// Generated ids: a random per-process prefix and a counter. Unique across instances and restarts, and
// about a tenth of the cost of a UUID, which showed up in the heartbeat profile.
const ID_PREFIX = `${randomBytes(8).toString('hex')}-`;
let idCounter = 0;

/** The caller's `x-request-id` when it is a plain token, else a new unique id; echoed on every response. */
export function requestId(headers: IncomingHttpHeaders): string {
  const given = headers['x-request-id'];
  return typeof given === 'string' && /^[\w.-]{1,128}$/.test(given) ? given : ID_PREFIX + (++idCounter).toString(36);
}

/** Probes must answer however busy a client is. */
const UNLIMITED = new Set(['/healthz', '/readyz']);

/**
 * CORS and rate limits for every route registered after this (base headers are set by request-hooks.ts).
 * - CORS: only when `CK_CORS_ORIGINS` lists origins (`*` allows any; credentials are bearer tokens, never cookies).
 * - Rate limit: `CK_RATE_LIMIT` requests per `CK_RATE_LIMIT_WINDOW` s per verified key or token user,
 *   per IP otherwise; checked before the body is read, so a flood costs no parsing. In memory: per instance.
 */
export async function registerSecurity(
  app: FastifyInstance,
  config: Config,
  verify: (bearer: string) => Promise<Principal | undefined>,
): Promise<void> {
  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: config.corsOrigins.includes('*') ? '*' : config.corsOrigins,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type', 'last-event-id', 'x-request-id'],
      exposedHeaders: ['retry-after', 'x-request-id', 'x-next-cursor', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'],
      maxAge: 600,
    });
  }

  if (config.rateLimit > 0) {
    // Only a credential that verifies gets its own bucket: made-up keys cannot dodge the per-IP limit
    // or drain someone else's.
    const bucket = async (req: FastifyRequest) => {
      const bearer = bearerOf(req.headers.authorization);
      const p = bearer ? await verify(bearer) : undefined;
      if (!p) return `ip:${req.ip}`;
      return p.kind === 'token' ? `user:${p.userId}` : `key:${p.id}`;
    };
    await app.register(rateLimit, {
      global: true,
      hook: 'onRequest',
      max: config.rateLimit,
      timeWindow: config.rateLimitWindowSec * 1000,
      keyGenerator: bucket,
      allowList: (req) => UNLIMITED.has(req.routeOptions.url ?? ''),
      errorResponseBuilder: (_req, ctx) =>
        ERRORS.rateLimited(`rate limit of ${ctx.max} requests per ${config.rateLimitWindowSec} s exceeded; retry in ${ctx.after}`,
          Math.max(1, Math.ceil(ctx.ttl / 1000))),
    });
  }
}
