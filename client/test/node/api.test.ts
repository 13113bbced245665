// The client against a real ck server (the root build, PGlite in a temp dir, a random port).
import { afterAll, describe, expect, it } from 'vitest';
import { CkClient, type CkError, type StateEvent } from '../../src/index.js';
import { NO_SESSIONS, startServer, waitFor } from '../harness.js';

const { ck: server, sessions } = await startServer({
  CK_TOKEN_SECRET: 'a-token-secret-of-at-least-32-characters',
  CK_IDLE_TIMEOUT: '2',
});
afterAll(() => server.close());

const ck = new CkClient({ url: server.url, token: server.apiKey });
const today = new Date().toISOString().slice(0, 10);

describe('against ck', () => {
  it('start, set, stop; then status, timeline and summaries see it', async () => {
    const me = ck.presence({ userId: 'ann', storage: null });
    await me.start();
    expect(me.connection).toBe('online');
    expect(me.status).toMatchObject({ user_id: 'ann', state: 'Online', online: true });
    expect(await me.set('Busy', { content: { call: 42 } })).toBe('sent');
    expect(await ck.status('ann')).toMatchObject({ state: 'Busy', online: true });
    await me.stop();
    expect(me.connection).toBe('stopped');

    const timeline = await ck.timeline('ann', { from: new Date(Date.now() - 3_600_000), to: new Date() });
    // stop() ended the only session: the user is Offline from then on.
    expect(timeline.map((e) => [e.state, e.source])).toEqual([['Online', 'heartbeat'], ['Busy', 'client'], ['Offline', 'session_end']]);
    expect(timeline[1]).toMatchObject({ content: { call: 42 }, open: false });
    expect(timeline[2]).toMatchObject({ open: true });
    const summary = await ck.summaries('ann', { from: today, to: today, tz: 'UTC' });
    expect(summary).toMatchObject({ user_id: 'ann', tz: 'UTC', from: today, to: today });
    expect(summary.days).toHaveLength(1);
    expect(Object.keys(summary.totals).sort()).toEqual(['Busy', 'Offline', 'Online']);
  });

  it('status of several users, unknown ones left out; null for one unknown user', async () => {
    for (const u of ['bea', 'cid']) await ck.presence({ userId: u, storage: null }).start();
    const got = await ck.status(['cid', 'nobody', 'bea']);
    expect(got.map((s) => s.user_id)).toEqual(['cid', 'bea']);
    expect(await ck.status('nobody')).toBeNull();
  });

  it('heartbeats for many users at once (a gateway)', async () => {
    const results = await ck.heartbeats(['gw-1', 'gw-2', 'gw-3']);
    expect(results.map((r) => [r.user_id, r.state, r.online])).toEqual([['gw-1', 'Online', true], ['gw-2', 'Online', true], ['gw-3', 'Online', true]]);
  });

  it('rejects set() with an unregistered state and keeps going', async () => {
    const me = ck.presence({ userId: 'dan', storage: null });
    await me.start();
    await expect(me.set('NoSuchState')).rejects.toMatchObject({ code: 'http', status: 422 });
    expect(me.connection).toBe('online');
    expect(me.pending).toHaveLength(0);
    await me.stop();
  });

  it('subscribe delivers the changes of the users asked for, in order, once', async () => {
    const got: StateEvent[] = [];
    const sub = ck.subscribe({ userIds: ['eve'] }, (e) => got.push(e));
    await waitFor(() => sub.status === 'open', 'the stream to open');
    const me = ck.presence({ userId: 'eve', storage: null });
    await me.start();
    await ck.presence({ userId: 'not-eve', storage: null }).start();
    await me.set('Busy');
    await me.set('Away', { content: { lunch: true } });
    await waitFor(() => got.length >= 3, 'three events');
    expect(got.map((e) => [e.user_id, e.state, e.previous_state])).toEqual([['eve', 'Online', null], ['eve', 'Busy', 'Online'], ['eve', 'Away', 'Busy']]);
    expect(got[2]!.content).toEqual({ lunch: true });
    expect(typeof got[0]!.id).toBe('string');
    expect(sub.lastEventId).toBe(got[2]!.id);
    sub.close();
    await me.stop();
  });

  it('a per-user token from POST /tokens: getToken is asked again when it expires, and the session goes on', async () => {
    const minted: string[] = [];
    // What an app's backend does for its signed-in user.
    const getToken = async () => {
      const r = await server.req('POST', '/tokens', { user_id: 'fay', scopes: ['ingest', 'read'], ttl: 2 });
      expect(r.status).toBe(201);
      minted.push(r.body.token);
      return r.body.token as string;
    };
    const mine = new CkClient({ url: server.url, getToken });
    const me = mine.presence({ userId: 'fay', storage: null, heartbeatInterval: 1_000 });
    const errors: CkError[] = [];
    me.on('error', (e) => errors.push(e));
    await me.start();
    await new Promise((r) => setTimeout(r, 4_500));
    expect(minted.length).toBeGreaterThanOrEqual(2);
    expect(errors).toEqual([]);
    expect(me.connection).toBe('online');
    expect(await mine.status('fay')).toMatchObject({ state: 'Online' });
    // The token reads only its own user: naming another is a 403 (the same whether they exist or not).
    await expect(mine.status(['fay', 'ann'])).rejects.toMatchObject({ status: 403 });
    expect(await mine.status(['fay'])).toHaveLength(1);
    await me.stop();
  });

  it('a token for another user: 403 stops the presence with an error', async () => {
    const r = await server.req('POST', '/tokens', { user_id: 'gus', scopes: ['ingest', 'read'], ttl: 60 });
    const me = new CkClient({ url: server.url, token: r.body.token }).presence({ userId: 'not-gus', storage: null });
    await expect(me.start()).rejects.toMatchObject({ status: 403 });
    expect(me.connection).toBe('stopped');
  });
});

describe('sessions (needs GET /config)', () => {
  it('reads the timeouts from GET /config', async (ctx) => {
    ctx.skip(!sessions, NO_SESSIONS);
    const cfg = await ck.config();
    expect(cfg).toMatchObject({ sessions: true, heartbeat_timeout: 60, idle_timeout: 2 });
    expect(cfg.max_backfill).toBeGreaterThan(0);
  });

  it('two sessions of one user: the higher-priority state shows; stop() ends one at once', async (ctx) => {
    ctx.skip(!sessions, NO_SESSIONS);
    const a = ck.presence({ userId: 'hal', sessionId: 'desk', client: 'node-test', storage: null });
    const b = ck.presence({ userId: 'hal', sessionId: 'phone', storage: null });
    await a.start();
    await b.start();
    await a.set('Busy');
    expect(await ck.status('hal')).toMatchObject({ state: 'Busy', sessions: 2 });
    expect((await ck.sessions('hal')).map((s) => [s.session_id, s.state, s.client])).toEqual([['desk', 'Busy', 'node-test'], ['phone', 'Online', null]]);
    await a.stop();
    expect((await ck.sessions('hal')).map((s) => s.session_id)).toEqual(['phone']);
    expect(await ck.status('hal')).toMatchObject({ state: 'Online', sessions: 1 });
    await b.stop();
    expect((await ck.status('hal'))!.online).toBe(false);
  });

  it('manual presence outranks sessions until cleared', async (ctx) => {
    ctx.skip(!sessions, NO_SESSIONS);
    const me = ck.presence({ userId: 'ivy', storage: null });
    await me.start();
    await me.set('Busy');
    const s = await me.setManual('DoNotDisturb', { until: Date.now() + 3_600_000 });
    expect(s.state).toBe('DoNotDisturb');
    expect(s.manual?.state).toBe('DoNotDisturb');
    await me.clearManual();
    expect((await ck.status('ivy'))!.state).toBe('Busy');
    await me.stop();
  });

  it('a session reported inactive turns Away after the idle timeout', async (ctx) => {
    ctx.skip(!sessions, NO_SESSIONS);
    const me = ck.presence({ userId: 'jon', storage: null, heartbeatInterval: 500 });
    await me.start();
    me.setActive(false);
    await waitFor(async () => (await ck.status('jon'))?.state === 'Away', 'jon Away', 10_000);
    me.setActive(true);
    await waitFor(async () => (await ck.status('jon'))?.state === 'Online', 'jon Online again', 10_000);
    await me.stop();
  });
});
