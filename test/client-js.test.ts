import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './helpers.js';

describe('GET /client.js (pglite)', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('pglite', { env: { CK_CORS_ORIGINS: 'https://app.example' } });
  });
  afterAll(() => s?.close());

  it('serves ck-client as an ES module any origin may import, revalidated by ETag, without a key', async () => {
    const res = await fetch(`${s.url}/client.js`, { headers: { origin: 'https://elsewhere.example' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const body = await res.text();
    expect(body).toMatch(/export\s*\{[^}]*\bCkClient\b/);
    const etag = res.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await fetch(`${s.url}/client.js`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
  });
});
