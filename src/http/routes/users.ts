import { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import { sessionsOf, statusOf } from '../../liveness/status.js';
import { REPLICA_LAG_HEADER } from '../../db/replica.js';
import { eraseUser } from '../../users/erase.js';
import { exportUser } from '../../users/export.js';
import { endSession, setManual } from '../../users/presence.js';
import { getSettings, setTimezone, UnknownTimezoneError, userExists } from '../../users/settings.js';
import { iso, parseInstant } from '../../time.js';
import { ERRORS } from '../errors.js';
import { errorResponses, Instant, SessionId, StateName, Status, UserId } from '../schemas.js';
import { sendJson } from '../send-json.js';
import { statusJson } from '../status-view.js';
import type { App } from '../types.js';

const Settings = Type.Object({ user_id: Type.String(), timezone: Type.String() });
const Session = Type.Object({
  session_id: Type.String(),
  state: Type.String(),
  state_since: Type.String({ format: 'date-time' }),
  last_heartbeat: Type.String({ format: 'date-time' }),
  last_active: Type.String({ format: 'date-time' }),
  client: Type.Union([Type.String(), Type.Null()]),
});
const userParam = { in: 'params', field: 'user_id' } as const;

export default async function users(app: App) {
  const { db, clock, timeouts, states, coalescer, events, reads } = app.ck;
  // A session as stored, with a heartbeat this instance acknowledged and has not flushed yet (it never
  // changes state: only heartbeats that change nothing are buffered).
  const sessionJson = (user: string, s: Awaited<ReturnType<typeof sessionsOf>>[number]) => {
    const p = coalescer.pendingOf(user, s.session_id);
    return {
      ...s, state_since: iso(s.state_since),
      last_heartbeat: iso(Math.max(s.last_heartbeat, p.at)), last_active: iso(Math.max(s.last_active, p.activeAt)),
    };
  };
  // A write outside group commit: the cache and the stream learn of it at once.
  const changed = (user: string) => {
    coalescer.forget(user);
    events.wake();
  };

  app.put('/users/:user_id', {
    config: { scope: 'ingest', user: userParam },
    schema: {
      summary: "Set a user's settings (timezone: the default zone of their summaries)",
      params: Type.Object({ user_id: UserId }),
      body: Type.Object({ timezone: Type.String({ minLength: 1, maxLength: 64, description: 'IANA zone, e.g. Europe/Berlin' }) }),
      response: { 200: Settings, ...errorResponses(400, 401, 403, 415, 422, 503) },
    },
  }, async (req) => {
    const { user_id } = req.params as { user_id: string };
    const { timezone } = req.body as { timezone: string };
    return setTimezone(db, user_id, timezone).catch((err) => {
      throw err instanceof UnknownTimezoneError ? ERRORS.invalid('body', '/timezone', 'is not an IANA timezone name (e.g. Europe/Berlin)') : err;
    });
  });

  app.get('/users/:user_id', {
    config: { scope: 'read', user: userParam },
    schema: {
      summary: "A user's settings",
      params: Type.Object({ user_id: UserId }),
      response: { 200: Settings, ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req) => {
    const { user_id } = req.params as { user_id: string };
    const settings = await getSettings(db, user_id);
    if (!settings) throw ERRORS.userNotFound(user_id);
    return settings;
  });

  app.delete('/users/:user_id', {
    config: { scope: 'admin' },
    schema: {
      summary: 'Erase a user: every row about them in every table, in one transaction (no event is sent about it)',
      params: Type.Object({ user_id: UserId }),
      response: { 204: Type.Null(), ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req, reply) => {
    const { user_id } = req.params as { user_id: string };
    if (!(await eraseUser(db, user_id))) throw ERRORS.userNotFound(user_id);
    changed(user_id);
    await app.ck.revocations.poll(); // their tokens, revoked by the erasure
    return reply.status(204).send();
  });

  app.get('/users/:user_id/export', {
    config: { scope: 'read', user: userParam },
    schema: {
      summary: 'Everything ck holds about a user, as one JSON document, streamed (an admin key, or the user\'s own token)',
      params: Type.Object({ user_id: UserId }),
      response: { 200: Type.Object({ user_id: Type.String() }, { additionalProperties: true }), ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req, reply) => {
    const { user_id } = req.params as { user_id: string };
    // Other users' data may be read with a read key, but a person's whole record goes to an admin or to them.
    if (req.principal?.kind === 'key' && !req.principal.scopes.includes('admin')) {
      throw ERRORS.forbidden('exporting a user needs an admin key or the user\'s own token');
    }
    const now = clock.now();
    // An export is a heavy read: the replica's when there is one close enough (docs/scaling.md).
    const { db: from, lagMs } = await reads.pick();
    if (lagMs !== undefined) reply.header(REPLICA_LAG_HEADER, lagMs);
    const settings = await getSettings(from, user_id);
    if (!settings) throw ERRORS.userNotFound(user_id);
    const [status] = await statusOf(from, [user_id], (u) => coalescer.pendingFor(u), now, timeouts);
    const sessions = await sessionsOf(from, user_id, now, timeouts);
    const head = {
      exported_at: iso(now),
      settings: { timezone: settings.timezone },
      status: status ? JSON.parse(statusJson(status)) : null,
      sessions: sessions.map((s) => sessionJson(user_id, s)),
    };
    const name = `ck-export-${user_id.replace(/[^\w.-]/g, '_')}.json`;
    return reply
      .type('application/json; charset=utf-8')
      .header('content-disposition', `attachment; filename="${name}"`)
      .send(Readable.from(exportUser(from, user_id, head), { objectMode: false, highWaterMark: 256 * 1024 }));
  });

  app.get('/users/:user_id/sessions', {
    config: { scope: 'read', user: userParam },
    schema: {
      summary: "A user's alive sessions, each in its state now",
      params: Type.Object({ user_id: UserId }),
      response: { 200: Type.Object({ user_id: Type.String(), sessions: Type.Array(Session) }), ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req) => {
    const { user_id } = req.params as { user_id: string };
    if (!(await userExists(db, user_id))) throw ERRORS.userNotFound(user_id);
    const list = await sessionsOf(db, user_id, clock.now(), timeouts);
    return {
      user_id,
      sessions: list.map((s) => sessionJson(user_id, s)),
    };
  });

  app.delete('/users/:user_id/sessions/:session_id', {
    config: { scope: 'ingest', user: userParam },
    schema: {
      summary: 'End a session now (a closed tab, a signed-out device)',
      params: Type.Object({ user_id: UserId, session_id: SessionId }),
      response: { 204: Type.Null(), ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req, reply) => {
    const { user_id, session_id } = req.params as { user_id: string; session_id: string };
    if (!(await endSession(db, user_id, session_id, clock.now(), timeouts))) throw ERRORS.notFound(`no alive session ${JSON.stringify(session_id)} of this user`);
    changed(user_id);
    return reply.status(204).send();
  });

  app.put('/users/:user_id/presence', {
    config: { scope: 'ingest', user: userParam },
    schema: {
      summary: "Set a user's manual presence (it holds while a session is alive), optionally until a time",
      params: Type.Object({ user_id: UserId }),
      body: Type.Object({ state: StateName, until: Type.Optional(Instant) }),
      response: { 200: Status, ...errorResponses(400, 401, 403, 415, 422, 503) },
    },
  }, async (req, reply) => {
    const { user_id } = req.params as { user_id: string };
    const body = req.body as { state: string; until?: string | number };
    if (!(await states.get(body.state))) throw ERRORS.unknownState('body', '/state', states.list().map((s) => s.name));
    const now = clock.now();
    let until: number | undefined;
    if (body.until !== undefined) {
      until = parseInstant(body.until);
      if (until === undefined) throw ERRORS.invalid('body', '/until', 'must be an RFC 3339 timestamp or integer epoch milliseconds');
      if (until <= now) throw ERRORS.invalid('body', '/until', 'must be in the future');
    }
    await setManual(db, user_id, body.state, until, now, timeouts);
    changed(user_id);
    const [status] = await statusOf(db, [user_id], (u) => coalescer.pendingFor(u), now, timeouts);
    return sendJson(reply, statusJson(status!));
  });

  app.delete('/users/:user_id/presence', {
    config: { scope: 'ingest', user: userParam },
    schema: {
      summary: "Clear a user's manual presence",
      params: Type.Object({ user_id: UserId }),
      response: { 204: Type.Null(), ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req, reply) => {
    const { user_id } = req.params as { user_id: string };
    if (!(await userExists(db, user_id))) throw ERRORS.userNotFound(user_id);
    await setManual(db, user_id, undefined, undefined, clock.now(), timeouts);
    changed(user_id);
    return reply.status(204).send();
  });
}
