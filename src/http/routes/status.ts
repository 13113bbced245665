import { Type } from '@sinclair/typebox';
import type { App } from '../../app.js';
import { getSessions, sessionsInState, type Status as StatusView, toStatus } from '../../liveness/sql.js';
import { ERRORS } from '../errors.js';
import { decodeCursor, encodeCursor } from '../query.js';
import { Cursor, errorResponses, StateName, Status, UserId } from '../schemas.js';

const isCursor = (v: unknown[]): v is [string] => v.length === 1 && typeof v[0] === 'string';

export default async function status(app: App) {
  const { db, clock, config, coalescer } = app.ck;

  /** Session rows as seen from this instance: a buffered (not yet flushed) heartbeat counts. */
  const view = (rows: Awaited<ReturnType<typeof getSessions>>): StatusView[] => {
    const now = clock.now();
    return rows.map((r) => {
      const pending = coalescer.pendingFor(r.user_id);
      const lhb = pending !== undefined && pending > r.last_heartbeat ? pending : r.last_heartbeat;
      return toStatus({ ...r, last_heartbeat: lhb }, now, config.heartbeatTimeoutSec);
    });
  };

  /** Per-user tokens read only their own user. */
  const ownOnly = (own: string | undefined, users: string[]) => (own === undefined ? users : users.filter((u) => u === own));

  app.get('/status/:user_id', {
    config: { scope: 'read' },
    schema: {
      summary: "A user's current state",
      params: Type.Object({ user_id: UserId }),
      response: { 200: Status, ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req) => {
    const { user_id } = req.params as { user_id: string };
    const rows = await getSessions(db, ownOnly(req.principal?.userId, [user_id]));
    if (rows.length === 0) throw ERRORS.notFound(`no user "${user_id}"`);
    return view(rows)[0]!;
  });

  app.get('/status', {
    config: { scope: 'read' },
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
  }, async (req) => {
    const q = req.query as { user_id?: string[]; state?: string; limit: number; cursor?: string };
    const own = req.principal?.userId;
    if (q.user_id && q.state) throw ERRORS.invalid('querystring', '/state', 'cannot be combined with user_id');
    if (q.user_id) {
      const rows = await getSessions(db, ownOnly(own, [...new Set(q.user_id)]));
      const byId = new Map(view(rows).map((s) => [s.user_id, s]));
      return { users: q.user_id.filter((u, i) => q.user_id!.indexOf(u) === i && byId.has(u)).map((u) => byId.get(u)!) };
    }
    if (!q.state) throw ERRORS.invalid('querystring', '/user_id', 'give user_id (repeatable) or state');
    if (own !== undefined) throw ERRORS.forbidden('a per-user token cannot list users by state');
    if (!(await app.ck.states.get(q.state))) throw ERRORS.invalid('querystring', '/state', 'is not a registered state');
    const after = decodeCursor(q.cursor, isCursor)?.[0];
    const rows = await sessionsInState(db, q.state, after, q.limit, clock.now(), config.heartbeatTimeoutSec);
    const users = view(rows).filter((s) => s.state === q.state);
    const last = rows[rows.length - 1];
    return { users, next_cursor: rows.length === q.limit && last ? encodeCursor([last.user_id]) : null };
  });
}

