import { Type } from '@sinclair/typebox';
import { issueToken, MAX_TOKEN_TTL_SEC, TOKEN_SCOPES, type TokenScope } from '../../auth/tokens.js';
import { errorResponses, UserId } from '../schemas.js';
import type { App } from '../types.js';

const DEFAULT_TTL_SEC = 3600;
const TokenScopeSchema = Type.Unsafe<TokenScope>({ type: 'string', enum: [...TOKEN_SCOPES] });

export default async function tokens(app: App) {
  const { tokenSecret, clock } = app.ck;

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
          user_id: Type.String(),
          scopes: Type.Array(Type.String()),
          expires_at: Type.String({ format: 'date-time' }),
        }),
        ...errorResponses(400, 401, 403, 413, 415, 422, 503),
      },
    },
  }, async (req, reply) => {
    const body = req.body as { user_id: string; scopes: TokenScope[]; ttl?: number };
    const issued = await issueToken(tokenSecret, {
      userId: body.user_id, scopes: body.scopes, ttlSec: body.ttl ?? DEFAULT_TTL_SEC, nowMs: clock.now(),
    });
    return reply.status(201).send(issued);
  });
}
