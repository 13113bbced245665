import type { OutgoingHttpHeaders } from 'node:http';
import { Type } from '@sinclair/typebox';
import { eventsAfter, type StateEvent } from '../../events/event.js';
import { ERRORS } from '../errors.js';
import { errorResponses, UserId } from '../schemas.js';
import type { App } from '../types.js';

/** A client whose unsent output passes this is cut off (bounded server memory). */
export const SSE_MAX_BUFFER = 1024 * 1024;

export default async function events(app: App) {
  const { db, events: hub, config, metrics } = app.ck;
  // Open streams, ended on shutdown so app.close() does not wait for clients to hang up.
  const open = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of open) end();
  });

  app.get('/events', {
    // A per-user token streams its own user.
    config: { scope: 'read', user: { in: 'querystring', field: 'user_id', absent: 'own' } },
    schema: {
      summary: 'Server-Sent Events: one event per state change (Last-Event-ID replays what was missed)',
      querystring: Type.Object({
        user_id: Type.Optional(Type.Array(UserId, { maxItems: 1000 })),
        last_event_id: Type.Optional(Type.String({ pattern: '^\\d{1,19}$' })),
      }),
      headers: Type.Object({ 'last-event-id': Type.Optional(Type.String({ pattern: '^\\d{0,19}$' })) }),
      response: errorResponses(401, 403, 422, 503),
    },
  }, async (req, reply) => {
    const q = req.query as { user_id?: string[]; last_event_id?: string };
    const users = q.user_id;
    const filter = users ? new Set(users) : undefined;
    const lastId = (req.headers['last-event-id'] as string | undefined) || q.last_event_id;
    if (lastId !== undefined && BigInt(lastId) > 9223372036854775807n) {
      throw ERRORS.invalid(req.headers['last-event-id'] ? 'headers' : 'querystring', '/last_event_id', 'is larger than any event id');
    }

    // Subscribe before replaying so nothing falls between the two; live events wait in `held`. The hub
    // may deliver an event late, even after the replay went out: an id the client already has (up to
    // Last-Event-ID) or the replay sent is never sent again.
    const known = lastId === undefined ? undefined : BigInt(lastId);
    let held: StateEvent[] | undefined = [];
    let replayed: Set<string> | undefined = new Set();
    const res = reply.raw;
    let closed = false;
    const send = (e: StateEvent) => {
      if (closed || (filter && !filter.has(e.user_id))) return;
      if (held) return void held.push(e);
      if ((known !== undefined && BigInt(e.id) <= known) || replayed?.has(e.id)) return;
      res.write(`id: ${e.id}\nevent: state\ndata: ${JSON.stringify(e)}\n\n`);
      if (res.writableLength > SSE_MAX_BUFFER) {
        res.write(`event: error\ndata: ${JSON.stringify({ reason: 'client too slow: buffer limit exceeded; reconnect with Last-Event-ID' })}\n\n`);
        end();
      }
    };
    const unsubscribe = hub.subscribe(send);
    const keepAlive = setInterval(() => !closed && res.write(': keep-alive\n\n'), config.sseKeepAliveSec * 1000);
    // Late deliveries come within moments of the replay; then the replayed ids are dropped.
    const forgetReplay = setTimeout(() => (replayed = undefined), 60_000).unref();
    const end = () => {
      if (closed) return;
      closed = true;
      open.delete(end);
      clearInterval(keepAlive);
      clearTimeout(forgetReplay);
      unsubscribe();
      metrics.sseClients.dec();
      res.end();
    };
    req.raw.on('close', end);
    open.add(end);
    metrics.sseClients.inc();

    let replay: StateEvent[] = [];
    try {
      if (lastId !== undefined) {
        // Bounded replay; a client further behind reconnects again from the last id it got.
        replay = await eventsAfter(db, lastId, users, 10_000);
      }
    } catch (err) {
      end();
      throw err;
    }
    reply.hijack();
    res.writeHead(200, {
      ...(reply.getHeaders() as OutgoingHttpHeaders), // CORS, security and rate-limit headers from earlier hooks
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      'x-request-id': req.id,
    });
    res.write(`retry: 2000\n: connected\n\n`);
    const pending = held;
    held = undefined;
    for (const e of replay) {
      send(e);
      replayed?.add(e.id);
    }
    for (const e of pending) send(e);
  });
}
