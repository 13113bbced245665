import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Type } from '@sinclair/typebox';
import { positionOf } from '../../events/event.js';
import type { Sink } from '../../events/stream.js';
import { ERRORS } from '../errors.js';
import { errorResponses, UserId } from '../schemas.js';
import type { App } from '../types.js';

/**
 * A response as a stream sink. Bytes pile up in the socket (the response hands them over at once and,
 * once ended, lets go of the socket), so the socket is what is measured, waited on and destroyed.
 */
function socketSink(res: ServerResponse, socket: Socket): Sink {
  return {
    write: (chunk) => void res.write(chunk),
    get buffered() {
      return socket.writableLength;
    },
    drained: () => new Promise<void>((resolve) => {
      if (socket.writableLength === 0 || socket.destroyed) return resolve();
      const done = () => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    }),
    end: () => void res.end(),
    destroy: () => void socket.destroy(),
    get closed() {
      return socket.destroyed || res.writableEnded;
    },
  };
}

export default async function events(app: App) {
  const { streams, db } = app.ck;
  // Streams end on shutdown so app.close() does not wait for clients to hang up.
  app.addHook('preClose', (done) => {
    streams.endAll();
    done();
  });

  app.get('/events', {
    // A per-user token streams its own user.
    config: { scope: 'read', user: { in: 'querystring', field: 'user_id', absent: 'own' } },
    schema: {
      summary: 'Server-Sent Events: one event per state change (Last-Event-ID replays what was missed)',
      querystring: Type.Object({
        user_id: Type.Optional(Type.Array(UserId, { maxItems: 1000 })),
        last_event_id: Type.Optional(Type.String({ pattern: '^\\d{1,19}$' })),
        sessions: Type.Boolean({ default: false, description: 'Also stream `event: session` for each session change' }),
      }),
      headers: Type.Object({ 'last-event-id': Type.Optional(Type.String({ pattern: '^\\d{0,19}$' })) }),
      response: errorResponses(401, 403, 422, 503),
    },
  }, async (req, reply) => {
    const q = req.query as { user_id?: string[]; last_event_id?: string; sessions: boolean };
    const lastId = (req.headers['last-event-id'] as string | undefined) || q.last_event_id;
    if (lastId !== undefined && BigInt(lastId) > 9223372036854775807n) {
      throw ERRORS.invalid(req.headers['last-event-id'] ? 'headers' : 'querystring', '/last_event_id', 'is larger than any event id');
    }
    const from = lastId === undefined ? undefined : await positionOf(db, lastId);
    reply.hijack();
    const res = reply.raw;
    const socket = res.socket!;
    res.writeHead(200, {
      ...(reply.getHeaders() as OutgoingHttpHeaders), // CORS, security and rate-limit headers from earlier hooks
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\n: connected\n\n`);
    const sink = socketSink(res, socket);
    socket.on('close', () => streams.closeSink(sink));
    streams.open(sink, q.user_id, from, q.sessions).catch((err) => {
      req.log.warn({ err }, 'event replay failed');
      sink.write(`event: error\ndata: ${JSON.stringify({ reason: 'the database is unavailable; reconnect with Last-Event-ID' })}\n\n`);
      sink.end();
    });
  });
}
