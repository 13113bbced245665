// ck-client in headless Chromium (Debian's /usr/bin/chromium through playwright-core), loaded as a page
// would: `import { CkClient } from '/client.js'`.
import { existsSync } from 'node:fs';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Ck, NO_SESSIONS, startServer, waitFor } from '../harness.js';
import { type PageServer, startPageServer } from './page-server.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

declare global {
  interface Window {
    ckClient: typeof import('../../src/index.js');
    ck: any;
    me: any;
    log: string[];
  }
}

describe.skipIf(!existsSync(CHROMIUM))('in Chromium', { timeout: 60_000 }, () => {
  let server: Ck;
  let sessions: boolean;
  let pages: PageServer;
  let browser: Browser;
  let context: BrowserContext;
  const errors: string[] = [];

  /** A user's per-user token, as the app's backend would mint it. */
  const tokenFor = async (user: string) => (await server.req('POST', '/tokens', { user_id: user, scopes: ['ingest', 'read'], ttl: 600 })).body.token as string;

  /** A tab with the client loaded from /client.js and one presence for `user`, started. */
  async function tab(user: string, opts: Record<string, unknown> = {}, path = '/page.html'): Promise<Page> {
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(pages.url + path);
    const token = await tokenFor(user);
    await page.waitForFunction(() => window.ckClient);
    await page.evaluate(async ([user, token, opts]) => {
      const { CkClient } = window.ckClient;
      window.log = [];
      window.ck = new CkClient({ token });
      window.me = window.ck.presence({ userId: user, trackActivity: true, ...opts });
      window.me.on('connection', (c: string) => window.log.push(`connection:${c}`));
      window.me.on('error', (e: { code: string }) => window.log.push(`error:${e.code}`));
      await window.me.start();
    }, [user, token, opts] as const);
    return page;
  }

  const status = async (user: string) => (await server.req('GET', `/status/${user}`)).body;
  const sessionsOf = async (user: string) => (await server.req('GET', `/users/${user}/sessions`)).body.sessions ?? [];

  beforeAll(async () => {
    ({ ck: server, sessions } = await startServer({ CK_TOKEN_SECRET: 'a-token-secret-of-at-least-32-characters', CK_IDLE_TIMEOUT: '3' }));
    pages = await startPageServer(server.url);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  });
  afterAll(async () => {
    await browser?.close();
    await pages?.close();
    await server?.close();
    expect(errors).toEqual([]);
  });

  const fresh = async () => {
    await context?.close();
    context = await browser.newContext();
  };

  it('loads from /client.js, keeps a session, sets state, and times heartbeats from a Worker', async () => {
    await fresh();
    const page = await tab('amy');
    expect(await page.evaluate(() => window.me.connection)).toBe('online');
    expect(page.workers()).toHaveLength(1); // the heartbeat timer
    expect(await page.evaluate(() => window.me.set('Busy', { content: { call: 42 } }))).toBe('sent');
    expect(await status('amy')).toMatchObject({ state: 'Busy', online: true });
    // A tab keeps its session id across a reload (sessionStorage).
    const id = await page.evaluate(() => window.me.sessionId);
    await page.reload();
    expect(await page.evaluate(() => sessionStorage.getItem('ck-client:session'))).toBe(id);
  });

  it('under a CSP without blob: workers it falls back to the page timers and still beats', async () => {
    await fresh();
    const page = await tab('bob', { heartbeatInterval: 300 }, '/strict.html');
    expect(page.workers()).toHaveLength(0);
    const before = pages.seen.filter((r) => r.path === '/heartbeat').length;
    await page.waitForTimeout(1_500);
    expect(pages.seen.filter((r) => r.path === '/heartbeat').length - before).toBeGreaterThanOrEqual(3);
    expect(await page.evaluate(() => window.log)).toEqual(['connection:connecting', 'connection:online']);
  });

  it('offline: checkpoints made offline are back-filled in order when the network returns', async () => {
    await fresh();
    const page = await tab('cat');
    await context.setOffline(true);
    const t1 = Date.now();
    expect(await page.evaluate(() => window.me.set('Away', { content: { n: 1 } }))).toBe('queued');
    await page.waitForTimeout(300);
    const t2 = Date.now();
    expect(await page.evaluate(() => window.me.set('Busy', { content: { n: 2 } }))).toBe('queued');
    const stored = await page.evaluate(() => Object.entries(localStorage).filter(([k]) => k.startsWith('ck-client:queue:cat:')));
    expect(JSON.parse(stored[0]![1]).map((c: { state: string }) => c.state)).toEqual(['Away', 'Busy']);
    await context.setOffline(false); // the 'online' event sends them at once
    await waitFor(async () => (await status('cat'))?.state === 'Busy', 'the queue to drain', 10_000);
    const timeline = (await server.req('GET', `/checkpoints?user_id=cat&from=${new Date(t1 - 60_000).toISOString()}`)).body.checkpoints;
    expect(timeline.map((c: { state: string }) => c.state)).toEqual(['Online', 'Away', 'Busy']);
    expect(Math.abs(Date.parse(timeline[1].timestamp) - t1)).toBeLessThan(1_000);
    expect(Math.abs(Date.parse(timeline[2].timestamp) - t2)).toBeLessThan(1_000);
    expect(Date.parse(timeline[2].timestamp)).toBeGreaterThan(Date.parse(timeline[1].timestamp));
    expect(await page.evaluate(() => Object.keys(localStorage).some((k) => k.startsWith('ck-client:queue:')))).toBe(false);
  });

  it('back/forward cache and freezing: pagehide/freeze stop the session, pageshow (persisted)/resume start it again', async () => {
    await fresh();
    const page = await tab('dee');
    await page.evaluate(() => {
      dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true }));
    });
    expect(await page.evaluate(() => window.me.connection)).toBe('stopped');
    await page.evaluate(() => dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true })));
    await page.waitForFunction(() => window.me.connection === 'online');
    // The same for a page the browser freezes (Page Lifecycle) and resumes.
    await page.evaluate(() => document.dispatchEvent(new Event('freeze')));
    expect(await page.evaluate(() => window.me.connection)).toBe('stopped');
    await page.evaluate(() => document.dispatchEvent(new Event('resume')));
    await page.waitForFunction(() => window.me.connection === 'online');
    const cycle = ['connection:connecting', 'connection:online', 'connection:stopped'];
    expect(await page.evaluate(() => window.log)).toEqual([...cycle, ...cycle, 'connection:connecting', 'connection:online']);
  });

  it('input and visibility decide active; each change heartbeats at once', async () => {
    await fresh();
    const page = await tab('hal', { idleTimeout: 1 });
    const beats = () => pages.seen.filter((r) => r.path === '/heartbeat').length;
    const n = beats();
    await page.waitForFunction(() => window.me.active === false, null, { timeout: 5_000 }); // 1 s without input
    await waitFor(() => beats() === n + 1, 'a heartbeat when idle');
    await page.mouse.move(30, 30);
    await page.waitForFunction(() => window.me.active === true);
    await waitFor(() => beats() === n + 2, 'a heartbeat on input');
    // The tab is hidden (as when the user switches tabs): inactive at once, whatever the input.
    await page.evaluate(() => {
      Object.defineProperty(document, 'hidden', { value: true, configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    expect(await page.evaluate(() => window.me.active)).toBe(false);
    await page.mouse.move(40, 40);
    expect(await page.evaluate(() => window.me.active)).toBe(false);
    await waitFor(() => beats() === n + 3, 'a heartbeat when hidden');
  });

  it('two tabs of one user are two sessions; the user shows the higher-priority state', async (ctx) => {
    ctx.skip(!sessions, NO_SESSIONS);
    await fresh();
    const a = await tab('eve');
    const b = await tab('eve');
    const [sa, sb] = await Promise.all([a, b].map((p) => p.evaluate(() => window.me.sessionId)));
    expect(sa).not.toBe(sb);
    await a.evaluate(() => window.me.set('Busy'));
    const s = await status('eve');
    expect(s).toMatchObject({ state: 'Busy', sessions: 2 });
    expect((await sessionsOf('eve')).map((x: { session_id: string }) => x.session_id).sort()).toEqual([sa, sb].sort());
  });

  it('closing a tab ends its session within 1 s', async (ctx) => {
    ctx.skip(!sessions, NO_SESSIONS);
    await fresh();
    const a = await tab('fox');
    const b = await tab('fox');
    const gone = await a.evaluate(() => window.me.sessionId);
    await a.evaluate(() => window.me.set('Busy'));
    const closed = Date.now();
    await a.close();
    await waitFor(async () => !(await sessionsOf('fox')).some((x: { session_id: string }) => x.session_id === gone), 'the session to end', 1_000, 20);
    expect(Date.now() - closed).toBeLessThan(1_000);
    expect((await status('fox')).state).toBe('Online');
    await b.close();
  });

  it('a tab with no input for the idle timeout makes its session Away', async (ctx) => {
    ctx.skip(!sessions, NO_SESSIONS);
    await fresh();
    const page = await tab('gil');
    await waitFor(async () => (await status('gil')).state === 'Away', 'Away after 3 s idle', 15_000, 200);
    await page.mouse.move(10, 10);
    await page.mouse.move(20, 20);
    await waitFor(async () => (await status('gil')).state === 'Online', 'Online after input', 10_000, 200);
  });
});
