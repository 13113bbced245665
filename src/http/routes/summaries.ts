import { Readable } from 'node:stream';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Type } from '@sinclair/typebox';
import { REPLICA_LAG_HEADER } from '../../db/replica.js';
import { type SummaryRequest, summarize, summarizeInChunks, userPage } from '../../summaries/query.js';
import { CSV_HEADER, csvRows, type UserSummary } from '../../summaries/report.js';
import { userExists } from '../../users/settings.js';
import { isTimezone } from '../../users/timezones.js';
import { ERRORS } from '../errors.js';
import { decodeCursor, encodeCursor, queryDate } from '../query.js';
import { sendJson } from '../send-json.js';
import { Cursor, errorResponses, UserId } from '../schemas.js';
import type { App } from '../types.js';

const MAX_DAYS = 366;
const DateStr = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$', description: 'local date YYYY-MM-DD' });
const Seconds = Type.Record(Type.String(), Type.Number());
const Day = Type.Object({ date: Type.String(), seconds: Seconds, total_seconds: Type.Number() });
const UserSummarySchema = Type.Object({
  user_id: Type.String(), tz: Type.String(), from: Type.String(), to: Type.String(), day_start: Type.String(),
  days: Type.Array(Day), totals: Seconds, total_seconds: Type.Number(),
});
const isCursor = (v: unknown[]): v is [string] => v.length === 1 && typeof v[0] === 'string';
const CSV = 'text/csv; charset=utf-8';

interface Query {
  user_id?: string;
  from: string;
  to: string;
  tz?: string;
  day_start: string;
  format: 'json' | 'csv';
  limit: number;
  cursor?: string;
}

export default async function summaries(app: App) {
  const { db, clock, timeouts, reads } = app.ck;

  async function parse(q: Query): Promise<SummaryRequest> {
    const from = queryDate('from', q.from);
    const to = queryDate('to', q.to);
    const days = (to - from) / 86_400_000 + 1;
    if (days < 1) throw ERRORS.invalid('querystring', '/to', 'must not be before from');
    if (days > MAX_DAYS) throw ERRORS.invalid('querystring', '/to', `the range may span at most ${MAX_DAYS} days`);
    if (q.tz !== undefined && !(await isTimezone(db, q.tz))) {
      throw ERRORS.invalid('querystring', '/tz', 'is not an IANA timezone name (e.g. Europe/Berlin)');
    }
    return { from: q.from, to: q.to, tz: q.tz, dayStart: q.day_start, nowMs: clock.now(), timeouts };
  }

  /**
   * A team page as a stream: built and written a chunk of users at a time, each chunk only once the
   * client has taken the last (stream back-pressure), with the event loop free between chunks. Memory and
   * event-loop time per step stay small however large the report (docs/performance.md). A failure after
   * the first byte aborts the connection: the client sees a truncated body, never a wrong one.
   */
  async function* teamBody(chunks: AsyncGenerator<UserSummary[]>, q: Query, next: string | null): AsyncGenerator<string> {
    if (q.format === 'csv') yield CSV_HEADER;
    else yield '{"users":[';
    let first = true;
    for await (const list of chunks) {
      if (q.format === 'csv') yield csvRows(list);
      else {
        // Not the schema serializer: fast-json-stringify is several times slower on the state-keyed records.
        let text = '';
        for (const summary of list) {
          text += (first ? '' : ',') + JSON.stringify(summary);
          first = false;
        }
        yield text;
      }
      await yieldToLoop();
    }
    if (q.format !== 'csv') yield `],"next_cursor":${JSON.stringify(next)}}`;
  }

  app.get('/summaries', {
    // A per-user token asking for "everyone" gets its own user.
    config: { scope: 'read', user: { in: 'querystring', field: 'user_id', absent: 'own' } },
    schema: {
      summary: 'Time per state per local day, for one user or (paged) all users',
      querystring: Type.Object({
        user_id: Type.Optional(UserId),
        from: DateStr,
        to: DateStr,
        tz: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
        day_start: Type.String({ pattern: '^([01]\\d|2[0-3]):[0-5]\\d$', default: '00:00' }),
        format: Type.Union([Type.Literal('json'), Type.Literal('csv')], { default: 'json' }),
        limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 100 }),
        cursor: Type.Optional(Cursor),
      }),
      response: {
        200: Type.Union([UserSummarySchema, Type.Object({ users: Type.Array(UserSummarySchema), next_cursor: Type.Union([Type.String(), Type.Null()]) })]),
        ...errorResponses(401, 403, 404, 422, 503),
      },
    },
  }, async (req, reply) => {
    const q = req.query as Query;
    const request = await parse(q);
    // Heavy reads go to the replica when there is one close enough (docs/scaling.md).
    const target = await reads.pick();
    if (target.lagMs !== undefined) reply.header(REPLICA_LAG_HEADER, target.lagMs);
    const from = target.db;
    if (q.user_id !== undefined) {
      if (!(await userExists(from, q.user_id))) throw ERRORS.userNotFound(q.user_id);
      const [summary] = await summarize(from, [q.user_id], request);
      if (q.format === 'csv') return reply.type(CSV).send(CSV_HEADER + csvRows([summary!]));
      return sendJson(reply, JSON.stringify(summary));
    }
    const users = await userPage(from, decodeCursor(q.cursor, isCursor)?.[0], q.limit);
    const next = users.length === q.limit ? encodeCursor([users[users.length - 1]]) : null;
    if (next && q.format === 'csv') reply.header('x-next-cursor', next);
    const body = Readable.from(teamBody(summarizeInChunks(from, users, request), q, next), { objectMode: false, highWaterMark: 256 * 1024 });
    return reply.type(q.format === 'csv' ? CSV : 'application/json; charset=utf-8').send(body);
  });
}
