import { createHmac, randomBytes } from 'node:crypto';

/** A new signing secret: `whsec_` + standard base64 of 32 random bytes (Standard Webhooks). */
export const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/** The HMAC key of a `whsec_<base64>` secret: the decoded bytes, as every Standard Webhooks library uses. */
const keyOf = (secret: string) => Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');

/**
 * The Standard Webhooks headers for one attempt. `webhook-signature` holds one `v1,<base64 HMAC-SHA256 of
 * "id.timestamp.body">` per secret, space-separated (during a key rotation: the new and the previous).
 *
 * @example signedHeaders(['whsec_...'], '4711', 1795858200, '{"type":...}')
 *   // { 'webhook-id': '4711', 'webhook-timestamp': '1795858200', 'webhook-signature': 'v1,K5oZ...' }
 */
export function signedHeaders(secrets: string[], id: string, unixSec: number, body: string): Record<string, string> {
  const signatures = secrets.map((s) => `v1,${createHmac('sha256', keyOf(s)).update(`${id}.${unixSec}.${body}`).digest('base64')}`);
  return { 'webhook-id': id, 'webhook-timestamp': String(unixSec), 'webhook-signature': signatures.join(' ') };
}
