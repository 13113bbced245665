import { Type } from '@sinclair/typebox';
import type { App } from '../../app.js';
import { recordCheckpoint } from '../../checkpoints/record.js';
import { SQLSTATE, sqlState } from '../../db/types.js';
import { iso, parseInstant } from '../../time.js';
import { requireOwnUser } from '../auth.js';
import { ERRORS } from '../errors.js';
import { errorResponses, Instant, UserId } from '../schemas.js';
import timeline from './timeline.js';

const MAX_CONTENT_BYTES = 16 * 1024;
const MAX_FUTURE_MS = 60_000;

const Checkpoint = Type.Object({
  id: Type.String(),
  user_id: Type.String(),
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
  state: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
});

export default async function checkpoints(app: App) {
  const { db, clock, config, states, coalescer } = app.ck;

  app.post('/checkpoints', {
    config: { scope: 'ingest' },
    schema: {
      summary: 'Record a state change (written only when the state differs)',
      body: Type.Object({
        user_id: UserId,
        state: Type.String({ minLength: 1, maxLength: 64 }),
        timestamp: Type.Optional(Instant),
        content: Type.Optional(Type.Object({}, { additionalProperties: true })),
      }),
      response: { 201: Checkpoint, 200: Unchanged, ...errorResponses(400, 401, 403, 413, 415, 422, 503) },
    },
  }, async (req, reply) => {
    const body = req.body as { user_id: string; state: string; timestamp?: string | number; content?: object };
    requireOwnUser(req, [body.user_id]);
    const now = clock.now();
    let ts = now;
    if (body.timestamp !== undefined) {
      const parsed = parseInstant(body.timestamp);
      if (parsed === undefined) throw ERRORS.invalid('body', '/timestamp', 'must be an RFC 3339 timestamp or integer epoch milliseconds');
      if (parsed > now + MAX_FUTURE_MS) throw ERRORS.invalid('body', '/timestamp', 'is more than 60 s in the future');
      if (parsed < now - config.maxBackfillSec * 1000) {
        throw ERRORS.invalid('body', '/timestamp', `is older than CK_MAX_BACKFILL (${config.maxBackfillSec} s)`);
      }
      ts = parsed;
    }
    if (body.content !== undefined) {
      const json = JSON.stringify(body.content);
      if (Buffer.byteLength(json) > MAX_CONTENT_BYTES) throw ERRORS.invalid('body', '/content', 'must be at most 16 KiB of JSON');
      // jsonb cannot hold U+0000; an escaped NUL is \u0000 after an even number of backslashes.
      if (/(?<!\\)(?:\\\\)*\\u0000/.test(json)) throw ERRORS.invalid('body', '/content', 'must not contain NUL (\\u0000) characters');
    }
    const unknownState = () =>
      ERRORS.invalid('body', '/state', `is not a registered state; valid: ${states.list().map((s) => s.name).join(', ')}`);
    if (!(await states.get(body.state))) throw unknownState();

    const row = await recordCheckpoint(db, {
      userId: body.user_id, state: body.state, ts, content: body.content, now, timeoutSec: config.heartbeatTimeoutSec,
    }).catch((err) => {
      // Removed between our check and the write (or registered on another instance only just now).
      throw sqlState(err) === SQLSTATE.foreignKeyViolation ? unknownState() : err;
    });
    if (!row.changed) {
      return reply.status(200).send({ changed: false, user_id: row.user_id, state: row.state, timestamp: iso(row.ts) });
    }
    // The cached state may be stale now (a back-fill may not be the latest): re-learn on next heartbeat.
    coalescer.forget(row.user_id);
    return reply.status(201).send({
      id: row.id!, user_id: row.user_id, state: row.state, previous_state: row.previous_state,
      timestamp: iso(row.ts), content: row.content, source: row.source, received_at: iso(row.received_at), changed: true,
    });
  });

  await app.register(timeline);
}
