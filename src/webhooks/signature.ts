import { createHmac } from 'node:crypto';

/**
 * The `ck-signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed with the
 * webhook's whole secret string. Signing the time lets receivers reject replays (docs/webhooks.md).
 *
 * @example signatureHeader('whsec_...', '{"id":"1",...}', 1795858200) // 't=1795858200,v1=5f2c...'
 */
export function signatureHeader(secret: string, body: string, unixSec: number): string {
  const v1 = createHmac('sha256', secret).update(`${unixSec}.${body}`).digest('hex');
  return `t=${unixSec},v1=${v1}`;
}
