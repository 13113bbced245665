// Verifies Standard Webhooks signatures (https://www.standardwebhooks.com) in Node receivers. A separate
// entry point (`ck-client/webhooks`), so node:crypto stays out of the browser bundle.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { StateEvent } from './types.js';

/** A ck webhook body (docs/webhooks.md): a state change, or a ping from `POST /webhooks/:id/test`. */
export type WebhookMessage =
  | { type: 'user.state_changed'; timestamp: string; data: StateEvent }
  | { type: 'webhook.test'; timestamp: string; data: { webhook_id: string } };

export class WebhookVerificationError extends Error {
  override name = 'WebhookVerificationError';
}

type HeaderBag = Headers | Record<string, string | string[] | undefined>;

/** Seconds a `webhook-timestamp` may differ from now, either way. */
const TOLERANCE = 5 * 60;

function header(headers: HeaderBag, name: string): string {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? '';
  const bag = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(bag).find((k) => k.toLowerCase() === name);
  const v = key === undefined ? undefined : bag[key];
  return (Array.isArray(v) ? v[0] : v) ?? '';
}

/**
 * Checks a webhook delivery and returns its parsed JSON body; throws WebhookVerificationError otherwise.
 * `body` must be the raw request body, byte for byte (not re-serialized JSON). De-duplicate by the
 * `webhook-id` header: a retry carries the same one.
 *
 * @param secret the endpoint's signing secret, `whsec_<base64>` (a secret from before ck used Standard
 *   Webhooks, `whsec_<base64url>`, is accepted as is: its key bytes are the same)
 * @param headers the request headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`)
 * @example
 * app.post('/ck', express.raw({ type: 'application/json' }), (req, res) => {
 *   const msg = verifyWebhook(process.env.CK_WEBHOOK_SECRET, req.headers, req.body);
 *   if (msg.type === 'user.state_changed') console.log(msg.data.user_id, '->', msg.data.state);
 *   res.sendStatus(204);
 * });
 */
export function verifyWebhook(secret: string, headers: HeaderBag, body: string | Uint8Array, opts: { now?: number } = {}): WebhookMessage {
  const id = header(headers, 'webhook-id');
  const ts = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !ts || !signatures) throw new WebhookVerificationError('missing webhook-id, webhook-timestamp or webhook-signature');
  if (!/^\d+$/.test(ts)) throw new WebhookVerificationError('invalid webhook-timestamp');
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  if (Math.abs(now - Number(ts)) > TOLERANCE) throw new WebhookVerificationError('webhook-timestamp is more than 5 minutes away from now');

  // Node's base64 decoder also reads base64url, so old ck secrets need no conversion here.
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  const raw = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const expected = createHmac('sha256', key).update(`${id}.${ts}.`).update(raw).digest();
  // Several signatures may be sent (key rotation): one valid v1 is enough.
  const ok = signatures.split(' ').some((sig) => {
    const [version, value = ''] = sig.split(',', 2);
    const given = Buffer.from(value, 'base64');
    return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!ok) throw new WebhookVerificationError('no matching signature');
  try {
    return JSON.parse(raw.toString('utf8')) as WebhookMessage;
  } catch {
    throw new WebhookVerificationError('body is not JSON');
  }
}
