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

/**
 * Where a route names the user(s) it acts on, for the per-user token rule (`ownUserHook`).
 * `absent`: what a token gets when the field is missing: `own` fills in its user ("all users" narrowed
 * to one), `deny` refuses (a listing a token may not see).
 */
export interface UserField {
  in: 'body' | 'params' | 'querystring';
  /** A field holding a user id or an array of them; `list.key` names `key` in each object of array `list`. */
  field: string;
  /** More fields that name users (all must name the token's own). */
  also?: string[];
  absent?: 'own' | 'deny';
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** Scope a route needs (`any`: any valid key or token); routes without one are public. */
    scope?: Scope | 'any';
    /** The user(s) the route acts on; a per-user token may name only its own. */
    user?: UserField;
    /** Only API keys: per-user tokens are refused whatever their scopes (service-wide data). */
    keysOnly?: boolean;
  }
}

/** Admin keys and tokens may do everything. */
export const hasScope = (p: { scopes: readonly Scope[] }, scope: Scope) => p.scopes.includes('admin') || p.scopes.includes(scope);

/** The credential in `Authorization: Bearer <key or token>`, if the header has that form. */
export function bearerOf(header: string | undefined): string | undefined {
  return header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
}

/** Why a principal may not use a route that needs `scope`, or undefined when it may. */
export function refusal(principal: Principal | undefined, scope: Scope | 'any', keysOnly = false) {
  if (!principal) return ERRORS.unauthorized('the API key or token is unknown, revoked or expired');
  if (keysOnly && principal.kind === 'token') return ERRORS.forbidden('this route needs an API key; per-user tokens cannot use it');
  if (scope !== 'any' && !hasScope(principal, scope)) return ERRORS.forbidden(`this ${principal.kind} lacks the "${scope}" scope`);
  return undefined;
}

/**
 * preHandler: 401 without a valid key or token, 403 without the route's scope. `cached` answers from
 * memory for credentials verified recently, so the hot path neither awaits nor allocates a promise.
 */
export function authHook(
  verify: (bearer: string) => Promise<Principal | undefined>,
  cached: (bearer: string) => Principal | undefined,
) {
  return function ckAuthenticate(req: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) {
    const { scope, keysOnly } = req.routeOptions.config;
    if (!scope) return done();
    const bearer = bearerOf(req.headers.authorization);
    if (!bearer) return done(ERRORS.unauthorized());
    const admit = (p: Principal | undefined) => {
      const refused = refusal(p, scope, keysOnly);
      if (refused) return done(refused);
      req.principal = p;
      done();
    };
    const hit = cached(bearer);
    if (hit) return admit(hit);
    verify(bearer).then(admit, done);
  };
}

/**
 * preHandler after authentication: the per-user token rule, enforced here and nowhere else. A token acts
 * for its own user only; naming anyone else is the same 403 whether that user exists or not, so a token
 * learns nothing about other users. Routes declare where they name users (`config.user`).
 */
export function ckOwnUser(req: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) {
  const own = req.principal?.userId;
  const spec = req.routeOptions.config.user;
  if (own === undefined || !spec) return done();
  const part = (spec.in === 'querystring' ? req.query : req[spec.in]) as Record<string, unknown> | undefined;
  const named = [spec.field, ...(spec.also ?? [])].flatMap((f) => usersIn(part, f));
  if (named.length === 0) {
    if (spec.absent !== 'own') return done(ERRORS.otherUser());
    // Narrow "every user" to the token's own (arrays stay arrays, as the schema has them).
    (part as Record<string, unknown>)[spec.field] = routeWantsArray(req, spec) ? [own] : own;
    return done();
  }
  done(named.every((u) => u === own) ? undefined : ERRORS.otherUser());
}

/** The user ids a request part names in `field` (`list.key`: in each object of an array). */
function usersIn(part: Record<string, unknown> | undefined, field: string): unknown[] {
  const [name, key] = field.split('.') as [string, string | undefined];
  const value = part?.[name];
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return key === undefined ? list : list.map((x) => (x as Record<string, unknown>)?.[key]);
}

function routeWantsArray(req: FastifyRequest, spec: UserField): boolean {
  const schema = req.routeOptions.schema?.[spec.in] as { properties?: Record<string, { type?: string }> } | undefined;
  return schema?.properties?.[spec.field]?.type === 'array';
}
