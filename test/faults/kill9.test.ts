import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyString } from '../../src/auth/keys.js';
import { BACKENDS } from '../helpers.js';
import { newTarget, type Target, withDb } from './database.js';
import { expectConsistentTimeline, startLoad, userIds } from './load.js';
import { call, startService, stopAll } from './process.js';
import { waitFor } from '../wait.js';

describe.each(BACKENDS)('kill -9 during mixed ingest load (%s)', (backend) => {
  const targets: Target[] = [];
  afterAll(async () => {
    await stopAll();
    for (const t of targets) await t.remove();
  });

  it('keeps every acknowledged checkpoint, and the timeline stays consistent after a restart', async () => {
    const target = await newTarget(backend);
    targets.push(target);
    const key = generateKeyString();
    const env = { ...target.env, CK_API_KEY: key };

    const svc = await startService(env);
    const load = startLoad(svc.url, key, userIds('k9-', 50));
    let exit;
    try {
      await waitFor('150 acknowledged checkpoints', () => load.acked.length >= 150, 60_000);
      exit = await svc.kill9();
    } finally {
      await load.stop();
    }
    expect(exit.signal).toBe('SIGKILL');
    const acked = [...load.acked];

    // Same database: the restarted service recovers it and serves again.
    const again = await startService(env);
    const after = await call(again.url, key, 'POST', '/checkpoints', { user_id: 'k9-after', state: 'Busy' });
    expect(after.status).toBe(201);
    acked.push({ id: after.body.id, user_id: 'k9-after', state: 'Busy' });
    expect((await again.terminate()).code).toBe(0);

    await withDb(target, (db) => expectConsistentTimeline(db, acked));
  }, 120_000);
});
