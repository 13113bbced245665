import { Type } from '@sinclair/typebox';
import type { App } from '../../app.js';
import { requireOwnUser } from '../auth.js';
import { replayedBody } from '../heartbeat-lane.js';
import { sendJson } from '../send-json.js';
import { errorResponses, Status, UserId } from '../schemas.js';
import { statusView } from '../status-view.js';

export default async function heartbeat(app: App) {
  const { coalescer, states } = app.ck;
  const view = statusView(states);

  app.post('/heartbeat', {
    config: { scope: 'ingest' },
    schema: {
      summary: 'Record that a user is still here',
      body: Type.Object({ user_id: UserId }),
      response: { 200: Status, ...errorResponses(400, 401, 403, 413, 415, 422, 503) },
    },
    // A request the heartbeat lane read but left to Fastify (src/http/heartbeat-lane.ts) gets its body back.
    preParsing: (req, _reply, payload, done) => done(null, replayedBody(req.raw) ?? payload),
  }, (req) => {
    const { user_id } = req.body as { user_id: string };
    requireOwnUser(req, [user_id]);
    // Answered from memory without a promise when it can be; a write otherwise.
    const known = coalescer.beatKnown(user_id);
    if (known) return view(known);
    return coalescer.beat([user_id]).then(([r]) => view(r!));
  });

  app.post('/heartbeats', {
    config: { scope: 'ingest' },
    schema: {
      summary: 'Heartbeats for many users at once (gateways)',
      body: Type.Object({ user_ids: Type.Array(UserId, { minItems: 1, maxItems: 10_000 }) }),
      response: { 200: Type.Object({ results: Type.Array(Status) }), ...errorResponses(400, 401, 403, 413, 415, 422, 503) },
    },
  }, async (req, reply) => {
    const { user_ids } = req.body as { user_ids: string[] };
    requireOwnUser(req, user_ids);
    return sendJson(reply, { results: (await coalescer.beat(user_ids)).map(view) });
  });
}
