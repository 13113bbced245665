import { Type } from '@sinclair/typebox';
import type { App } from '../../app.js';
import type { HeartbeatResult } from '../../liveness/coalescer.js';
import { iso } from '../../time.js';
import { requireOwnUser } from '../auth.js';
import { sendJson } from '../send-json.js';
import { errorResponses, Status, UserId } from '../schemas.js';

export default async function heartbeat(app: App) {
  const { coalescer, states } = app.ck;
  // Heartbeats answered in the same millisecond share last_heartbeat: format it once.
  let lastMs = Number.NaN;
  let lastIso = '';
  const isoOf = (ms: number) => (ms === lastMs ? lastIso : (lastIso = iso((lastMs = ms))));
  const view = (r: HeartbeatResult) => ({
    user_id: r.user_id,
    state: r.state,
    online: states.isOnline(r.state),
    state_since: r.known ? (r.known.stateSinceIso ??= iso(r.state_since)) : iso(r.state_since),
    last_heartbeat: isoOf(r.last_heartbeat),
  });

  app.post('/heartbeat', {
    config: { scope: 'ingest' },
    schema: {
      summary: 'Record that a user is still here',
      body: Type.Object({ user_id: UserId }),
      response: { 200: Status, ...errorResponses(400, 401, 403, 413, 415, 422, 503) },
    },
  }, async (req) => {
    const { user_id } = req.body as { user_id: string };
    requireOwnUser(req, [user_id]);
    const [r] = await coalescer.beat([user_id]);
    return view(r!);
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
