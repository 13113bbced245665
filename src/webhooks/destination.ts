import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * Where a webhook may be sent: the one owner of the SSRF rule (docs/webhooks.md, "Safe destinations").
 * Registration and every delivery attempt call `resolveDestination`; the attempt then connects to the
 * address it returned (never resolving again), so DNS cannot swap in an internal address in between.
 */

/** Address ranges a webhook must not reach unless CK_WEBHOOK_ALLOW_PRIVATE=true, with why. */
const RANGES: [string, number, 'ipv4' | 'ipv6', string][] = [
  ['0.0.0.0', 8, 'ipv4', 'unspecified'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['100.64.0.0', 10, 'ipv4', 'private (CGNAT)'],
  ['169.254.0.0', 16, 'ipv4', 'link-local (cloud metadata)'],
  ['192.0.0.0', 24, 'ipv4', 'private (IETF protocol assignments)'],
  ['198.18.0.0', 15, 'ipv4', 'private (benchmarking)'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved or broadcast'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fc00::', 7, 'ipv6', 'unique-local'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];

// One list per reason, so a refusal can say which rule it hit. BlockList matches IPv4-mapped IPv6
// addresses (::ffff:127.0.0.1) against the IPv4 ranges.
const LISTS = RANGES.map(([net, prefix, family, reason]) => {
  const list = new BlockList();
  list.addSubnet(net, prefix, family);
  return { list, reason };
});

/** Why `address` is refused, or undefined when it is a public address. */
export function refusedBecause(address: string): string | undefined {
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  return LISTS.find(({ list }) => list.check(address, family))?.reason;
}

/** The only schemes a webhook may use (the route validates input with it; delivery re-checks). */
export const isWebProtocol = (url: URL) => url.protocol === 'http:' || url.protocol === 'https:';

export class DestinationRefused extends Error {
  override name = 'DestinationRefused';
}

/** The checked addresses of a host, in resolver order; a request connects to these only. */
export type Destination = { address: string; family: 4 | 6 }[];

/**
 * Resolves a webhook URL's host and checks every address it has. Throws DestinationRefused with the
 * reason (unresolvable, or an internal address) unless `allowPrivate`.
 *
 * @example await resolveDestination(new URL('https://example.com/hook'), false) // [{ address: '93.184.215.14', family: 4 }]
 */
export async function resolveDestination(url: URL, allowPrivate: boolean): Promise<Destination> {
  if (!isWebProtocol(url)) throw new DestinationRefused('only http and https are allowed');
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  let addresses: { address: string; family: number }[];
  if (isIP(host)) {
    addresses = [{ address: host, family: isIP(host) }];
  } else {
    try {
      addresses = await lookup(host, { all: true, verbatim: true });
    } catch (err) {
      throw new DestinationRefused(`"${host}" does not resolve (${(err as { code?: string }).code ?? 'DNS error'})`);
    }
    if (addresses.length === 0) throw new DestinationRefused(`"${host}" does not resolve`);
  }
  if (!allowPrivate) {
    // Every address, not just the first: a host with one internal address is refused outright.
    for (const { address } of addresses) {
      const reason = refusedBecause(address);
      if (reason) {
        const via = address === host ? '' : `"${host}" resolves to `;
        throw new DestinationRefused(`${via}${address}, a ${reason} address (set CK_WEBHOOK_ALLOW_PRIVATE=true to allow)`);
      }
    }
  }
  return addresses.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
}
