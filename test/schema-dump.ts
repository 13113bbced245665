import type { Queryable } from '../src/db/types.js';

/**
 * The migrated schema as text, read from the catalog: tables with their columns, options, constraints,
 * indexes and triggers, then functions, each in a stable order with the schema name removed. The snapshot
 * in migrations/schema.sql is this text; test/schema.test.ts fails when a migration changes it unreviewed.
 */
export async function dumpSchema(db: Queryable): Promise<string> {
  const q = async <R>(sql: string) => (await db.query<R>(sql)).rows;
  const tables = await q<{ name: string; options: string[] | null }>(`
    SELECT c.relname AS name, c.reloptions AS options FROM pg_class c
     WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1`);
  const out: string[] = [];
  for (const t of tables) {
    const cols = await q<{ line: string }>(`
      SELECT format('  %I %s%s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
               CASE WHEN a.attidentity <> '' THEN ' GENERATED ' || CASE a.attidentity WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END || ' AS IDENTITY' ELSE '' END,
               CASE WHEN a.attgenerated = 's' THEN ' GENERATED ALWAYS AS (' || pg_get_expr(d.adbin, d.adrelid) || ') STORED'
                    WHEN d.adbin IS NOT NULL THEN ' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid) ELSE '' END,
               CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END) AS line
        FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE a.attrelid = '${t.name}'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`);
    const cons = await q<{ line: string }>(`
      SELECT format('  CONSTRAINT %I %s', conname, pg_get_constraintdef(oid)) AS line FROM pg_constraint
       WHERE conrelid = '${t.name}'::regclass AND contype <> 'n' ORDER BY conname`);
    out.push(`CREATE TABLE ${t.name} (\n${[...cols, ...cons].map((r) => r.line).join(',\n')}\n)${t.options ? ` WITH (${t.options.join(', ')})` : ''};`);
    const idx = await q<{ line: string }>(`
      SELECT pg_get_indexdef(i.indexrelid) AS line FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       WHERE i.indrelid = '${t.name}'::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
       ORDER BY c.relname`);
    const trg = await q<{ line: string }>(`
      SELECT pg_get_triggerdef(oid) AS line FROM pg_trigger WHERE tgrelid = '${t.name}'::regclass AND NOT tgisinternal ORDER BY tgname`);
    out.push(...idx.map((r) => `${r.line};`), ...trg.map((r) => `${r.line};`), '');
  }
  const fns = await q<{ def: string }>(`
    SELECT pg_get_functiondef(p.oid) AS def FROM pg_proc p
     WHERE p.pronamespace = current_schema()::regnamespace
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
     ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)`);
  out.push(...fns.map((f) => `${f.def.trimEnd()};\n`));
  const [{ schema }] = await q<{ schema: string }>('SELECT current_schema() AS schema');
  const prefix = new RegExp(`\\b${schema}\\.|"${schema}"\\.`, 'g');
  return `-- The schema that migrations/*.sql build, as the catalog shows it (generated: npm run schema:snapshot).\n\n${out.join('\n').replace(prefix, '')}`;
}
