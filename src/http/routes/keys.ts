import { Type } from '@sinclair/typebox';

import { createKey, listKeys, revokeKey, SCOPES } from '../../auth/keys.js';
import { ERRORS } from '../errors.js';
import { errorResponses, Text } from '../schemas.js';
import type { App } from '../types.js';

const Key = Type.Object({
  id: Type.String(),
  name: Type.String(),
  scopes: Type.Array(Type.String()),
  created_at: Type.String({ format: 'date-time' }),
});

export default async function keys(app: App) {
  const { db, keys: verifier } = app.ck;
  const Scopes = Type.Array(Type.Union(SCOPES.map((s) => Type.Literal(s))), { minItems: 1, uniqueItems: true });

  app.post('/keys', {
    config: { scope: 'admin' },
    schema: {
      summary: 'Create an API key (the secret is returned once)',
      body: Type.Object({ name: Text(200), scopes: Scopes }),
      response: { 201: Type.Intersect([Key, Type.Object({ key: Type.String() })]), ...errorResponses(400, 401, 403, 415, 422, 503) },
    },
  }, async (req, reply) => {
    const body = req.body as { name: string; scopes: (typeof SCOPES)[number][] };
    return reply.status(201).send(await createKey(db, body.name, body.scopes));
  });

  app.get('/keys', {
    config: { scope: 'admin' },
    schema: { summary: 'List active keys (never their secrets)', response: { 200: Type.Object({ keys: Type.Array(Key) }), ...errorResponses(401, 403, 503) } },
  }, async () => ({ keys: await listKeys(db) }));

  app.delete('/keys/:id', {
    config: { scope: 'admin' },
    schema: {
      summary: 'Revoke a key',
      params: Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{12}$' }) }),
      response: { 204: Type.Null(), ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req, reply) => {
    const { id } = req.params as { id: string };
    if (!(await revokeKey(db, id))) throw ERRORS.notFound(`no active key "${id}"`);
    verifier.forget(id);
    return reply.status(204).send();
  });
}
