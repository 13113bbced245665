import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../src/db/migrate.js';
import type { Queryable } from '../src/db/types.js';
import { BACKENDS, openTestDb, type TestDb } from './helpers.js';

// The distribution plan of docs/scaling.md, checked against the migrated catalog: a new table must be
// placed in one of these lists (or have user_id), and a per-user table's keys must allow sharding by user.
/** Small tables every node holds a copy of (Citus reference tables). */
const REFERENCE = ['api_keys', 'ck_settings', 'state_types', 'token_revocations', 'user_erasures', 'webhooks'];
/** Bookkeeping that stays on the coordinator only (Citus local tables). */
const COORDINATOR = ['ck_migrations', 'job_runs', 'retention_progress'];

type Problem = string;

/** Everything in the current schema that would stop distributing the per-user tables by user_id. */
async function citusProblems(db: Queryable): Promise<{ perUser: string[]; problems: Problem[] }> {
  const tables = (await db.query<{ name: string; per_user: boolean }>(
    `SELECT c.relname AS name,
            EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped) AS per_user
       FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
      ORDER BY 1`,
  )).rows;
  const perUser = tables.filter((t) => t.per_user).map((t) => t.name);
  const problems: Problem[] = [];
  for (const t of tables) {
    if (t.per_user && [...REFERENCE, ...COORDINATOR].includes(t.name)) problems.push(`${t.name} has user_id but is listed as reference or coordinator table`);
    if (!t.per_user && ![...REFERENCE, ...COORDINATOR].includes(t.name)) problems.push(`${t.name} has no user_id and is on neither list: decide where it lives on Citus`);
  }

  // Primary keys and unique indexes (constraints or not) of per-user tables must contain user_id.
  const keys = (await db.query<{ tbl: string; idx: string; primary: boolean; has_user: boolean }>(
    `SELECT t.relname AS tbl, i.relname AS idx, x.indisprimary AS primary,
            EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attname = 'user_id'
                       AND a.attnum = ANY (x.indkey::int2[])) AS has_user
       FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
      WHERE t.relnamespace = current_schema()::regnamespace AND x.indisunique AND t.relname = ANY ($1::text[])`,
    [perUser],
  )).rows;
  for (const t of perUser) {
    if (!keys.some((k) => k.tbl === t && k.primary)) problems.push(`${t} has no primary key`);
  }
  for (const k of keys) {
    if (!k.has_user) problems.push(`${k.tbl}: ${k.primary ? 'primary key' : 'unique index'} ${k.idx} lacks user_id`);
  }

  // Foreign keys: per-user → per-user must pair user_id with user_id; per-user → other only to a reference
  // table; nothing outside the per-user tables may point into them.
  const fks = (await db.query<{ name: string; src: string; dst: string; pairs: string[] }>(
    `SELECT k.conname AS name, s.relname AS src, d.relname AS dst,
            array(SELECT sa.attname || '=' || da.attname
                    FROM unnest(k.conkey, k.confkey) AS p(s, d)
                    JOIN pg_attribute sa ON sa.attrelid = k.conrelid AND sa.attnum = p.s
                    JOIN pg_attribute da ON da.attrelid = k.confrelid AND da.attnum = p.d) AS pairs
       FROM pg_constraint k JOIN pg_class s ON s.oid = k.conrelid JOIN pg_class d ON d.oid = k.confrelid
      WHERE k.contype = 'f' AND s.relnamespace = current_schema()::regnamespace`,
  )).rows;
  for (const fk of fks) {
    const srcUser = perUser.includes(fk.src);
    const dstUser = perUser.includes(fk.dst);
    if (srcUser && dstUser && !fk.pairs.includes('user_id=user_id')) problems.push(`${fk.name}: ${fk.src} → ${fk.dst} does not include user_id`);
    if (srcUser && !dstUser && !REFERENCE.includes(fk.dst)) problems.push(`${fk.name}: ${fk.src} references ${fk.dst}, which is not a reference table`);
    if (!srcUser && dstUser) problems.push(`${fk.name}: ${fk.src} references the per-user table ${fk.dst}`);
  }
  return { perUser, problems };
}

describe.each(BACKENDS)('a Citus-ready schema (%s)', (backend) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await openTestDb(backend);
    await migrate(db);
  });
  afterAll(async () => {
    await db.dropSchema();
    await db.close();
  });

  it('has user_id in every per-user key and foreign key, and every other table on a list', async () => {
    const { perUser, problems } = await citusProblems(db);
    expect(problems).toEqual([]);
    // The plan names the distributed tables we know of; a table added later shows up here first.
    expect(perUser).toEqual(expect.arrayContaining([
      'checkpoints', 'events', 'manual_presence', 'session_checkpoints', 'sessions', 'state_summaries',
      'summary_progress', 'tokens', 'user_sessions', 'user_settings', 'webhook_deliveries',
    ]));
  });

  it('names every table in docs/scaling.md, so the plan and the schema cannot drift apart', async () => {
    const doc = await readFile(new URL('../docs/scaling.md', import.meta.url), 'utf8');
    const { perUser } = await citusProblems(db);
    const missing = [...perUser, ...REFERENCE, ...COORDINATOR].filter((t) => !doc.includes(`\`${t}\``));
    expect(missing).toEqual([]);
  });

  it('catches a per-user table keyed without user_id, a foreign key that skips it, and an unlisted table', async () => {
    await db.transaction(async (tx) => {
      await tx.query(`CREATE TABLE ck_probe_parent (user_id text NOT NULL, id bigint NOT NULL, PRIMARY KEY (user_id, id), UNIQUE (id))`);
      await tx.query(`CREATE TABLE ck_probe_child (user_id text NOT NULL, parent_id bigint REFERENCES ck_probe_parent (id), PRIMARY KEY (user_id, parent_id))`);
      await tx.query(`CREATE TABLE ck_probe_shared (name text PRIMARY KEY)`);
      const { problems } = await citusProblems(tx);
      expect(problems).toEqual(expect.arrayContaining([
        expect.stringMatching(/^ck_probe_parent: unique index .* lacks user_id$/),
        expect.stringMatching(/ck_probe_child → ck_probe_parent does not include user_id$/),
        'ck_probe_shared has no user_id and is on neither list: decide where it lives on Citus',
      ]));
      throw new Rollback();
    }).catch((e) => {
      if (!(e instanceof Rollback)) throw e;
    });
    const { problems } = await citusProblems(db);
    expect(problems).toEqual([]);
  });
});

class Rollback extends Error {}
