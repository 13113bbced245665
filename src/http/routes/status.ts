import { Type } from '@sinclair/typebox';
import { REPLICA_LAG_HEADER } from '../../db/replica.js';
import { statusOf, usersInState } from '../../liveness/status.js';
import { ERRORS } from '../errors.js';
import { decodeCursor, encodeCursor } from '../query.js';
import { Cursor, errorResponses, StateName, Status, UserId } from '../schemas.js';
import { sendJson } from '../send-json.js';
import { statusJson, statusListJson } from '../status-view.js';
import type { App } from '../types.js';

const isCursor = (v: unknown[]): v is [string] => v.length === 1 && typeof v[0] === 'string';

export default async function status(app: App) {
  const { db, clock, coalescer, states, timeouts, reads } = app.ck;
  // A heartbeat this instance acknowledged and has not flushed yet counts as stored.
  const pending = (user: string) => coalescer.pendingFor(user);
  const statuses = (users: string[]) => statusOf(db, users, pending, clock.now(), timeouts);

  app.get('/status/:user_id', {
    config: { scope: 'read', user: { in: 'params', field: 'user_id' } },
    schema: {
      summary: "A user's current state",
      params: Type.Object({ user_id: UserId }),
      response: { 200: Status, ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req, reply) => {
    const { user_id } = req.params as { user_id: string };
    const [s] = await statuses([user_id]);
    if (!s) throw ERRORS.userNotFound(user_id);
    return sendJson(reply, statusJson(s));
  });

  app.get('/status', {
    // Listing by state names no user: a per-user token is refused it.
    config: { scope: 'read', user: { in: 'querystring', field: 'user_id', absent: 'deny' } },
    schema: {
      summary: 'Several users by id, or a page of users in one state',
      querystring: Type.Object({
        user_id: Type.Optional(Type.Array(UserId, { maxItems: 1000 })),
        state: Type.Optional(StateName),
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        cursor: Type.Optional(Cursor),
      }),
      response: {
        200: Type.Object({ users: Type.Array(Status), next_cursor: Type.Optional(Type.Union([Type.String(), Type.Null()])) }),
        ...errorResponses(401, 403, 422, 503),
      },
    },
  }, async (req, reply) => {
    const q = req.query as { user_id?: string[]; state?: string; limit: number; cursor?: string };
    if (q.user_id && q.state) throw ERRORS.invalid('querystring', '/state', 'cannot be combined with user_id');
    if (q.user_id) {
      const wanted = [...new Set(q.user_id)];
      const byId = new Map((await statuses(wanted)).map((s) => [s.user_id, s]));
      return sendJson(reply, `{"users":${statusListJson(wanted.flatMap((u) => byId.get(u) ?? []))}}`);
    }
    if (!q.state) throw ERRORS.invalid('querystring', '/user_id', 'give user_id (repeatable) or state');
    if (!(await states.get(q.state))) throw ERRORS.unknownState('querystring', '/state', states.list().map((s) => s.name));
    const after = decodeCursor(q.cursor, isCursor)?.[0];
    // A listing by state is a heavy read: the replica's when there is one close enough.
    const { result: [ids, list], lagMs } = await reads.run(async (d) => {
      const page = await usersInState(d, q.state!, after, q.limit, clock.now(), timeouts);
      return [page, await statusOf(d, page, pending, clock.now(), timeouts)] as const;
    });
    if (lagMs !== undefined) reply.header(REPLICA_LAG_HEADER, lagMs);
    const byId = new Map(list.map((s) => [s.user_id, s]));
    // A heartbeat buffered here may have revived a user the stored rows call Offline.
    const users = ids.flatMap((u) => { const s = byId.get(u); return s && s.state === q.state ? [s] : []; });
    const last = ids[ids.length - 1];
    const next = ids.length === q.limit && last ? JSON.stringify(encodeCursor([last])) : 'null';
    return sendJson(reply, `{"users":${statusListJson(users)},"next_cursor":${next}}`);
  });
}
