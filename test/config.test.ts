import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('config', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 8080, host: '127.0.0.1', databaseUrl: undefined, dataDir: './data', heartbeatTimeoutSec: 60,
      maxBackfillSec: 604_800, flushIntervalMs: 1000, sweepIntervalSec: 10, scheduler: 'app', rateLimit: 0,
      retentionDays: undefined, corsOrigins: [], logLevel: 'info', schema: 'public', heartbeatLane: true,
      webhookRotationOverlapSec: 86_400, webhookAllowPrivate: false,
    });
    expect(loadConfig({ CK_WEBHOOK_ALLOW_PRIVATE: 'true', CK_WEBHOOK_ROTATION_OVERLAP: '60' }))
      .toMatchObject({ webhookAllowPrivate: true, webhookRotationOverlapSec: 60 });
    expect(loadConfig({ CK_HEARTBEAT_LANE: 'off' }).heartbeatLane).toBe(false);
  });

  it.each([
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['CK_HEARTBEAT_TIMEOUT', '0'],
    ['CK_MAX_BACKFILL', '-1'],
    ['CK_SCHEDULER', 'cron'],
    ['CK_DB_SCHEMA', 'Robert"); DROP'],
    ['CK_HEARTBEAT_LANE', 'yes'],
    ['CK_WEBHOOK_ALLOW_PRIVATE', '1'],
    ['CK_WEBHOOK_ROTATION_OVERLAP', '-5'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(name));
  });

  it('keeps the flush interval well inside the heartbeat timeout', () => {
    expect(() => loadConfig({ CK_HEARTBEAT_TIMEOUT: '2', CK_FLUSH_INTERVAL_MS: '1000' })).toThrow(ConfigError);
    expect(loadConfig({ CK_HEARTBEAT_TIMEOUT: '4', CK_FLUSH_INTERVAL_MS: '1000' }).flushIntervalMs).toBe(1000);
  });

  it('requires retention longer than the back-fill window', () => {
    expect(() => loadConfig({ CK_RETENTION_DAYS: '3' })).toThrow(/CK_RETENTION_DAYS/);
    expect(loadConfig({ CK_RETENTION_DAYS: '30' }).retentionDays).toBe(30);
  });
});
