import type { Queryable } from '../db/types.js';
import { iso } from '../time.js';
import type { IssuedToken } from './tokens.js';

/** A token as recorded when issued (no secret: the token itself is never stored). */
export interface TokenGrant {
  jti: string;
  user_id: string;
  scopes: string[];
  issued_at: string;
  expires_at: string;
  revoked_at: string | null;
}

/** Records an issued token, so it can be listed, revoked and erased with its user. */
export async function recordToken(db: Queryable, t: IssuedToken, issuedAtMs: number): Promise<void> {
  await db.query(
    `INSERT INTO tokens (user_id, jti, scopes, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
    [t.user_id, t.jti, t.scopes, iso(issuedAtMs), t.expires_at],
  );
}

/** A user's tokens that have not expired, newest first. */
export async function listTokens(db: Queryable, user: string): Promise<TokenGrant[]> {
  const { rows } = await db.query<Omit<TokenGrant, 'issued_at' | 'expires_at' | 'revoked_at'> & { issued_at: number; expires_at: number; revoked_at: number | null }>(
    `SELECT t.jti, t.user_id, t.scopes, ck_ms(t.issued_at) AS issued_at, ck_ms(t.expires_at) AS expires_at, ck_ms(r.revoked_at) AS revoked_at
       FROM tokens t LEFT JOIN token_revocations r ON r.jti = t.jti
      WHERE t.user_id = $1 AND t.expires_at > now()
      ORDER BY t.issued_at DESC, t.jti`,
    [user],
  );
  return rows.map((r) => ({ ...r, issued_at: iso(r.issued_at), expires_at: iso(r.expires_at), revoked_at: r.revoked_at === null ? null : iso(r.revoked_at) }));
}

/** Revokes a token (ck_revoke_token); false when no such unexpired token was issued. */
export async function revokeToken(db: Queryable, jti: string): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>('SELECT ck_revoke_token($1) AS ok', [jti]);
  return rows[0]!.ok;
}

/** Deletes grants and revocations of expired tokens and day-old erasure markers (ck_prune_tokens). */
export async function pruneTokens(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT ck_prune_tokens() AS n');
  return rows[0]!.n;
}
