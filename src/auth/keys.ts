import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isUnavailable, type Queryable } from '../db/types.js';

export const SCOPES = ['ingest', 'read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKey {
  id: string;
  name: string;
  scopes: Scope[];
  created_at: string;
}

// Key format: ck_<12 hex id>_<43 char base64url secret>. Only sha256(secret) is stored.
const KEY_RE = /^ck_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export async function createKey(db: Queryable, name: string, scopes: Scope[], secretKey?: string) {
  let id: string;
  let secret: string;
  if (secretKey) {
    const m = KEY_RE.exec(secretKey);
    if (!m) throw new Error('CK_API_KEY must look like ck_<12 hex>_<43 base64url chars>; generate one with `ck keys generate`');
    [id, secret] = [m[1]!, m[2]!];
  } else {
    id = randomBytes(6).toString('hex');
    secret = randomBytes(32).toString('base64url');
  }
  const { rows } = await db.query<{ created_at: number }>(
    `INSERT INTO api_keys (id, name, secret_sha256, scopes) VALUES ($1, $2, $3, $4)
     RETURNING ck_ms(created_at) AS created_at`,
    [id, name, sha256(secret), scopes],
  );
  return { id, name, scopes, created_at: new Date(rows[0]!.created_at).toISOString(), key: `ck_${id}_${secret}` };
}

/** Whether the key string's id is in the database (revoked or not). */
export async function keyExists(db: Queryable, key: string): Promise<boolean> {
  const id = KEY_RE.exec(key)?.[1];
  if (!id) return false;
  const { rows } = await db.query('SELECT 1 FROM api_keys WHERE id = $1', [id]);
  return rows.length > 0;
}

export function generateKeyString(): string {
  return `ck_${randomBytes(6).toString('hex')}_${randomBytes(32).toString('base64url')}`;
}

export async function listKeys(db: Queryable): Promise<ApiKey[]> {
  const { rows } = await db.query<{ id: string; name: string; scopes: Scope[]; created_at: number }>(
    `SELECT id, name, scopes, ck_ms(created_at) AS created_at FROM api_keys WHERE revoked_at IS NULL ORDER BY created_at, id`,
  );
  return rows.map((r) => ({ ...r, created_at: new Date(r.created_at).toISOString() }));
}

export async function revokeKey(db: Queryable, id: string): Promise<boolean> {
  const { rows } = await db.query(`UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id`, [id]);
  return rows.length > 0;
}

export async function countKeys(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM api_keys WHERE revoked_at IS NULL`);
  return rows[0]!.n;
}

/**
 * Verifies presented keys against the database, caching a key's hash and scopes for `ttlMs` so the hot
 * path does not query per request. A revocation reaches other instances within `ttlMs`.
 *
 * Stale if error: while the database is unavailable, a key verified within the last `staleIfErrorMs`
 * (5 minutes) stays valid, re-checked at most once a second. Fast-path heartbeats need no database, so
 * they keep being acknowledged and buffered through a failover instead of failing on the key check. The
 * price: a key revoked just before an outage works until the database answers again.
 */
export class KeyVerifier {
  private cache = new Map<string, { hash: Buffer; scopes: Scope[]; at: number } | { missing: true; at: number }>();

  constructor(private readonly db: Queryable, private readonly ttlMs = 5000, private readonly staleIfErrorMs = 300_000) {}

  // Verified bearer strings, so the hot path skips hashing; valid until `until` (the TTL, or a retry
  // delay while the database is unavailable).
  private verified = new Map<string, { id: string; scopes: Scope[]; until: number }>();

  /** A key verified within the TTL, without I/O or hashing; undefined means "call verify". */
  cached(presented: string): { id: string; scopes: Scope[] } | undefined {
    const hit = this.verified.get(presented);
    return hit && Date.now() <= hit.until ? hit : undefined;
  }

  async verify(presented: string): Promise<{ id: string; scopes: Scope[] } | undefined> {
    const hit = this.cached(presented);
    if (hit) return hit;
    const m = KEY_RE.exec(presented);
    if (!m) return undefined;
    const id = m[1]!;
    let entry = this.cache.get(id);
    let until: number | undefined;
    if (!entry || Date.now() - entry.at > this.ttlMs) {
      try {
        const { rows } = await this.db.query<{ secret_sha256: Buffer | Uint8Array; scopes: Scope[] }>(
          `SELECT secret_sha256, scopes FROM api_keys WHERE id = $1 AND revoked_at IS NULL`,
          [id],
        );
        const row = rows[0];
        entry = row ? { hash: Buffer.from(row.secret_sha256), scopes: row.scopes, at: Date.now() } : { missing: true, at: Date.now() };
        if (this.cache.size > 10_000) this.cache.clear();
        this.cache.set(id, entry);
      } catch (err) {
        if (!entry || 'missing' in entry || !isUnavailable(err) || Date.now() - entry.at > this.staleIfErrorMs) throw err;
        until = Date.now() + 1000; // the stale entry, asking the database again in a second
      }
    }
    if ('missing' in entry || !timingSafeEqual(entry.hash, sha256(m[2]!))) return undefined;
    if (this.verified.size > 10_000) this.verified.clear();
    const ok = { id, scopes: entry.scopes, until: until ?? entry.at + this.ttlMs };
    this.verified.set(presented, ok);
    return ok;
  }

  forget(id: string): void {
    this.cache.delete(id);
    for (const [k, v] of this.verified) if (v.id === id) this.verified.delete(k);
  }
}
