import type { Queryable } from '../db/types.js';

// Names in PostgreSQL's zone list that are not IANA zones a user means: the server's own setting, tzdata
// internals, and the leap-second and POSIX-rule copies of the database.
const NOT_ZONES = new Set(['localtime', 'posixrules', 'Factory']);
const NOT_ZONE_PREFIX = /^(posix|right)\//;

let zones: Promise<Set<string>> | undefined;

/** IANA zone names the database knows (loaded once), without its non-zone entries. */
export function knownZones(db: Queryable): Promise<Set<string>> {
  zones ??= db.query<{ name: string }>('SELECT name FROM pg_timezone_names')
    .then(({ rows }) => new Set(rows.map((r) => r.name).filter((n) => !NOT_ZONES.has(n) && !NOT_ZONE_PREFIX.test(n))))
    .catch((err) => {
      zones = undefined;
      throw err;
    });
  return zones;
}

export async function isTimezone(db: Queryable, name: string): Promise<boolean> {
  return (await knownZones(db)).has(name);
}
