import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 90_000,
    // Two cores shared with other work: at most two files at once (each integration file runs its own ck).
    pool: 'forks',
    maxWorkers: 2,
  },
});
