import type { Queryable } from '../db/types.js';

/**
 * Erases everything ck holds about a user, in one transaction (ck_erase_user, migration 16): every table
 * with a user_id, their unexpired tokens revoked, their id out of webhook filters. False when ck held
 * nothing about them.
 */
export async function eraseUser(db: Queryable, user: string): Promise<boolean> {
  const { rows } = await db.query<{ erased: boolean }>('SELECT ck_erase_user($1) AS erased', [user]);
  return rows[0]!.erased;
}
