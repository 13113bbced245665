import { Type } from '@sinclair/typebox';
import { SQLSTATE, sqlState } from '../../db/types.js';
import { ERRORS } from '../errors.js';
import { errorResponses, StateName } from '../schemas.js';
import type { App } from '../types.js';

const StateType = Type.Object({
  name: Type.String(),
  online: Type.Boolean(),
  builtin: Type.Boolean(),
  color: Type.Union([Type.String(), Type.Null()]),
  priority: Type.Integer({ description: "Precedence between a user's sessions: the highest wins" }),
});

export default async function states(app: App) {
  const registry = app.ck.states;

  app.get('/states', {
    config: { scope: 'read' },
    schema: { summary: 'The state registry', response: { 200: Type.Object({ states: Type.Array(StateType) }), ...errorResponses(401, 403, 503) } },
  }, async () => ({ states: await registry.load() }));

  app.post('/states', {
    config: { scope: 'admin' },
    schema: {
      summary: 'Register a state type',
      body: Type.Object({
        name: StateName,
        online: Type.Boolean(),
        color: Type.Optional(Type.String({ pattern: '^#[0-9a-fA-F]{6}$' })),
        priority: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000, description: "Default: Online's" })),
      }),
      response: { 201: StateType, ...errorResponses(400, 401, 403, 409, 415, 422, 503) },
    },
  }, async (req, reply) => {
    const body = req.body as { name: string; online: boolean; color?: string; priority?: number };
    try {
      return reply.status(201).send(await registry.add(body));
    } catch (err) {
      if (sqlState(err) === SQLSTATE.uniqueViolation) throw ERRORS.conflict(`state "${body.name}" already exists`);
      throw err;
    }
  });
}
