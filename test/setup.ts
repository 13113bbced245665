import { beforeEach } from 'vitest';

// Whether a test of this file failed: its databases are then kept for inspection (helpers.ts).
let failed = false;
beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    failed = true;
  });
});

export const anyTestFailed = () => failed;
