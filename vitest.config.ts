import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    // test/webhooks-hung.test.ts collects garbage on purpose.
    execArgv: ['--expose-gc'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: files run in two forks; each file isolates its own database schema.
    pool: 'forks',
    maxWorkers: 2,
  },
});
