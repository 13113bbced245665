import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqlState } from '../src/db/types.js';
import { recordCheckpoint } from '../src/checkpoints/record.js';
import { flushHeartbeats, sweepOffline } from '../src/liveness/heartbeats.js';
import { BACKENDS, ManualClock, startServer, type TestServer, timeoutsOf } from './helpers.js';

describe.each(BACKENDS)('liveness (%s)', (backend) => {
  let s: TestServer;
  const clock = new ManualClock();
  beforeAll(async () => {
    s = await startServer(backend, { clock });
  });
  afterAll(() => s.close());

  const timeline = async (u: string) =>
    (await s.req('GET', `/checkpoints?user_id=${u}`)).body.checkpoints.map((c: any) => [c.state, c.timestamp, c.source]);
  const at = (ms: number) => new Date(ms).toISOString();

  it('status is exact on read: Offline at last_heartbeat + timeout before any sweep', async () => {
    const t0 = clock.now();
    await s.req('POST', '/heartbeat', { user_id: 'ex' });
    clock.advance(59_000);
    expect((await s.req('GET', '/status/ex')).body).toMatchObject({ state: 'Online', online: true });
    clock.advance(2_000);
    expect((await s.req('GET', '/status/ex')).body).toMatchObject({ state: 'Offline', online: false, state_since: at(t0 + 60_000) });
    const byState = await s.req('GET', '/status?state=Offline&limit=1000');
    expect(byState.body.users.map((u: any) => u.user_id)).toContain('ex');
    const online = await s.req('GET', '/status?state=Online&limit=1000');
    expect(online.body.users.map((u: any) => u.user_id)).not.toContain('ex');
  });

  it('the sweep stamps Offline at last_heartbeat + timeout, costs only expired users, and is idempotent', async () => {
    const t0 = clock.now();
    await s.req('POST', '/heartbeat', { user_id: 'sw' });
    await s.req('POST', '/checkpoints', { user_id: 'sw2', state: 'Busy' });
    clock.advance(10 * 60_000);
    await s.req('POST', '/heartbeat', { user_id: 'alive' });
    await s.app.ck.coalescer.flush();
    const n = await sweepOffline(s.db, timeoutsOf(60), clock.now());
    expect(n).toBeGreaterThanOrEqual(3); // ex, sw, sw2
    expect(await sweepOffline(s.db, timeoutsOf(60), clock.now())).toBe(0);
    expect(await timeline('sw')).toEqual([['Online', at(t0), 'heartbeat'], ['Offline', at(t0 + 60_000), 'timeout']]);
    expect((await s.req('GET', '/status/alive')).body.state).toBe('Online');
    expect((await s.req('GET', '/status/sw2')).body).toMatchObject({ state: 'Offline', state_since: at(t0 + 60_000) });
  });

  it('a heartbeat after an unswept timeout records the gap, then Online at its own time', async () => {
    const t0 = clock.now();
    await s.req('POST', '/checkpoints', { user_id: 'gap', state: 'Busy' });
    clock.advance(5 * 60_000);
    const r = await s.req('POST', '/heartbeat', { user_id: 'gap' });
    expect(r.body).toMatchObject({ state: 'Online', state_since: at(t0 + 300_000) });
    expect(await timeline('gap')).toEqual([
      ['Busy', at(t0), 'client'], ['Offline', at(t0 + 60_000), 'timeout'], ['Online', at(t0 + 300_000), 'heartbeat'],
    ]);
  });

  it('a checkpoint after an unswept timeout records the gap too', async () => {
    const t0 = clock.now();
    await s.req('POST', '/heartbeat', { user_id: 'gap2' });
    clock.advance(3 * 60_000);
    await s.req('POST', '/checkpoints', { user_id: 'gap2', state: 'Away' });
    expect(await timeline('gap2')).toEqual([
      ['Online', at(t0), 'heartbeat'], ['Offline', at(t0 + 60_000), 'timeout'], ['Away', at(t0 + 180_000), 'client'],
    ]);
  });

  it('a heartbeat revives a swept user with a new Online checkpoint', async () => {
    await s.req('POST', '/heartbeat', { user_id: 'rev' });
    clock.advance(120_000);
    await sweepOffline(s.db, timeoutsOf(60), clock.now());
    const r = await s.req('POST', '/heartbeat', { user_id: 'rev' });
    expect(r.body).toMatchObject({ state: 'Online', state_since: at(clock.now()) });
    expect((await timeline('rev')).map((c: string[]) => c[0])).toEqual(['Online', 'Offline', 'Online']);
  });

  it('never sweeps a user whose buffered heartbeat was acknowledged within the timeout', async () => {
    // Heartbeats every 50 s: each is acknowledged from memory or written; the sweep runs in between.
    await s.req('POST', '/heartbeat', { user_id: 'steady' });
    for (let i = 0; i < 6; i++) {
      clock.advance(50_000);
      await s.req('POST', '/heartbeat', { user_id: 'steady' });
      await sweepOffline(s.db, timeoutsOf(60), clock.now());
      clock.advance(5_000);
      await sweepOffline(s.db, timeoutsOf(60), clock.now());
      await s.app.ck.coalescer.flush();
    }
    expect((await timeline('steady')).map((c: string[]) => c[0])).toEqual(['Online']);
  });

  it('a flush that finds the row Offline (another writer) revives it', async () => {
    await s.req('POST', '/heartbeat', { user_id: 'flip' });
    clock.advance(1000);
    await s.req('POST', '/heartbeat', { user_id: 'flip' }); // buffered
    expect(s.app.ck.coalescer.pendingFor('flip')).toBe(clock.now());
    // Another instance marks the user Offline directly.
    await recordCheckpoint(s.db, { userId: 'flip', state: 'Offline', ts: clock.now() - 500 }, clock.now() - 500, timeoutsOf(60));
    await s.app.ck.coalescer.flush();
    const st = (await s.req('GET', '/status/flip')).body;
    expect(st.state).toBe('Online');
    expect((await timeline('flip')).map((c: string[]) => c[0])).toEqual(['Online', 'Offline', 'Online']);
  });

  it('a flush writes alive sessions in the lean statement and sends the rest through ck_session_heartbeat', async () => {
    const t0 = clock.now();
    await s.req('POST', '/heartbeat', { user_id: 'f_alive' });
    await s.req('POST', '/checkpoints', { user_id: 'f_busy', state: 'Busy' });
    await s.req('POST', '/checkpoints', { user_id: 'f_off', state: 'Offline' });
    await s.req('POST', '/checkpoints', { user_id: 'f_gap', state: 'Away' });
    const t1 = t0 + 90_000; // f_gap's last heartbeat (t0) expired at t0 + 60 s, unswept
    const beat = (user: string, at: number) => ({ user, session: 'default', at, activeAt: at });
    const slow = await flushHeartbeats(s.db, [beat('f_alive', t0 + 30_000), beat('f_busy', t0 + 30_000), beat('f_off', t1), beat('f_gap', t1), beat('f_new', t1)], timeoutsOf(60));
    // Only what could change state went the slow way.
    expect(slow.map((r) => r.user_id).sort()).toEqual(['f_gap', 'f_new', 'f_off']);
    const stored = async (user: string) => (await s.db.query<{ state: string; since: number; hb: number }>(
      `SELECT us.current_state AS state, ck_ms(us.state_since) AS since, ck_ms(greatest(us.last_heartbeat, x.last_heartbeat)) AS hb
         FROM user_sessions us LEFT JOIN sessions x ON x.user_id = us.user_id WHERE us.user_id = $1`, [user])).rows[0];
    expect(await stored('f_alive')).toEqual({ state: 'Online', since: t0, hb: t0 + 30_000 });
    expect(await stored('f_busy')).toEqual({ state: 'Busy', since: t0, hb: t0 + 30_000 });
    for (const u of ['f_off', 'f_gap', 'f_new']) expect(await stored(u)).toEqual({ state: 'Online', since: t1, hb: t1 });
    expect((await timeline('f_busy')).map((c: string[]) => c[0])).toEqual(['Busy']);
    expect(await timeline('f_gap')).toEqual([
      ['Away', at(t0), 'client'], ['Offline', at(t0 + 60_000), 'timeout'], ['Online', at(t1), 'heartbeat'],
    ]);
    expect((await timeline('f_off')).map((c: string[]) => c[0])).toEqual(['Offline', 'Online']);
    // An older buffered time never moves last_heartbeat back.
    await flushHeartbeats(s.db, [beat('f_alive', t0 + 10_000)], timeoutsOf(60));
    expect((await stored('f_alive'))!.hb).toBe(t0 + 30_000);
  });

  it('the sweep is exact at the timeout whatever 10 s bucket a heartbeat fell in', async () => {
    // Heartbeats 1 ms either side of the expiry instant, at offsets across a bucket boundary.
    const base = Math.floor(clock.now() / 10_000) * 10_000 + 60_000;
    clock.advance(base + 3 * 60_000 + 4_321 - clock.now()); // the expiry instant falls inside a bucket
    const now = clock.now();
    const users = [0, 1, 9_999, 10_000].flatMap((off) => [
      { id: `b_old_${off}`, hb: now - 60_000 - 1 - off, swept: true },
      { id: `b_new_${off}`, hb: now - 60_000 + 1 + off, swept: false },
    ]);
    for (const u of users) {
      await recordCheckpoint(s.db, { userId: u.id, state: 'Busy', ts: u.hb }, u.hb, timeoutsOf(60));
    }
    await sweepOffline(s.db, timeoutsOf(60), now);
    for (const u of users) {
      const st = (await s.db.query<{ current_state: string }>(`SELECT current_state FROM user_sessions WHERE user_id = $1`, [u.id])).rows[0];
      expect([u.id, st?.current_state]).toEqual([u.id, u.swept ? 'Offline' : 'Busy']);
    }
  });

  it('a user heartbeating steadily for two timeouts stays on the fast path: re-read in the background, never looked up or written first', async () => {
    // Lookups and heartbeat writes before the answer: what a heartbeat off the fast path costs.
    const lookups = async () => {
      const text = (await s.req('GET', '/metrics')).body as string;
      const count = (w: string) => Number(new RegExp(`^ck_group_commit_batch_size_count\\{writer="${w}"\\} (\\S+)`, 'm').exec(text)?.[1] ?? 0);
      return { lookups: count('lookups'), writes: count('heartbeats') };
    };
    const t0 = clock.now();
    for (const session_id of ['web', 'ios']) await s.req('POST', '/heartbeat', { user_id: 'steady2', session_id });
    const before = await lookups();
    const refreshed = s.app.ck.coalescer.refreshed;
    for (let i = 0; i < 24; i++) {
      clock.advance(5_000);
      for (const session_id of ['web', 'ios']) {
        expect((await s.req('POST', '/heartbeat', { user_id: 'steady2', session_id })).body).toMatchObject({ state: 'Online', state_since: at(t0) });
      }
      // Acknowledged and buffered, not yet flushed: the sessions list shows them already.
      const listed = (await s.req('GET', '/users/steady2/sessions')).body.sessions;
      expect(listed.map((x: { last_heartbeat: string }) => x.last_heartbeat)).toEqual([at(clock.now()), at(clock.now())]);
      await s.app.ck.coalescer.flush();
      await s.app.ck.coalescer.settled();
    }
    expect(await lookups()).toEqual(before);
    expect(s.app.ck.coalescer.refreshed).toBeGreaterThan(refreshed);
    expect(await timeline('steady2')).toEqual([['Online', at(t0), 'heartbeat']]);
  });

  it('state names are checked per statement, and state types cannot be renamed or deleted', async () => {
    const code = (p: Promise<unknown>) => p.then(() => 'ok', (err: unknown) => sqlState(err));
    expect(await code(s.db.query(`INSERT INTO checkpoints (user_id, state, ts, source)
      SELECT 'sc', unnest(ARRAY['Busy', 'Nope']), now(), 'client'`))).toBe('23503');
    expect((await s.db.query(`SELECT count(*)::int AS n FROM checkpoints WHERE user_id = 'sc'`)).rows[0]).toEqual({ n: 0 });
    expect(await code(s.db.query(`DELETE FROM state_types WHERE name = 'Away'`))).toBe('23001');
    expect(await code(s.db.query(`UPDATE state_types SET name = 'Gone' WHERE name = 'Away'`))).toBe('23001');
    expect(await code(s.db.query(`UPDATE state_types SET color = '#000000' WHERE name = 'Away'`))).toBe('ok');
  });
});
