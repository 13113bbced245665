import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Scope } from '../auth/keys.js';
import { ERRORS } from './errors.js';

export interface Principal {
  kind: 'key' | 'token';
  /** Key id, or the token's subject user. */
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

const hasScope = (p: Principal, scope: Scope) => p.scopes.includes('admin') || p.scopes.includes(scope);

/** preHandler: 401 without a valid key or token, 403 without the route's scope. */
export function authHook(verify: (bearer: string) => Promise<Principal | undefined>) {
  return async (req: FastifyRequest, _reply: FastifyReply) => {
    const scope = req.routeOptions.config.scope;
    if (!scope) return;
    const header = req.headers.authorization;
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) throw ERRORS.unauthorized();
    const principal = await verify(m[1]!);
    if (!principal) throw ERRORS.unauthorized('the API key or token is unknown, revoked or expired');
    if (!hasScope(principal, scope)) {
      throw ERRORS.forbidden(`this key lacks the "${scope}" scope`);
    }
    req.principal = principal;
  };
}

/** Per-user tokens may only write for their own user. */
export function requireOwnUser(req: FastifyRequest, userIds: string[]): void {
  const own = req.principal?.userId;
  if (own === undefined) return;
  const other = userIds.find((u) => u !== own);
  if (other !== undefined) throw ERRORS.forbidden(`this token may only act for user "${own}"`);
}
