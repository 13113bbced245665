import { randomBytes } from 'node:crypto';
import type { Queryable } from '../db/types.js';

/**
 * The HS256 secret for per-user tokens: CK_TOKEN_SECRET when set; otherwise one generated on first start
 * and kept in the database, so every instance on it signs and verifies alike. Concurrent first starts
 * agree: the first insert wins and everyone reads it back.
 */
export async function tokenSecret(db: Queryable, configured: string | undefined): Promise<string> {
  if (configured) return configured;
  const { rows } = await db.query<{ value: string }>(
    `WITH ins AS (
       INSERT INTO ck_settings (name, value) VALUES ('token_secret', $1) ON CONFLICT (name) DO NOTHING RETURNING value)
     SELECT value FROM ins UNION ALL SELECT value FROM ck_settings WHERE name = 'token_secret' LIMIT 1`,
    [randomBytes(32).toString('base64url')],
  );
  return rows[0]!.value;
}
