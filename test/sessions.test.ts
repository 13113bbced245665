import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepOffline } from '../src/liveness/heartbeats.js';
import { WITH_POOLER, ManualClock, startServer, type TestServer } from './helpers.js';
import { waitFor } from './wait.js';

const iso = (ms: number) => new Date(ms).toISOString();

describe.each(WITH_POOLER)('one user, many sessions (%s)', (backend) => {
  let s: TestServer;
  const clock = new ManualClock();
  // Short timeouts: 60 s without a heartbeat ends a session, 30 s without activity makes it Away.
  const TIMEOUTS = { heartbeatSec: 60, idleSec: 30 };
  beforeAll(async () => {
    s = await startServer(backend, { clock, env: { CK_HEARTBEAT_TIMEOUT: '60', CK_IDLE_TIMEOUT: '30', CK_FLUSH_INTERVAL_MS: '1000' } });
  });
  afterAll(() => s?.close());

  const status = async (user: string) => (await s.req('GET', `/status/${user}`)).body;
  const timeline = async (user: string) => (await s.req('GET', `/checkpoints?user_id=${user}&limit=1000`)).body.checkpoints
    .map((c: any) => [c.state, c.timestamp, c.source, c.session_id]);
  const sweep = () => sweepOffline(s.db, TIMEOUTS, clock.now());
  const tick = (ms = 1) => clock.advance(ms);

  it('the highest-priority session wins; on a tie the one that changed most recently', async () => {
    const t0 = clock.now();
    await s.req('POST', '/heartbeat', { user_id: 'p', session_id: 'phone', client: 'ios/3.2' });
    tick();
    await s.req('POST', '/checkpoints', { user_id: 'p', session_id: 'laptop', state: 'Away' });
    expect((await status('p')).state).toBe('Online'); // Online 30 beats Away 20
    tick();
    const busy = await s.req('POST', '/checkpoints', { user_id: 'p', session_id: 'laptop', state: 'Busy', content: { call: 1 } });
    expect(busy.status).toBe(201);
    expect(busy.body).toMatchObject({ session_id: 'laptop', state: 'Busy', previous_state: 'Away', changed: true });
    tick();
    // A tab that reloads and says Online does not undo the Busy of the call app.
    await s.req('POST', '/checkpoints', { user_id: 'p', session_id: 'tab', state: 'Online' });
    expect((await status('p'))).toMatchObject({ state: 'Busy', sessions: 3, manual: null });
    // Two sessions at the same priority: the one that changed last.
    await s.req('POST', '/states', { name: 'InCall', online: true, priority: 40 });
    tick();
    await s.req('POST', '/checkpoints', { user_id: 'p', session_id: 'tab', state: 'InCall' });
    expect((await status('p')).state).toBe('InCall');
    const tl = await timeline('p');
    expect(tl).toEqual([
      ['Online', iso(t0), 'heartbeat', 'phone'],
      ['Busy', iso(t0 + 2), 'client', 'laptop'],
      ['InCall', iso(t0 + 4), 'client', 'tab'],
    ]);
    // The 201 of the change that moved the user has the id of the user's timeline entry (and event).
    const entries = (await s.req('GET', '/checkpoints?user_id=p')).body.checkpoints;
    expect(entries[1].id).toBe(busy.body.id);
    const sessions = (await s.req('GET', '/users/p/sessions')).body.sessions;
    expect(sessions.map((x: any) => [x.session_id, x.state, x.client])).toEqual([
      ['laptop', 'Busy', null], ['phone', 'Online', 'ios/3.2'], ['tab', 'InCall', null],
    ]);
  });

  it('states have priorities; a custom state without one ranks with Online', async () => {
    const list = (await s.req('GET', '/states')).body.states;
    const p = Object.fromEntries(list.map((x: any) => [x.name, x.priority]));
    expect(p).toMatchObject({ DoNotDisturb: 50, Busy: 40, Online: 30, Away: 20, Offline: 0, InCall: 40 });
    expect((await s.req('POST', '/states', { name: 'Lunch', online: false })).body.priority).toBe(30);
  });

  it('a session ends with DELETE (404 for one not alive) or an Offline checkpoint; the last one ending makes the user Offline', async () => {
    tick(1000);
    await s.req('POST', '/heartbeat', { user_id: 'e', session_id: 'a' });
    await s.req('POST', '/heartbeat', { user_id: 'e', session_id: 'b' });
    tick();
    expect((await s.req('DELETE', '/users/e/sessions/a')).status).toBe(204);
    expect((await s.req('DELETE', '/users/e/sessions/a')).status).toBe(404);
    expect((await s.req('DELETE', '/users/e/sessions/nope')).status).toBe(404);
    expect(await status('e')).toMatchObject({ state: 'Online', sessions: 1 });
    tick();
    const ended = clock.now();
    expect((await s.req('POST', '/checkpoints', { user_id: 'e', session_id: 'b', state: 'Offline' })).status).toBe(201);
    expect(await status('e')).toMatchObject({ state: 'Offline', sessions: 0, state_since: iso(ended) });
    const tl = await timeline('e');
    expect(tl.map((x: any[]) => x[0])).toEqual(['Online', 'Offline']);
    // A heartbeat afterwards starts the session again.
    tick();
    expect((await s.req('POST', '/heartbeat', { user_id: 'e', session_id: 'b' })).body.state).toBe('Online');
  });

  it('Offline at the last session\'s last_heartbeat + timeout, to the millisecond, whether the sweep is on time or late', async () => {
    tick(1000);
    const t0 = clock.now();
    await s.req('POST', '/heartbeat', { user_id: 'x', session_id: 'a' });
    tick(5_003);
    await s.req('POST', '/checkpoints', { user_id: 'x', session_id: 'b', state: 'Busy' }); // b's last sign of life at t0 + 5003
    await s.app.ck.coalescer.flush();
    clock.t = t0 + 60_000; // exactly a's expiry: not yet past it
    expect((await status('x')).sessions).toBe(2);
    clock.t = t0 + 60_001;
    expect(await status('x')).toMatchObject({ state: 'Busy', sessions: 1 });
    clock.t = t0 + 5_003 + 60_000 + 1;
    // Before any sweep, status is exact...
    expect(await status('x')).toMatchObject({ state: 'Offline', state_since: iso(t0 + 65_003), sessions: 0 });
    // ... and a sweep that runs ten minutes late writes the same instants.
    clock.t = t0 + 600_000;
    await sweep();
    expect(await timeline('x')).toEqual([
      ['Online', iso(t0), 'heartbeat', 'a'],
      ['Busy', iso(t0 + 5003), 'client', 'b'],
      ['Offline', iso(t0 + 65_003), 'timeout', null],
    ]);
  });

  it('an Online session with no activity is Away from last_active + idle exactly; activity brings it back; Busy does not decay', async () => {
    tick(1000);
    const t0 = clock.now();
    await s.req('POST', '/heartbeat', { user_id: 'i', session_id: 'a' });
    await s.req('POST', '/checkpoints', { user_id: 'i', session_id: 'b', state: 'Busy' });
    for (let k = 1; k <= 4; k++) {
      clock.t = t0 + k * 10_000;
      await s.req('POST', '/heartbeat', { user_id: 'i', session_id: 'a', active: false });
      await s.req('POST', '/heartbeat', { user_id: 'i', session_id: 'b', active: false });
    }
    await s.app.ck.coalescer.flush();
    expect((await s.req('GET', '/users/i/sessions')).body.sessions.map((x: any) => [x.session_id, x.state, x.state_since]))
      .toEqual([['a', 'Away', iso(t0 + 30_000)], ['b', 'Busy', iso(t0)]]);
    // The user stays Busy (b); ending b leaves the idle a: Away.
    expect((await status('i')).state).toBe('Busy');
    clock.t = t0 + 45_000;
    await sweep(); // late: writes a's Away at t0 + 30 s
    expect((await s.req('DELETE', '/users/i/sessions/b')).status).toBe(204);
    expect((await status('i')).state).toBe('Away');
    tick(1000);
    const back = clock.now();
    expect((await s.req('POST', '/heartbeat', { user_id: 'i', session_id: 'a' })).body).toMatchObject({ state: 'Online', state_since: iso(back) });
    const { rows } = await s.db.query<{ state: string; ts: number; source: string }>(
      `SELECT state, ck_ms(ts) AS ts, source FROM session_checkpoints WHERE user_id = 'i' AND session_id = 'a' ORDER BY ts, id`);
    expect(rows).toEqual([
      { state: 'Online', ts: t0, source: 'heartbeat' },
      { state: 'Away', ts: t0 + 30_000, source: 'idle' },
      { state: 'Online', ts: back, source: 'heartbeat' },
    ]);
  });

  it('manual presence holds while a session is alive, falls back at exactly `until`, and comes back with a session', async () => {
    tick(1000);
    const t0 = clock.now();
    await s.req('POST', '/heartbeat', { user_id: 'm', session_id: 'phone' });
    tick(1000);
    const set = await s.req('PUT', '/users/m/presence', { state: 'DoNotDisturb', until: iso(t0 + 110_000) });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ state: 'DoNotDisturb', manual: { state: 'DoNotDisturb', until: iso(t0 + 110_000) }, sessions: 1 });
    // The phone goes quiet: Offline at its expiry even though the manual presence is set ...
    clock.t = t0 + 61_000;
    expect(await status('m')).toMatchObject({ state: 'Offline', state_since: iso(t0 + 60_000) });
    // ... and a session back before `until` brings it back.
    clock.t = t0 + 90_000;
    expect((await s.req('POST', '/heartbeat', { user_id: 'm', session_id: 'laptop' })).body.state).toBe('DoNotDisturb');
    clock.t = t0 + 110_000 + 1;
    expect(await status('m')).toMatchObject({ state: 'Online', state_since: iso(t0 + 110_000), manual: null });
    // The laptop's last activity was at t0 + 90 s: Away 30 s later, manual presence or not.
    clock.t = t0 + 140_000;
    await sweep();
    expect((await timeline('m')).map((x: any[]) => x.slice(0, 3))).toEqual([
      ['Online', iso(t0), 'heartbeat'],
      ['DoNotDisturb', iso(t0 + 1000), 'manual'],
      ['Offline', iso(t0 + 60_000), 'timeout'],
      ['DoNotDisturb', iso(t0 + 90_000), 'heartbeat'],
      ['Online', iso(t0 + 110_000), 'manual'],
      ['Away', iso(t0 + 120_000), 'idle'],
    ]);
    // Cleared: 204, and the user follows the sessions again.
    await s.req('PUT', '/users/m/presence', { state: 'Busy' });
    expect((await s.req('DELETE', '/users/m/presence')).status).toBe(204);
    expect(await status('m')).toMatchObject({ state: 'Away', manual: null });
    expect((await s.req('PUT', '/users/m/presence', { state: 'Busy', until: iso(clock.now() - 1) })).status).toBe(422);
    expect((await s.req('PUT', '/users/m/presence', { state: 'Nope' })).status).toBe(422);
  });

  it('a back-dated session checkpoint recomputes the user timeline from its instant', async () => {
    tick(1000);
    const t0 = clock.now();
    await s.req('POST', '/heartbeat', { user_id: 'b', session_id: 'desk' });
    tick(10_000);
    await s.req('POST', '/checkpoints', { user_id: 'b', session_id: 'desk', state: 'Busy' });
    tick(10_000);
    // The phone says it was DoNotDisturb since 5 s after t0.
    await s.req('POST', '/checkpoints', { user_id: 'b', session_id: 'phone', state: 'DoNotDisturb', timestamp: t0 + 5000 });
    expect((await timeline('b')).map((x: any[]) => x.slice(0, 2))).toEqual([['Online', iso(t0)], ['DoNotDisturb', iso(t0 + 5000)]]);
    const summary = (await s.req('GET', `/summaries?user_id=b&from=${iso(t0).slice(0, 10)}&to=${iso(t0).slice(0, 10)}&tz=UTC`)).body;
    expect(summary.totals).toEqual({ Online: 5, DoNotDisturb: 15 });
  });

  it('POST /heartbeats takes sessions beside user_ids; GET /config tells clients the timeouts', async () => {
    const r = await s.req('POST', '/heartbeats', { user_ids: ['g1'], sessions: [{ user_id: 'g1', session_id: 'tab-2', active: false }, { user_id: 'g2', session_id: 'x', client: 'gateway/1' }] });
    expect(r.status).toBe(200);
    expect(r.body.results.map((x: any) => x.user_id)).toEqual(['g1', 'g1', 'g2']);
    expect((await status('g1')).sessions).toBe(2);
    expect((await s.req('GET', '/users/g2/sessions')).body.sessions.map((x: any) => [x.session_id, x.client])).toEqual([['x', 'gateway/1']]);
    expect((await s.req('POST', '/heartbeats', {})).status).toBe(422);
    expect((await s.req('GET', '/config')).body).toEqual({ heartbeat_timeout: 60, idle_timeout: 30, max_backfill: 604800 });
    const ingest = await s.key(['ingest']);
    expect((await s.req('GET', '/config', undefined, ingest)).status).toBe(200);
    expect((await s.req('GET', '/config', undefined, null)).status).toBe(401);
  });

  it('streams session events to clients that ask, and state events with the session that caused them', async () => {
    const ctrl = new AbortController();
    const res = await fetch(`${s.url}/events?user_id=ev&sessions=true`, { headers: { authorization: `Bearer ${s.adminKey}` }, signal: ctrl.signal });
    const frames: string[] = [];
    void (async () => {
      try {
        for await (const c of res.body!) frames.push(Buffer.from(c).toString());
      } catch {
        // closed
      }
    })();
    await waitFor('the stream to open', () => s.app.ck.streams.size > 0);
    tick();
    await s.req('POST', '/checkpoints', { user_id: 'ev', session_id: 'laptop', state: 'Busy' });
    await waitFor('two events', () => frames.join('').split('event: ').length - 1 >= 2);
    ctrl.abort();
    const events = frames.join('').split('\n\n').filter((b) => b.includes('event: ')).map((b) => ({
      type: /event: (\w+)/.exec(b)![1], data: JSON.parse(/data: (.*)/.exec(b)![1]!),
    }));
    expect(events.map((e) => [e.type, e.data.state, e.data.session_id]).sort()).toEqual([['session', 'Busy', 'laptop'], ['state', 'Busy', 'laptop']]);
  });
});
