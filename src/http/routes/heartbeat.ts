import { Type } from '@sinclair/typebox';
import type { Context } from '../../context.js';
import type { Liveness } from '../../liveness/heartbeats.js';
import type { Status } from '../../liveness/status.js';
import { ckReplayLaneBody, type LaneRoute } from '../heartbeat-lane.js';
import { errorResponses, Status as StatusSchema, UserId } from '../schemas.js';
import { sendJson } from '../send-json.js';
import { statusJson, statusListJson } from '../status-view.js';
import type { App } from '../types.js';
import { compileBody } from '../validation.js';

const HeartbeatBody = Type.Object({ user_id: UserId });
type HeartbeatBody = { user_id: string };

/** Most ids a batch takes; its body limit fits them at 128 characters each, escaped (README). */
export const MAX_BATCH = 10_000;
export const BATCH_BODY_LIMIT = 8 * 1024 * 1024;

const withOnline = (ck: Context, l: Liveness): Status => ({ ...l, online: ck.states.isOnline(l.state) });

/**
 * `POST /heartbeat` as the heartbeat lane needs it: the route's path, scope, compiled body schema and its
 * answer from memory. The route below is built from the same definition.
 */
export function heartbeatRoute(ck: Context): LaneRoute<HeartbeatBody> {
  return {
    method: 'POST',
    url: '/heartbeat',
    scope: 'ingest',
    valid: compileBody<HeartbeatBody>(HeartbeatBody),
    fromMemory: (body) => {
      const l = ck.coalescer.beatKnown(body.user_id);
      return l && withOnline(ck, l);
    },
  };
}

export default async function heartbeat(app: App) {
  const ck = app.ck;
  const route = heartbeatRoute(ck);

  app.route({
    method: 'POST',
    url: route.url,
    config: { scope: route.scope, user: { in: 'body', field: 'user_id' } },
    schema: {
      summary: 'Record that a user is still here',
      body: HeartbeatBody,
      response: { 200: StatusSchema, ...errorResponses(400, 401, 403, 413, 415, 422, 503) },
    },
    preParsing: ckReplayLaneBody,
    handler: (req, reply) => {
      const body = req.body as HeartbeatBody;
      // Answered from memory without a promise when it can be; a write otherwise.
      const known = route.fromMemory(body);
      if (known) return sendJson(reply, statusJson(known));
      return ck.coalescer.beat([body.user_id]).then(([l]) => sendJson(reply, statusJson(withOnline(ck, l!))));
    },
  });

  app.post('/heartbeats', {
    config: { scope: 'ingest', user: { in: 'body', field: 'user_ids' } },
    bodyLimit: BATCH_BODY_LIMIT,
    schema: {
      summary: 'Heartbeats for many users at once (gateways)',
      body: Type.Object({ user_ids: Type.Array(UserId, { minItems: 1, maxItems: MAX_BATCH }) }),
      response: { 200: Type.Object({ results: Type.Array(StatusSchema) }), ...errorResponses(400, 401, 403, 413, 415, 422, 503) },
    },
  }, async (req, reply) => {
    const { user_ids } = req.body as { user_ids: string[] };
    const results = (await ck.coalescer.beat(user_ids)).map((l) => withOnline(ck, l));
    return sendJson(reply, `{"results":${statusListJson(results)}}`);
  });
}
