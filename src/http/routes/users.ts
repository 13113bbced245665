import { Type } from '@sinclair/typebox';
import type { App } from '../../app.js';
import { SQLSTATE, sqlState } from '../../db/types.js';
import { knownZones } from '../../summaries/sql.js';
import { requireOwnUser } from '../auth.js';
import { ERRORS } from '../errors.js';
import { errorResponses, UserId } from '../schemas.js';

const Settings = Type.Object({ user_id: Type.String(), timezone: Type.String() });

export default async function users(app: App) {
  const { db } = app.ck;

  app.put('/users/:user_id', {
    config: { scope: 'ingest' },
    schema: {
      summary: "Set a user's settings (timezone: the default zone of their summaries)",
      params: Type.Object({ user_id: UserId }),
      body: Type.Object({ timezone: Type.String({ minLength: 1, maxLength: 64, description: 'IANA zone, e.g. Europe/Berlin' }) }),
      response: { 200: Settings, ...errorResponses(400, 401, 403, 415, 422, 503) },
    },
  }, async (req) => {
    const { user_id } = req.params as { user_id: string };
    const { timezone } = req.body as { timezone: string };
    requireOwnUser(req, [user_id]);
    const invalid = () => ERRORS.invalid('body', '/timezone', 'is not an IANA timezone name (e.g. Europe/Berlin)');
    if (!(await knownZones(db)).has(timezone)) throw invalid();
    await db.query('SELECT ck_set_timezone($1, $2)', [user_id, timezone]).catch((err) => {
      throw sqlState(err) === SQLSTATE.invalidParameter ? invalid() : err;
    });
    return { user_id, timezone };
  });

  app.get('/users/:user_id', {
    config: { scope: 'read' },
    schema: {
      summary: "A user's settings",
      params: Type.Object({ user_id: UserId }),
      response: { 200: Settings, ...errorResponses(401, 403, 404, 422, 503) },
    },
  }, async (req) => {
    const { user_id } = req.params as { user_id: string };
    const own = req.principal?.userId;
    if (own !== undefined && own !== user_id) throw ERRORS.forbidden(`this token may only read user "${own}"`);
    const { rows } = await db.query<{ timezone: string }>(
      `SELECT coalesce((SELECT timezone FROM user_settings WHERE user_id = $1), 'UTC') AS timezone
        WHERE EXISTS (SELECT 1 FROM user_sessions WHERE user_id = $1) OR EXISTS (SELECT 1 FROM user_settings WHERE user_id = $1)`,
      [user_id],
    );
    if (rows.length === 0) throw ERRORS.notFound(`no user "${user_id}"`);
    return { user_id, timezone: rows[0]!.timezone };
  });
}
