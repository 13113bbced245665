import { Type } from '@sinclair/typebox';
import type { Context } from '../../context.js';
import { DEFAULT_SESSION } from '../../liveness/coalescer.js';
import type { Liveness } from '../../liveness/heartbeats.js';
import type { Status } from '../../liveness/status.js';
import { ERRORS } from '../errors.js';
import { ckReplayLaneBody, type LaneRoute } from '../heartbeat-lane.js';
import { errorResponses, SessionId, Status as StatusSchema, Text, UserId } from '../schemas.js';
import { sendJson } from '../send-json.js';
import { statusJson, statusListJson } from '../status-view.js';
import type { App } from '../types.js';
import { compileBody } from '../validation.js';

const Active = Type.Boolean({ description: 'Whether the user was active (input) since the last one; default true. Idle decay counts from the last active one' });
const Client = Text(128, { description: 'What sends it, free text, e.g. ios/3.2 (recorded when the session starts)' });

const HeartbeatBody = Type.Object({
  user_id: UserId,
  session_id: Type.Optional(SessionId),
  client: Type.Optional(Client),
  active: Type.Optional(Active),
});
type HeartbeatBody = { user_id: string; session_id?: string; client?: string; active?: boolean };

/** Most heartbeats a batch takes; its body limit fits them at 128 characters each, escaped (README). */
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
      const l = ck.coalescer.beatKnown(body.user_id, body.session_id ?? DEFAULT_SESSION, body.active ?? true);
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
      summary: "Record that a user's session is still here",
      body: HeartbeatBody,
      response: { 200: StatusSchema, ...errorResponses(400, 401, 403, 413, 415, 422, 503) },
    },
    preParsing: ckReplayLaneBody,
    handler: (req, reply) => {
      const body = req.body as HeartbeatBody;
      // Answered from memory without a promise when it can be; a lookup or a write otherwise.
      const known = route.fromMemory(body);
      if (known) return sendJson(reply, statusJson(known));
      const beat = { user: body.user_id, session: body.session_id ?? DEFAULT_SESSION, active: body.active ?? true, client: body.client };
      return ck.coalescer.beat([beat]).then(([l]) => sendJson(reply, statusJson(withOnline(ck, l!))));
    },
  });

  app.post('/heartbeats', {
    config: { scope: 'ingest', user: { in: 'body', field: 'user_ids', also: ['sessions.user_id'] } },
    bodyLimit: BATCH_BODY_LIMIT,
    schema: {
      summary: 'Heartbeats for many users or sessions at once (gateways)',
      body: Type.Object({
        user_ids: Type.Optional(Type.Array(UserId, { maxItems: MAX_BATCH, description: "Each user's default session" })),
        sessions: Type.Optional(Type.Array(Type.Object({ user_id: UserId, session_id: SessionId, client: Type.Optional(Client), active: Type.Optional(Active) }), { maxItems: MAX_BATCH })),
      }),
      response: { 200: Type.Object({ results: Type.Array(StatusSchema) }), ...errorResponses(400, 401, 403, 413, 415, 422, 503) },
    },
  }, async (req, reply) => {
    const body = req.body as { user_ids?: string[]; sessions?: { user_id: string; session_id: string; client?: string; active?: boolean }[] };
    const beats = [
      ...(body.user_ids ?? []).map((user) => ({ user, session: DEFAULT_SESSION, active: true })),
      ...(body.sessions ?? []).map((s) => ({ user: s.user_id, session: s.session_id, active: s.active ?? true, client: s.client })),
    ];
    if (beats.length === 0) throw ERRORS.invalid('body', '/user_ids', 'give user_ids or sessions (at least one heartbeat)');
    if (beats.length > MAX_BATCH) throw ERRORS.invalid('body', '/sessions', `at most ${MAX_BATCH} heartbeats in all`);
    const results = (await ck.coalescer.beat(beats)).map((l) => withOnline(ck, l));
    return sendJson(reply, `{"results":${statusListJson(results)}}`);
  });
}
