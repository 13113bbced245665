import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { get } from 'node:http';
import type { Socket } from 'node:net';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
/** Generous: a loaded 2-core machine renders slowly; every wait below polls until this deadline. */
const WAIT = 20_000;
const LOAD_USERS = 1500;

/** GET with the path sent exactly as written (fetch would normalize `..`). */
function rawGet(url: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url);
    get({ hostname, port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c) => (body += c)).on('end', () => resolve({ status: res.statusCode!, body }));
    }).on('error', reject);
  });
}

// Each step may wait up to WAIT several times on a slow machine; tests get room for that.
describe.skipIf(!existsSync(CHROMIUM))('dashboard in headless Chromium (pglite)', { timeout: 90_000 }, () => {
  let s: TestServer;
  let browser: Browser | undefined;
  let page: Page;
  let readKey: string;
  const pageErrors: string[] = [];
  /** Sockets of open /events streams, to drop them from the server side. */
  const streams = new Set<Socket>();
  const count = (selector: string) => page.locator(selector).count();
  const waitForCount = (selector: string, min: number) =>
    page.waitForFunction(([sel, n]) => document.querySelectorAll(sel as string).length >= (n as number), [selector, min], { timeout: WAIT });

  beforeAll(async () => {
    // Real time (the browser's clock), and a long heartbeat timeout so nobody expires mid-test.
    s = await startServer('pglite', { env: { CK_HEARTBEAT_TIMEOUT: '3600' } });
    readKey = await s.key(['read']);
    s.app.server.on('request', (req) => {
      if (req.url?.startsWith('/events')) streams.add(req.socket);
    });
    const at = (hoursAgo: number) => new Date(Date.now() - hoursAgo * 3_600_000).toISOString();
    const history: [string, number, object?][] = [
      ['Online', 5], ['Busy', 4, { call: 'c-17', with: 'Dana' }], ['Away', 3], ['Offline', 2.5], ['Online', 1.5],
    ];
    for (const [state, h, content] of history) {
      const r = await s.req('POST', '/checkpoints', { user_id: 'alice', state, timestamp: at(h), content });
      expect(r.status).toBe(201);
    }
    const load = Array.from({ length: LOAD_USERS }, (_, i) => `load-${String(i).padStart(4, '0')}`);
    expect((await s.req('POST', '/heartbeats', { user_ids: load })).status).toBe(200);
    // Last, so the newest Online: the board lists the most recent change first.
    expect((await s.req('POST', '/heartbeat', { user_id: 'bob' })).status).toBe(200);

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, timezoneId: 'Europe/Berlin', locale: 'en-GB' });
    page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => msg.type() === 'error' && pageErrors.push(msg.text()));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  it('serves the page with security headers and nothing outside public/', async () => {
    const res = await fetch(`${s.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(await res.text()).toContain('<script type="module" src="/js/main.js">');

    const js = await fetch(`${s.url}/js/main.js`);
    expect(js.headers.get('content-type')).toMatch(/^(text|application)\/javascript/);
    await js.body?.cancel();
    const css = await fetch(`${s.url}/css/app.css`);
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    await css.body?.cancel();

    // The API keeps its own headers; the dashboard's CSP is not on it.
    const api = await s.req('GET', '/states');
    expect(api.headers.get('content-security-policy')).toBeNull();

    for (const path of ['/../package.json', '/js/../../package.json', '/js/..%2f..%2fpackage.json', '/%2e%2e/package.json', '/.env']) {
      const r = await rawGet(s.url, path);
      expect(r.status, path).toBeGreaterThanOrEqual(400);
      expect(r.body, path).not.toContain('"dependencies"');
    }
  });

  it('asks for a key, then shows the board grouped by state, capped per group', async () => {
    await page.goto(`${s.url}/`);
    await page.locator('#api-key').fill('ck_not_a_real_key');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.locator('#login-error').filter({ hasText: 'unknown' }).waitFor({ timeout: WAIT });

    await page.locator('#api-key').fill(readKey);
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.locator('#board[data-loaded="true"]').waitFor({ timeout: WAIT });
    await page.locator('#conn[data-status="live"]').waitFor({ timeout: WAIT });
    expect(await page.evaluate(() => sessionStorage.getItem('ck.apiKey'))).toBe(readKey);

    const online = page.locator('[data-state-group="Online"]');
    expect(await online.locator('.count').textContent()).toBe((LOAD_USERS + 2).toLocaleString('en-GB'));
    expect(await online.locator('li[data-user]').count()).toBe(100);
    await online.locator('.more').filter({ hasText: `${(LOAD_USERS + 2 - 100).toLocaleString('en-GB')} not shown` }).waitFor({ timeout: WAIT });
    await expect(online.locator('li[data-user]').first().getAttribute('data-user')).resolves.toBe('bob');
    await online.locator('.more').click();
    await waitForCount('[data-state-group="Online"] li[data-user]', 200);
    expect(await count('[data-state-group="Busy"] li[data-user]')).toBe(0);
  });

  it('moves a user to Busy live when a checkpoint is posted, without reloading', async () => {
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    const r = await s.req('POST', '/checkpoints', { user_id: 'bob', state: 'Busy', content: { ticket: 'T-1' } });
    expect(r.status).toBe(201);
    await page.locator('[data-state-group="Busy"] li[data-user="bob"]').waitFor({ timeout: WAIT });
    await page.locator('[data-state-group="Online"] li[data-user="bob"]').waitFor({ state: 'detached', timeout: WAIT });
    await page.locator('[data-state-group="Busy"] .count').filter({ hasText: /^1$/ }).waitFor({ timeout: WAIT });
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);

    // A user nobody has seen yet appears too.
    await s.req('POST', '/heartbeat', { user_id: 'carol' });
    await page.locator('[data-state-group="Online"] li[data-user="carol"]').waitFor({ timeout: WAIT });
  });

  it('reconnects after the stream drops and replays what it missed (Last-Event-ID)', async () => {
    const sentIds: string[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/events') sentIds.push(r.headers()['last-event-id'] ?? '');
    });
    // Hold reconnects back until the missed change is written, so it can only arrive by replay.
    await page.route('**/events', (route) => route.abort());
    for (const socket of streams) socket.destroy();
    await page.locator('#conn[data-status="reconnecting"]').waitFor({ timeout: WAIT });
    expect((await s.req('POST', '/checkpoints', { user_id: 'bob', state: 'Away' })).status).toBe(201);
    await page.unroute('**/events');
    await page.locator('[data-state-group="Away"] li[data-user="bob"]').waitFor({ timeout: 45_000 });
    await page.locator('#conn[data-status="live"]').waitFor({ timeout: WAIT });
    expect(sentIds.some((id) => /^\d+$/.test(id))).toBe(true);
  });

  it('parses SSE split at any byte and computes local days across DST (browser modules)', async () => {
    // A string, so the test runner's module transform leaves the browser's import() alone.
    const result = await page.evaluate(`(async () => {
      const { SseParser } = await import('/js/sse.js');
      const { startOfDay, localInstant } = await import('/js/time.js');
      const text = 'retry: 1500\\r\\n: comment\\r\\nid: 7\\r\\nevent: state\\r\\ndata: {"a":\\r\\ndata: 1}\\r\\n\\r\\n'
        + 'data: x\\n\\nid: 9\\rdata: y\\r\\r';
      const events = [];
      const parser = new SseParser((e) => events.push(e));
      for (const ch of text) parser.push(ch);
      const iso = (t) => new Date(t).toISOString();
      return {
        events, retry: parser.retry,
        berlinSpring: iso(startOfDay('2026-03-29', 'Europe/Berlin')),
        berlinThreeAm: iso(localInstant('2026-03-29', 180, 'Europe/Berlin')),
        newYorkFall: iso(startOfDay('2026-11-02', 'America/New_York')),
      };
    })()`) as { events: unknown[]; retry: number; berlinSpring: string; berlinThreeAm: string; newYorkFall: string };
    expect(result.events).toEqual([
      { type: 'state', data: '{"a":\n1}', id: '7' },
      { type: 'message', data: 'x', id: '7' },
      { type: 'message', data: 'y', id: '9' },
    ]);
    expect(result.retry).toBe(1500);
    expect(result.berlinSpring).toBe('2026-03-28T23:00:00.000Z');
    expect(result.berlinThreeAm).toBe('2026-03-29T01:00:00.000Z');
    expect(result.newYorkFall).toBe('2026-11-02T05:00:00.000Z');
  });

  it("opens a user's timeline with bands and hover details, and the per-day chart", async () => {
    await page.locator('#filter').fill('alice');
    await page.locator('[data-state-group="Online"] li[data-user="load-0000"]').waitFor({ state: 'detached', timeout: WAIT });
    await page.locator('.chip[data-user="alice"]').click();
    await page.locator('#drawer-title').filter({ hasText: 'alice' }).waitFor({ timeout: WAIT });
    await page.locator('#drawer-state [data-state="Online"]').waitFor({ timeout: WAIT });

    await waitForCount('#timeline rect.band', 1);
    // The widest band: a band of a few seconds is drawn 1 px wide, under its neighbour's edge.
    const bands = page.locator('#timeline rect.band');
    const widest = await bands.evaluateAll((els) => els.reduce((best, el, i) =>
      (Number(el.getAttribute('width')) > Number(els[best]!.getAttribute('width')) ? i : best), 0));
    await bands.nth(widest).hover();
    await page.locator('#tooltip').filter({ hasText: 'Duration' }).waitFor({ timeout: WAIT });

    await waitForCount('#chart rect.seg', 1);
    expect(await page.locator('#chart-range').textContent()).toContain('Europe/Berlin');

    // The week holds all of alice's history (at most 5 h old), Offline gap included.
    await page.getByRole('button', { name: 'Week' }).click();
    await waitForCount('#timeline .lane-label', 7);
    await waitForCount('#timeline rect.band', 5);
    await waitForCount('#timeline rect.band.offline', 1);
    // Grid lines drawn over the bands never take the pointer from them.
    const lineHit = await page.evaluate(() => [...document.querySelectorAll('#timeline line')].some((l) => {
      const r = l.getBoundingClientRect();
      return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === l;
    }));
    expect(lineHit).toBe(false);
    await page.locator('#timeline rect.band[data-state="Busy"]').first().hover();
    await page.locator('#tooltip').filter({ hasText: 'c-17' }).waitFor({ timeout: WAIT });
    await page.mouse.move(5, 5);
    await page.locator('#tooltip').waitFor({ state: 'hidden', timeout: WAIT });

    await mkdir('test-results', { recursive: true });
    await page.screenshot({ path: 'test-results/dashboard.png' });
  });

  it('redraws the chart in another time zone', async () => {
    await page.locator('#tz').selectOption('UTC');
    await page.locator('#chart-range').filter({ hasText: 'UTC' }).waitFor({ timeout: WAIT });
    await waitForCount('#chart[data-tz="UTC"] rect.seg', 1);
    await page.getByRole('button', { name: 'Close' }).click();
    await page.locator('#drawer').waitFor({ state: 'hidden', timeout: WAIT });
    await page.locator('#filter').fill('');
    await page.locator('[data-state-group="Online"] li[data-user="load-0000"]').waitFor({ timeout: WAIT });
    await page.screenshot({ path: 'test-results/dashboard-board.png' });
  });

  it("shows a user's sessions and manual presence, and follows them as they change", async () => {
    const until = new Date(Date.now() + 2 * 3_600_000).toISOString();
    expect((await s.req('POST', '/checkpoints', { user_id: 'dana', session_id: 'laptop', client: 'macOS/14', state: 'Busy' })).status).toBe(201);
    expect((await s.req('POST', '/heartbeat', { user_id: 'dana', session_id: 'phone', client: 'ios/3.2' })).status).toBe(200);
    expect((await s.req('PUT', '/users/dana/presence', { state: 'DoNotDisturb', until })).status).toBe(200);
    await page.locator('#filter').fill('dana');
    await page.locator('.chip[data-user="dana"]').click();
    await page.locator('#drawer-state [data-state="DoNotDisturb"]').waitFor({ timeout: WAIT });
    await page.locator('#sessions tr[data-session="phone"]').filter({ hasText: 'ios/3.2' }).waitFor({ timeout: WAIT });
    const rows = await page.locator('#sessions tbody tr').evaluateAll((trs) => trs.map((tr) => [
      (tr as HTMLElement).dataset.session, tr.children[1]!.textContent, tr.querySelector('[data-state]')?.getAttribute('data-state'),
    ]));
    expect(rows).toEqual([['laptop', 'macOS/14', 'Busy'], ['phone', 'ios/3.2', 'Online']]);
    expect(await page.locator('#sessions-count').textContent()).toBe('2 alive');
    await page.locator(`#manual [data-state="DoNotDisturb"]`).waitFor({ timeout: WAIT });
    expect(await page.locator('#manual [data-until]').getAttribute('data-until')).toBe(until);
    // Cleared: the user is Busy (the laptop outranks the phone) and the card says so without a reload.
    expect((await s.req('DELETE', '/users/dana/presence')).status).toBe(204);
    await page.locator('#drawer-state [data-state="Busy"]').waitFor({ timeout: WAIT });
    await page.locator('#manual').filter({ hasText: 'No manual presence' }).waitFor({ timeout: WAIT });
    // A session that ends leaves the list (the card refreshes while open).
    expect((await s.req('DELETE', '/users/dana/sessions/phone')).status).toBe(204);
    await page.locator('#sessions tr[data-session="phone"]').waitFor({ state: 'detached', timeout: WAIT });
    await page.screenshot({ path: 'test-results/dashboard-sessions.png' });
    await page.getByRole('button', { name: 'Close' }).click();
    await page.locator('#drawer').waitFor({ state: 'hidden', timeout: WAIT });
    await page.locator('#filter').fill('');
  });

  it('logs out: the key leaves session storage and the prompt returns', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.locator('#api-key').waitFor({ timeout: WAIT });
    expect(await page.evaluate(() => sessionStorage.getItem('ck.apiKey'))).toBeNull();
    await page.reload();
    await page.locator('#api-key').waitFor({ timeout: WAIT });
    // No CSP violations or script errors on the way. Failed loads are expected: the wrong key's 401 and
    // the streams the reconnect test cut.
    expect(pageErrors.filter((e) => !e.startsWith('Failed to load resource'))).toEqual([]);
  });
});
