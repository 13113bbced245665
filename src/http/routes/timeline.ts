import { Type } from '@sinclair/typebox';
import type { App } from '../../app.js';
import { timelinePage } from '../../checkpoints/timeline.js';
import { getSessions } from '../../liveness/sql.js';
import { iso, parseInstant } from '../../time.js';
import { requireOwnUser } from '../auth.js';
import { ERRORS } from '../errors.js';
import { decodeCursor, encodeCursor, queryInstant } from '../query.js';
import { Cursor, errorResponses, UserId } from '../schemas.js';

const Entry = Type.Object({
  id: Type.String(),
  state: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
  duration_ms: Type.Integer(),
  open: Type.Boolean(),
  content: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
  source: Type.String(),
  received_at: Type.String({ format: 'date-time' }),
});

const MAX_BIGINT = 9223372036854775807n;

const isCursor = (v: unknown[]): v is [number, string] =>
  v.length === 2 && parseInstant(v[0]) !== undefined && typeof v[1] === 'string' && /^\d{1,19}$/.test(v[1] as string) && BigInt(v[1] as string) <= MAX_BIGINT;

export default async function timeline(app: App) {
  const { db, clock, config } = app.ck;

  app.get('/checkpoints', {
    config: { scope: 'read' },
    schema: {
      summary: "A user's timeline: checkpoints in event-time order with durations",
      querystring: Type.Object({
        user_id: UserId,
        from: Type.Optional(Type.String()),
        to: Type.Optional(Type.String()),
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        cursor: Type.Optional(Cursor),
      }),
      response: {
        200: Type.Object({ user_id: Type.String(), checkpoints: Type.Array(Entry), next_cursor: Type.Union([Type.String(), Type.Null()]) }),
        ...errorResponses(401, 403, 404, 422, 503),
      },
    },
  }, async (req) => {
    const q = req.query as { user_id: string; from?: string; to?: string; limit: number; cursor?: string };
    requireOwnUser(req, [q.user_id]);
    const from = queryInstant('from', q.from);
    const to = queryInstant('to', q.to);
    if (from !== undefined && to !== undefined && to < from) throw ERRORS.invalid('querystring', '/to', 'must not be before from');
    const after = decodeCursor(q.cursor, isCursor);
    const now = clock.now();
    const [session] = await getSessions(db, [q.user_id]);
    if (!session) throw ERRORS.notFound(`no user "${q.user_id}"`);
    const rows = await timelinePage(db, q.user_id, from, after, q.limit);

    // The open interval ends now, or where the heartbeat ran out if that is earlier.
    const expiry = session.last_heartbeat + config.heartbeatTimeoutSec * 1000;
    const openEnd = (state: string) => (state !== 'Offline' && expiry < now ? Math.max(expiry, 0) : now);
    const out = [];
    let nextCursor: string | null = null;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      if (to !== undefined && r.ts >= to) break;
      if (i === q.limit) {
        nextCursor = encodeCursor([rows[i - 1]!.ts, rows[i - 1]!.id]);
        break;
      }
      const open = r.next_ts === null;
      const end = open ? Math.max(openEnd(r.state), r.ts) : r.next_ts!;
      out.push({
        id: r.id, state: r.state, timestamp: iso(r.ts), duration_ms: end - r.ts, open,
        content: r.content, source: r.source, received_at: iso(r.received_at),
      });
    }
    return { user_id: q.user_id, checkpoints: out, next_cursor: nextCursor };
  });
}
