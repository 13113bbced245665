import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { verifyWebhook, WebhookVerificationError } from '../../src/webhooks.js';

// The reference implementation signs; ours verifies.
const secret = `whsec_${Buffer.from('a-32-byte-secret-for-the-tests!!').toString('base64')}`;
const other = `whsec_${Buffer.from('another-secret-another-secret!!!').toString('base64')}`;
// A body as ck sends it.
const body = JSON.stringify({
  type: 'user.state_changed', timestamp: '2026-11-28T09:30:00.000Z',
  data: { id: '4711', user_id: 'alice', session_id: null, state: 'Busy', previous_state: 'Online', timestamp: '2026-11-28T09:30:00.000Z', source: 'client', content: null },
});

function signed(at = new Date(), s = secret, id = 'msg_1', payload = body) {
  const sig = new Webhook(s).sign(id, at, payload);
  return { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': sig };
}

describe('verifyWebhook', () => {
  it('accepts what standardwebhooks signs, from a plain object, Headers or a Buffer body', () => {
    const h = signed();
    expect(verifyWebhook(secret, h, body)).toEqual(JSON.parse(body));
    expect(verifyWebhook(secret, new Headers(h), Buffer.from(body))).toEqual(JSON.parse(body));
    expect(verifyWebhook(secret, { 'Webhook-Id': h['webhook-id'], 'WEBHOOK-TIMESTAMP': h['webhook-timestamp'], 'webhook-signature': [h['webhook-signature']] }, body)).toBeTruthy();
    // And the reference accepts the same delivery.
    expect(new Webhook(secret).verify(body, h)).toEqual(JSON.parse(body));
  });

  it('accepts any one valid signature among several (key rotation)', () => {
    const h = signed();
    const old = signed(new Date(), other)['webhook-signature'];
    expect(verifyWebhook(secret, { ...h, 'webhook-signature': `v2,abc ${old} ${h['webhook-signature']}` }, body)).toBeTruthy();
  });

  it('rejects a changed body, a wrong secret, a foreign version, and missing headers', () => {
    const h = signed();
    expect(() => verifyWebhook(secret, h, body.replace('Busy', 'Away'))).toThrow(WebhookVerificationError);
    expect(() => verifyWebhook(other, h, body)).toThrow('no matching signature');
    expect(() => verifyWebhook(secret, { ...h, 'webhook-signature': h['webhook-signature'].replace('v1,', 'v2,') }, body)).toThrow('no matching signature');
    expect(() => verifyWebhook(secret, { ...h, 'webhook-id': 'msg_2' }, body)).toThrow('no matching signature');
    expect(() => verifyWebhook(secret, { 'webhook-id': 'x' }, body)).toThrow('missing');
  });

  it('accepts a secret in the base64url form ck issued before Standard Webhooks (same key bytes)', () => {
    const h = signed();
    const old = `whsec_${Buffer.from(secret.slice(6), 'base64').toString('base64url')}`;
    expect(old).not.toBe(secret);
    const msg = verifyWebhook(old, h, body);
    expect(msg.type === 'user.state_changed' && msg.data.state).toBe('Busy');
  });

  it('allows 5 minutes of clock difference either way, no more', () => {
    const now = Date.now();
    expect(verifyWebhook(secret, signed(new Date(now - 299_000)), body, { now })).toBeTruthy();
    expect(verifyWebhook(secret, signed(new Date(now + 299_000)), body, { now })).toBeTruthy();
    expect(() => verifyWebhook(secret, signed(new Date(now - 301_000)), body, { now })).toThrow('5 minutes');
    expect(() => verifyWebhook(secret, signed(new Date(now + 301_000)), body, { now })).toThrow('5 minutes');
  });
});
