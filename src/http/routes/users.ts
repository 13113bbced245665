import { Type } from '@sinclair/typebox';
import { getSettings, setTimezone, UnknownTimezoneError } from '../../users/settings.js';
import { ERRORS } from '../errors.js';
import { errorResponses, UserId } from '../schemas.js';
import type { App } from '../types.js';

const Settings = Type.Object({ user_id: Type.String(), timezone: Type.String() });
const userParam = { in: 'params', field: 'user_id' } as const;

export default async function users(app: App) {
  const { db } = app.ck;

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
}
