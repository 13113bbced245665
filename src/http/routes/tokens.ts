import { Type } from '@sinclair/typebox';
import { listTokens, recordToken, revokeToken } from '../../auth/token-store.js';
import { issueToken, MAX_TOKEN_TTL_SEC, TOKEN_SCOPES, type TokenScope } from '../../auth/tokens.js';
import { ERRORS } from '../errors.js';
import { errorResponses, UserId } from '../schemas.js';
import type { App } from '../types.js';

const DEFAULT_TTL_SEC = 3600;
const TokenScopeSchema = Type.Unsafe<TokenScope>({ type: 'string', enum: [...TOKEN_SCOPES] });
const Jti = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$', description: 'The token id (its jti claim)' });

export default async function tokens(app: App) {
  const { tokenSecret, clock, db } = app.ck;

  app.post('/tokens', {
    config: { scope: 'admin' },
    schema: {
      summary: 'Issue a per-user token (HS256 JWT) that may act for one user only',
      body: Type.Object({
        user_id: UserId,
        scopes: Type.Array(TokenScopeSchema, { minItems: 1, uniqueItems: true, description: 'ingest and/or read; never admin' }),
        ttl: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TOKEN_TTL_SEC, default: DEFAULT_TTL_SEC, description: 'Lifetime in seconds' })),
      }),
      response: {
        201: Type.Object({
          token: Type.String(),
          jti: Type.String(),
          user_id: Type.String(),
          scopes: Type.Array(Type.String()),
          expires_at: Type.String({ format: 'date-time' }),
        }),
        ...errorResponses(400, 401, 403, 413, 415, 422, 503),
      },
    },
  }, async (req, reply) => {
    const body = req.body as { user_id: string; scopes: TokenScope[]; ttl?: number };
    const now = clock.now();
    const issued = await issueToken(tokenSecret, { userId: body.user_id, scopes: body.scopes, ttlSec: body.ttl ?? DEFAULT_TTL_SEC, nowMs: now });
    await recordToken(db, issued, now);
    return reply.status(201).send(issued);
  });

  app.get('/tokens', {
    config: { scope: 'admin' },
    schema: {
      summary: "A user's tokens that have not expired (ids, scopes, expiry, revocation; never the tokens)",
      querystring: Type.Object({ user_id: UserId }),
      response: {
        200: Type.Object({
          tokens: Type.Array(Type.Object({
            jti: Type.String(),
            user_id: Type.String(),
            scopes: Type.Array(Type.String()),
            issued_at: Type.String({ format: 'date-time' }),
            expires_at: Type.String({ format: 'date-time' }),
            revoked_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
          })),
        }),
        ...errorResponses(401, 403, 422, 503),
      },
    },
  }, async (req) => ({ tokens: await listTokens(db, (req.query as { user_id: string }).user_id) }));

  app.delete('/tokens/:jti', {
    config: { scope: 'admin' },
    schema: {
      summary: 'Revoke a per-user token: refused by every instance within a second',
      params: Type.Object({ jti: Jti }),
      response: { 204: Type.Null(), ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req, reply) => {
    const { jti } = req.params as { jti: string };
    if (!(await revokeToken(db, jti))) throw ERRORS.notFound(`no unexpired token "${jti}"`);
    await app.ck.revocations.poll(); // this instance at once; the others within a poll
    return reply.status(204).send();
  });
}
