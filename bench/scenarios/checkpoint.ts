import { checkpointCeiling } from '../baselines.js';
import type { Scenario } from '../context.js';
import { httpLoad } from '../load.js';
import { fmt, info, none, ratioAtLeast } from '../report.js';
import { startService } from '../service.js';

const CONNECTIONS = 64;
const USERS_PER_CONNECTION = 16;

/**
 * POST /checkpoints, each a state change (every connection owns 16 users and alternates their state),
 * committed before the 201. Baseline: the same SQL from Node with the same pool and concurrency.
 */
export const checkpoint: Scenario = async (ctx) => {
  const backend = await ctx.backend('checkpoint');
  ctx.log('checkpoint: SQL ceiling (no HTTP)');
  const db = await backend.open();
  let sql;
  let durability = '';
  try {
    // "Durable before 201": the commit waits for the WAL flush unless the server was told otherwise.
    const { rows } = await db.query<{ s: string; f: string }>(
      `SELECT current_setting('synchronous_commit') AS s, current_setting('fsync') AS f`);
    durability = `synchronous_commit=${rows[0]!.s}, fsync=${rows[0]!.f}`;
    sql = await checkpointCeiling(db, backend, CONNECTIONS, ctx.durationSec);
  } finally {
    await db.close();
  }

  ctx.log('checkpoint: ck');
  const svc = await startService(backend);
  ctx.defer(() => svc.stop());
  const r = await httpLoad({
    url: svc.url, connections: CONNECTIONS, durationSec: ctx.durationSec, warmupSec: 1,
    headers: { authorization: `Bearer ${svc.key}` },
    // Each connection owns its users: Away for each, then Online for each, looping.
    requests: (conn) => ['Away', 'Online'].flatMap((state) => Array.from({ length: USERS_PER_CONNECTION }, (_, k) => ({
      path: '/checkpoints', body: JSON.stringify({ user_id: `http_${conn}_${k}`, state }),
    }))),
  });
  await svc.stop();

  const created = r.statuses['201'] ?? 0;
  return {
    rows: [
      ratioAtLeast('checkpoint', 'throughput vs SQL ceiling', r.rps, 'SQL', sql.rps, 0.5),
      info('checkpoint', 'p50 / p99 latency (ck)', `${fmt.ms(r.p50)} / ${fmt.ms(r.p99)}`),
      info('checkpoint', 'p50 / p99 latency (SQL)', `${fmt.ms(sql.p50)} / ${fmt.ms(sql.p99)}`),
      none('checkpoint', 'not a 201 change', { ck: r.requests - created, SQL: sql.unchanged }),
      none('checkpoint', 'failed requests', { ck: r.failed }),
      info('checkpoint', 'server durability settings', durability),
    ],
    raw: { durability, connections: CONNECTIONS, poolSize: backend.config.poolSize, ck: r, sql },
  };
};
