import type { Queryable } from '../db/types.js';
import { iso } from '../time.js';

/** Rows read per query: a ten-year history streams in bounded memory. */
export const EXPORT_PAGE = 5000;

type Json = Record<string, unknown>;

/**
 * One section of the export: a JSON array written page by page, keyset-paged (the last row's key
 * continues the next page). `sql` takes $1 = user, then the key of the last row (NULLs first), then the
 * page size.
 */
async function* pages(
  db: Queryable, user: string, name: string, sql: string, toJson: (row: Json) => Json, keys: number,
) {
  yield `,${JSON.stringify(name)}:[`;
  let after: unknown[] = new Array(keys).fill(null);
  let first = true;
  for (;;) {
    const { rows } = await db.query<Json>(sql, [user, ...after, EXPORT_PAGE]);
    let text = '';
    for (const r of rows) {
      text += (first ? '' : ',') + JSON.stringify(toJson(r));
      first = false;
    }
    if (text) yield text;
    if (rows.length < EXPORT_PAGE) break;
    const last = rows[rows.length - 1]!;
    after = keys === 1 ? [last.k1] : [last.k1, last.k2];
  }
  yield ']';
}

const isoOrNull = (ms: unknown) => (ms === null || ms === undefined ? null : iso(ms as number));

/**
 * Everything ck holds about a user as one JSON document (GET /users/:user_id/export), written section by
 * section: `head` (what the route already read: settings, status, sessions) first, then every history
 * in time order. Each section is read as of its own queries (no long transaction: PGlite has one
 * connection); a write during the export may or may not appear.
 */
export async function* exportUser(db: Queryable, user: string, head: Json): AsyncGenerator<string> {
  // $1 the user, $2.. the last row's key (`params`, NULL on the first page), then the page size.
  // The key goes back as text (k1, k2): exact to the microsecond, whatever the columns show.
  const q = (cols: string, from: string, key: string, params: string) => {
    const k = key.split(',').map((c) => `t.${c.trim()}`);
    return `SELECT ${cols}, ${k.map((c, i) => `${c}::text AS k${i + 1}`).join(', ')} FROM ${from} t
             WHERE t.user_id = $1 AND (${params.split(',')[0]} IS NULL OR (${k.join(', ')}) > (${params}))
             ORDER BY ${k.join(', ')} LIMIT $${k.length + 2}`;
  };

  yield JSON.stringify({ user_id: user, ...head }).slice(0, -1);
  yield* pages(db, user, 'manual_presence',
    q('id, state, ck_ms(set_at) AS set_at, ck_ms(until) AS until', 'manual_presence', 'set_at, id', '$2::timestamptz, $3::bigint'),
    (r) => ({ state: r.state, set_at: iso(r.set_at as number), until: isoOrNull(r.until) }), 2);
  yield* pages(db, user, 'session_history',
    q('id::text, session_id, state, ck_ms(ts) AS ts, source, content, ck_ms(received_at) AS received_at', 'session_checkpoints', 'ts, id', '$2::timestamptz, $3::bigint'),
    (r) => ({ id: r.id, session_id: r.session_id, state: r.state, timestamp: iso(r.ts as number), source: r.source, content: r.content, received_at: iso(r.received_at as number) }), 2);
  yield* pages(db, user, 'timeline',
    q('id::text, state, ck_ms(ts) AS ts, source, session_id, content, ck_ms(received_at) AS received_at', 'checkpoints', 'ts, id', '$2::timestamptz, $3::bigint'),
    (r) => ({ id: r.id, state: r.state, timestamp: iso(r.ts as number), source: r.source, session_id: r.session_id, content: r.content, received_at: iso(r.received_at as number) }), 2);
  yield* pages(db, user, 'summaries',
    q(`day::text AS day, state, seconds::float8 AS seconds`, 'state_summaries', 'day, state', '$2::date, $3::text'),
    (r) => ({ date: r.day, state: r.state, seconds: r.seconds }), 2);
  yield* pages(db, user, 'webhook_deliveries',
    q(`id, webhook_id::text, event_id::text, status, attempts, last_status, last_error, ck_ms(delivered_at) AS delivered_at,
       ck_ms(created_at) AS created_at, event`, 'webhook_deliveries', 'id', '$2::bigint'),
    (r) => ({ webhook_id: r.webhook_id, event_id: r.event_id, status: r.status, attempts: r.attempts, last_status: r.last_status,
      last_error: r.last_error, delivered_at: isoOrNull(r.delivered_at), created_at: iso(r.created_at as number), event: r.event }), 1);
  yield* pages(db, user, 'tokens',
    q(`jti, scopes, ck_ms(issued_at) AS issued_at, ck_ms(expires_at) AS expires_at,
       (SELECT ck_ms(r.revoked_at) FROM token_revocations r WHERE r.jti = t.jti) AS revoked_at`, 'tokens', 'jti', '$2::text'),
    (r) => ({ jti: r.jti, scopes: r.scopes, issued_at: iso(r.issued_at as number), expires_at: iso(r.expires_at as number), revoked_at: isoOrNull(r.revoked_at) }), 1);
  yield '}';
}
