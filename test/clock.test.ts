import { describe, expect, it } from 'vitest';
import { DatabaseClock } from '../src/db/clock.js';
import { migrate } from '../src/db/migrate.js';
import { BACKENDS, openTestDb } from './helpers.js';

describe.each(BACKENDS)('the database clock (%s)', (backend) => {
  it('gives instances whose own clocks disagree by minutes the same time, the database\'s', async () => {
    const db = await openTestDb(backend);
    try {
      await migrate(db);
      const fail = (err: unknown) => {
        throw err;
      };
      const ahead = await DatabaseClock.start(db, fail, { local: () => Date.now() + 180_000 });
      const behind = await DatabaseClock.start(db, fail, { local: () => Date.now() - 95_000 });
      const { rows } = await db.query<{ ms: number }>('SELECT ck_ms(clock_timestamp()) AS ms');
      const [a, b] = [ahead.now(), behind.now()];
      expect(Math.abs(a - b)).toBeLessThan(50);
      expect(Math.abs(a - rows[0]!.ms)).toBeLessThan(250);
      ahead.stop();
      behind.stop();
    } finally {
      await db.close();
      await db.dropSchema();
    }
  });
});
