const liveness = (heartbeatSec: number) => ({ heartbeatSec, idleSec: 300 });
import { sweepOffline } from '../../src/liveness/heartbeats.js';
import { aggregateSummaries } from '../../src/summaries/sql.js';
import type { Scenario } from '../context.js';
import { beatAll, client, median, timed } from '../load.js';
import { below, fmt, info, none, type Row } from '../report.js';
import { refreshHeartbeats, seedPopulation, seedYear, silence, userIds, vacuum } from '../seed.js';
import { startService } from '../service.js';

const YEAR_USER = 'y_year';
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * BENCH_USERS sessions (1,000,000): the sweep with nobody and with a tenth expired, summaries over a
 * year for one user and over a day for a tenth of the users (stored aggregates), and the service's
 * memory, also after every user sent a heartbeat. The SQL parts run before the service starts (PGlite
 * allows one process per data dir); their `now` is the load time, so a slow load cannot expire anyone.
 */
export const scale: Scenario = async (ctx) => {
  const n = ctx.users;
  const tenth = Math.max(1, Math.round(n / 10));
  const backend = await ctx.backend('scale');
  const timeoutSec = backend.config.heartbeatTimeoutSec;
  const db = await backend.open();
  let open = true;
  ctx.defer(async () => {
    if (open) await db.close();
  });
  const loadedAt = Date.now();
  const sweepAt = loadedAt + 1000;

  ctx.log(`scale: loading ${fmt.int(n)} sessions, ${fmt.int(tenth)} with checkpoints, one year for ${YEAR_USER}`);
  const load = await timed(async () => {
    await seedPopulation(db, n, tenth, loadedAt);
    await seedYear(db, YEAR_USER, loadedAt);
    await vacuum(db, 'user_sessions', 'sessions', 'checkpoints', 'session_checkpoints', 'summary_progress');
  });

  ctx.log('scale: sweeps');
  const idle: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await timed(() => sweepOffline(db, liveness(timeoutSec), sweepAt));
    if (r.value !== 0) throw new Error(`the sweep expired ${r.value} users; expected none`);
    idle.push(r.ms);
  }
  await silence(db, n - tenth + 1, n, loadedAt);
  await vacuum(db, 'user_sessions', 'sessions');
  const sweep = await timed(() => sweepOffline(db, liveness(timeoutSec), sweepAt, tenth));

  ctx.log('scale: aggregating summaries');
  const aggregate = await timed(async () => {
    let users = 0;
    for (;;) {
      const k = await aggregateSummaries(db, Date.now(), liveness(timeoutSec));
      users += k;
      if (k === 0) return users;
    }
  });
  await refreshHeartbeats(db);
  await vacuum(db, 'user_sessions', 'sessions', 'checkpoints', 'session_checkpoints', 'state_summaries', 'summary_progress');
  await db.close();
  open = false;

  const svc = await startService(backend);
  ctx.defer(() => svc.stop());
  const call = client(svc.url, svc.key);

  ctx.log('scale: /summaries');
  const today = day(Date.now());
  const yearPath = `/summaries?user_id=${YEAR_USER}&from=${day(Date.now() - 364 * 86_400_000)}&to=${today}`;
  const year: number[] = [];
  for (let i = 0; i < 23; i++) {
    const r = await timed(() => call<{ days: unknown[] }>('GET', yearPath));
    if (r.value.days.length !== 365) throw new Error(`expected 365 days, got ${r.value.days.length}`);
    if (i >= 3) year.push(r.ms);
  }
  const yesterday = day(Date.now() - 86_400_000);
  type Page = { users: { total_seconds: number }[]; next_cursor: string | null };
  const team = await timed(async () => {
    let got = 0;
    let pages = 0;
    let cursor: string | null = null;
    let withTime = 0;
    while (got < tenth) {
      const q: string = `/summaries?from=${yesterday}&to=${yesterday}&limit=${Math.min(10_000, tenth - got)}${cursor ? `&cursor=${cursor}` : ''}`;
      const page: Page = await call<Page>('GET', q);
      got += page.users.length;
      withTime += page.users.filter((u) => u.total_seconds > 0).length;
      pages++;
      cursor = page.next_cursor;
      if (!cursor) break;
    }
    return { got, pages, withTime };
  });
  const afterSummaries = svc.memory();

  ctx.log(`scale: a heartbeat from each of ${fmt.int(n)} users`);
  const beat = await timed(() => beatAll(svc.url, svc.key, userIds('u', n)));
  const afterBeats = svc.memory();
  await svc.stop();

  const rows: Row[] = [
    info('scale', 'load (sessions, checkpoints, vacuum)', fmt.s(load.ms)),
    below('scale', 'sweep, none expired (median of 5)', median(idle), 20, fmt.ms),
    below('scale', `sweep expiring ${fmt.int(sweep.value)}`, sweep.ms, 2000, fmt.s),
    none('scale', 'users the sweep missed', { missed: tenth - sweep.value }),
    info('scale', 'aggregation (ck_aggregate_summaries)', `${fmt.int(aggregate.value)} users in ${fmt.s(aggregate.ms)}`),
    below('scale', '/summaries, 1 user x 365 days (median of 20)', median(year), 20, fmt.ms),
    info('scale', '/summaries, 1 user x 365 days, slowest', fmt.ms(Math.max(...year))),
    below('scale', `/summaries, 1 day x ${fmt.int(team.value.got)} users (${team.value.pages} page${team.value.pages === 1 ? '' : 's'})`, team.ms, 2000, fmt.s),
    none('scale', 'summarized users without time', { users: team.value.got - team.value.withTime }),
    info('scale', `first heartbeat from all ${fmt.int(n)} users (POST /heartbeats)`, `${fmt.s(beat.ms)}, ${fmt.rate(n / (beat.ms / 1000))}`),
    info('scale', 'service RSS after summaries / after all heartbeats', `${fmt.mb(afterSummaries.rssMb)} / ${fmt.mb(afterBeats.rssMb)}`),
    below('scale', 'service RSS, peak (VmHWM)', afterBeats.peakMb, 400, fmt.mb),
  ];
  return {
    rows,
    raw: {
      users: n, withCheckpoints: tenth, loadMs: load.ms, sweepIdleMs: idle, sweep: { ms: sweep.ms, expired: sweep.value },
      aggregate: { ms: aggregate.ms, users: aggregate.value }, yearSummaryMs: year, teamSummary: { ms: team.ms, ...team.value },
      firstHeartbeats: { ms: beat.ms }, memory: { afterSummaries, afterBeats },
    },
  };
};
