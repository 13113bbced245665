import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ck = (args: string[], env: Record<string, string>) =>
  run(process.execPath, ['bin/ck.js', ...args], { env: { ...process.env, LOG_LEVEL: 'silent', DATABASE_URL: '', ...env } });

// Runs the built CLI (npm test builds dist/ first) on a PGlite data dir.
describe('ck CLI', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ck-cli-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('migrates, creates, lists and revokes keys', async () => {
    const env = { CK_DATA_DIR: dir };
    expect((await ck(['migrate'], env)).stdout).toMatch(/applied migrations 1, 2/);
    expect((await ck(['migrate'], env)).stdout).toMatch(/up to date/);
    const created = await ck(['keys', 'create', '--name', 'desk', '--scopes', 'ingest,read'], env);
    const key = /ck_([0-9a-f]{12})_[A-Za-z0-9_-]{43}/.exec(created.stdout);
    expect(key).not.toBeNull();
    const listed = (await ck(['keys', 'list'], env)).stdout;
    expect(listed).toContain(key![1]);
    expect(listed).toContain('ingest,read');
    expect(listed).not.toContain(key![0]); // never the secret
    await ck(['keys', 'revoke', key![1]!], env);
    expect((await ck(['keys', 'list'], env)).stdout).not.toContain(key![1]);
    await expect(ck(['keys', 'create', '--scopes', 'root'], env)).rejects.toThrow(/unknown scope/);
    expect((await ck(['keys', 'generate'], env)).stdout).toMatch(/^ck_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\n$/);
  }, 60_000);

  it('fails with a message naming a bad variable', async () => {
    await expect(ck(['migrate'], { CK_DATA_DIR: dir, CK_HEARTBEAT_TIMEOUT: 'soon' })).rejects.toThrow(/CK_HEARTBEAT_TIMEOUT/);
  });
});
