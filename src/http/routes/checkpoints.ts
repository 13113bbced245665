import { Type } from '@sinclair/typebox';
import { contentProblem, timestampProblem } from '../../checkpoints/rules.js';
import { timelinePage } from '../../checkpoints/timeline.js';
import { REPLICA_LAG_HEADER } from '../../db/replica.js';
import { iso, parseInstant } from '../../time.js';
import { ERRORS } from '../errors.js';
import { decodeCursor, encodeCursor, queryInstant } from '../query.js';
import { DEFAULT_SESSION } from '../../liveness/coalescer.js';
import { Cursor, errorResponses, Instant, SessionId, Text, UserId } from '../schemas.js';
import type { App } from '../types.js';

const Checkpoint = Type.Object({
  id: Type.String(),
  user_id: Type.String(),
  session_id: Type.String(),
  state: Type.String(),
  previous_state: Type.Union([Type.String(), Type.Null()]),
  timestamp: Type.String({ format: 'date-time' }),
  content: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
  source: Type.String(),
  received_at: Type.String({ format: 'date-time' }),
  changed: Type.Literal(true),
});

const Unchanged = Type.Object({
  changed: Type.Literal(false),
  user_id: Type.String(),
  session_id: Type.String(),
  state: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
});

const Entry = Type.Object({
  id: Type.String(),
  state: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
  duration_ms: Type.Integer(),
  open: Type.Boolean(),
  content: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
  source: Type.String({ description: 'client, heartbeat, timeout, idle, manual or session_end' }),
  session_id: Type.Union([Type.String(), Type.Null()], { description: 'The session whose write caused it' }),
  received_at: Type.String({ format: 'date-time' }),
});

const MAX_BIGINT = 9223372036854775807n;
const isCursor = (v: unknown[]): v is [number, string] =>
  v.length === 2 && parseInstant(v[0]) !== undefined && typeof v[1] === 'string' && /^\d{1,19}$/.test(v[1] as string)
  && BigInt(v[1] as string) <= MAX_BIGINT;

/** POST /checkpoints (a state change) and GET /checkpoints (a user's timeline). */
export default async function checkpoints(app: App) {
  const { clock, config, states, checkpoints: writer, timeouts, reads } = app.ck;

  app.post('/checkpoints', {
    config: { scope: 'ingest', user: { in: 'body', field: 'user_id' } },
    schema: {
      summary: "Set a session's state (written only when it differs)",
      body: Type.Object({
        user_id: UserId,
        state: Type.String({ minLength: 1, maxLength: 64 }),
        timestamp: Type.Optional(Instant),
        content: Type.Optional(Type.Object({}, { additionalProperties: true })),
        session_id: Type.Optional(SessionId),
        client: Type.Optional(Text(128, { description: 'What sends it, free text, e.g. ios/3.2' })),
        active: Type.Optional(Type.Boolean({ description: 'Whether the user was active; default true' })),
      }),
      response: { 201: Checkpoint, 200: Unchanged, ...errorResponses(400, 401, 403, 413, 415, 422, 503) },
    },
  }, async (req, reply) => {
    const body = req.body as {
      user_id: string; state: string; timestamp?: string | number; content?: object; session_id?: string; client?: string; active?: boolean;
    };
    const now = clock.now();
    let ts = now;
    if (body.timestamp !== undefined) {
      const parsed = parseInstant(body.timestamp);
      if (parsed === undefined) throw ERRORS.invalid('body', '/timestamp', 'must be an RFC 3339 timestamp or integer epoch milliseconds');
      const problem = timestampProblem(parsed, now, config.maxBackfillSec);
      if (problem) throw ERRORS.invalid('body', '/timestamp', problem);
      ts = parsed;
    }
    const contentIssue = body.content === undefined ? undefined : contentProblem(body.content);
    if (contentIssue) throw ERRORS.invalid('body', '/content', contentIssue);
    const unknownState = () => ERRORS.unknownState('body', '/state', states.list().map((s) => s.name));
    if (!(await states.get(body.state))) throw unknownState();

    // Group-committed with whatever else arrives meanwhile; answered once durable.
    const result = await writer.record({
      userId: body.user_id, sessionId: body.session_id ?? DEFAULT_SESSION, state: body.state, ts, content: body.content,
      client: body.client, active: body.active,
    });
    // Registered on another instance only just now, and not yet seen here: the batch checked it.
    if (result.status === 'unknown_state') throw unknownState();
    if (result.status === 'unchanged') {
      return reply.status(200).send({ changed: false, user_id: result.userId, session_id: result.sessionId, state: result.state, timestamp: iso(result.ts) });
    }
    const row = result.row;
    return reply.status(201).send({
      id: row.id, user_id: row.user_id, session_id: row.session_id, state: row.state, previous_state: row.previous_state,
      timestamp: iso(row.ts), content: row.content, source: row.source, received_at: iso(row.received_at), changed: true,
    });
  });

  app.get('/checkpoints', {
    config: { scope: 'read', user: { in: 'querystring', field: 'user_id' } },
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
  }, async (req, reply) => {
    const q = req.query as { user_id: string; from?: string; to?: string; limit: number; cursor?: string };
    const from = queryInstant('from', q.from);
    const to = queryInstant('to', q.to);
    if (from !== undefined && to !== undefined && to < from) throw ERRORS.invalid('querystring', '/to', 'must not be before from');
    const after = decodeCursor(q.cursor, isCursor);
    const { result: rows, lagMs } = await reads.run((d) => timelinePage(d, q.user_id, from, after, q.limit, clock.now(), timeouts));
    if (lagMs !== undefined) reply.header(REPLICA_LAG_HEADER, lagMs);
    if (!rows) throw ERRORS.userNotFound(q.user_id);
    const out = [];
    let nextCursor: string | null = null;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      if (to !== undefined && r.ts >= to) break;
      if (i === q.limit) {
        nextCursor = encodeCursor([rows[i - 1]!.ts, rows[i - 1]!.id]);
        break;
      }
      out.push({
        id: r.id, state: r.state, timestamp: iso(r.ts), duration_ms: r.end_ts - r.ts, open: r.open,
        content: r.content, source: r.source, session_id: r.session_id, received_at: iso(r.received_at),
      });
    }
    return { user_id: q.user_id, checkpoints: out, next_cursor: nextCursor };
  });
}
