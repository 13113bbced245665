import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Scope } from '../auth/keys.js';
import { ERRORS } from './errors.js';

export interface Principal {
  kind: 'key' | 'token';
  /** Key id, or the token id (jti). */
  id: string;
  scopes: Scope[];
  /** For per-user tokens: the only user this principal may act on. */
  userId?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** Scope a route needs; routes without one are public. */
    scope?: Scope;
  }
}

/** Admin keys and tokens may do everything. */
export const hasScope = (p: { scopes: Scope[] }, scope: Scope) => p.scopes.includes('admin') || p.scopes.includes(scope);

/** The credential in `Authorization: Bearer <key or token>`, if the header has that form. */
export function bearerOf(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  return header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
}

/**
 * preHandler: 401 without a valid key or token, 403 without the route's scope. `cached` answers from
 * memory for credentials verified recently, so the hot path neither awaits nor allocates a promise.
 */
export function authHook(
  verify: (bearer: string) => Promise<Principal | undefined>,
  cached: (bearer: string) => Principal | undefined = () => undefined,
) {
  const admit = (req: FastifyRequest, scope: Scope, principal: Principal | undefined) => {
    if (!principal) throw ERRORS.unauthorized('the API key or token is unknown, revoked or expired');
    if (!hasScope(principal, scope)) {
      throw ERRORS.forbidden(`this ${principal.kind} lacks the "${scope}" scope`);
    }
    req.principal = principal;
  };
  return (req: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
    const scope = req.routeOptions.config.scope;
    if (!scope) return done();
    const bearer = bearerOf(req);
    if (!bearer) return done(ERRORS.unauthorized());
    const hit = cached(bearer);
    if (hit) {
      try {
        admit(req, scope, hit);
      } catch (err) {
        return done(err as Error);
      }
      return done();
    }
    verify(bearer).then((p) => admit(req, scope, p)).then(() => done(), done);
  };
}

/** Per-user tokens may only write for their own user. */
export function requireOwnUser(req: FastifyRequest, userIds: string[]): void {
  const own = req.principal?.userId;
  if (own === undefined) return;
  const other = userIds.find((u) => u !== own);
  if (other !== undefined) throw ERRORS.forbidden(`this token may only act for user "${own}"`);
}

/**
 * The users a read may cover. A per-user token reads only its own user: asking for anyone else is a
 * 403, and asking for nobody in particular (`requested` undefined: "all users") means just that user.
 * Keys read what they ask for (undefined stays "all").
 * @example const users = readableUsers(req, q.user_id); // string[] | undefined
 */
export function readableUsers(req: FastifyRequest, requested: string[] | undefined): string[] | undefined {
  const own = req.principal?.userId;
  if (own === undefined) return requested;
  requireOwnUser(req, requested ?? []);
  return [own];
}
