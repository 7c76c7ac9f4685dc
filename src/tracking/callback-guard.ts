/**
 * Where callbacks may go (docs/api.md §4, README "Security"). The Function App is VNet-integrated to
 * reach CycleCloud, so a `callbackUrl` is a server-side request forgery path unless checked:
 *
 * - https only; plain http only to a loopback host in local development;
 * - `CALLBACK_ALLOWED_HOSTS` (comma-separated host names or IP literals): when set, only those
 *   hosts; when empty, any host whose addresses are all public;
 * - loopback, private (RFC 1918, CGNAT, unique-local), link-local (cloud metadata), multicast,
 *   unspecified, reserved and the Azure platform address 168.63.129.16 are refused unless the host
 *   is listed (loopback is also allowed in local development);
 * - checked at send time after DNS resolution, and again inside the connection's own lookup, so
 *   a name that re-resolves to an internal address between the check and the connect (DNS
 *   rebinding) is refused too.
 */
import { BlockList, isIP } from 'node:net';
import { lookup as dnsLookup } from 'node:dns/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { codeOf } from '../platform/errors.ts';

export interface ResolvedAddress {
  address: string;
  family: number;
}

export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export interface CallbackTargetPolicy {
  /** Lower-case host names or IP literals; empty = any public host. */
  allowedHosts: readonly string[];
  /** Local development: http and loopback addresses allowed for loopback hosts. */
  localDevelopment: boolean;
  /** Default: the system resolver (`dns.lookup`, all addresses). */
  resolve?: Resolver;
}

export type AddressClass = 'public' | 'loopback' | 'private' | 'link-local' | 'multicast' | 'unspecified' | 'reserved' | 'azure-platform';

const ranges: [AddressClass, string, number, 'ipv4' | 'ipv6'][] = [
  ['unspecified', '0.0.0.0', 8, 'ipv4'],
  ['private', '10.0.0.0', 8, 'ipv4'],
  ['private', '100.64.0.0', 10, 'ipv4'],
  ['loopback', '127.0.0.0', 8, 'ipv4'],
  ['link-local', '169.254.0.0', 16, 'ipv4'],
  ['private', '172.16.0.0', 12, 'ipv4'],
  ['reserved', '192.0.0.0', 24, 'ipv4'],
  ['reserved', '192.0.2.0', 24, 'ipv4'],
  ['private', '192.168.0.0', 16, 'ipv4'],
  ['reserved', '198.18.0.0', 15, 'ipv4'],
  ['reserved', '198.51.100.0', 24, 'ipv4'],
  ['reserved', '203.0.113.0', 24, 'ipv4'],
  ['multicast', '224.0.0.0', 4, 'ipv4'],
  ['reserved', '240.0.0.0', 4, 'ipv4'],
  ['azure-platform', '168.63.129.16', 32, 'ipv4'],
  ['unspecified', '::', 128, 'ipv6'],
  ['loopback', '::1', 128, 'ipv6'],
  ['private', 'fc00::', 7, 'ipv6'],
  ['link-local', 'fe80::', 10, 'ipv6'],
  ['multicast', 'ff00::', 8, 'ipv6'],
  ['reserved', '64:ff9b::', 96, 'ipv6'],
  ['reserved', '2001:db8::', 32, 'ipv6'],
  ['reserved', '100::', 64, 'ipv6'],
];

const lists = new Map<AddressClass, BlockList>();
for (const [cls, net, prefix, type] of ranges) {
  let list = lists.get(cls);
  if (!list) lists.set(cls, (list = new BlockList()));
  list.addSubnet(net, prefix, type);
}

/** The class of an IP address; IPv4-mapped IPv6 (`::ffff:10.0.0.1`) is classed as its IPv4. */
export function addressClass(address: string): AddressClass {
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  const ip = mapped ? mapped[1]! : bare;
  const family = isIP(ip);
  if (family === 0) return 'reserved';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (type === 'ipv6' && /^::ffff:/i.test(ip)) return 'reserved'; // mapped form in hex: refuse rather than guess
  for (const [cls, list] of lists) if (list.check(ip, type)) return cls;
  return 'public';
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1']);

function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
}

const systemResolver: Resolver = async (hostname) => (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family }));

/** `retryable`: the name could not be resolved now (DNS may recover); every other refusal is final. */
export type TargetVerdict = { ok: true; addresses: ResolvedAddress[] } | { ok: false; reason: string; retryable?: boolean };

/** Applies the policy to the URL's scheme and host (no DNS). */
function checkUrl(url: URL, policy: CallbackTargetPolicy): { ok: true; host: string; listed: boolean } | { ok: false; reason: string } {
  const host = hostOf(url);
  const listed = policy.allowedHosts.includes(host);
  const loopbackName = LOOPBACK_NAMES.has(host) || (isIP(host) !== 0 && addressClass(host) === 'loopback');
  if (url.protocol === 'http:') {
    if (!(policy.localDevelopment && loopbackName)) return { ok: false, reason: 'http callbacks are allowed only to loopback hosts in local development; use https' };
  } else if (url.protocol !== 'https:') {
    return { ok: false, reason: `scheme ${url.protocol} is not allowed; use https` };
  }
  if (url.username || url.password) return { ok: false, reason: 'the URL carries credentials' };
  if (policy.allowedHosts.length > 0 && !listed && !(policy.localDevelopment && loopbackName)) {
    return { ok: false, reason: `host ${host} is not in CALLBACK_ALLOWED_HOSTS` };
  }
  return { ok: true, host, listed };
}

function checkAddresses(host: string, listed: boolean, addresses: ResolvedAddress[], policy: CallbackTargetPolicy): TargetVerdict {
  if (addresses.length === 0) return { ok: false, reason: `host ${host} has no address` };
  for (const a of addresses) {
    const cls = addressClass(a.address);
    if (cls === 'public' || listed) continue;
    if (cls === 'loopback' && policy.localDevelopment) continue;
    return { ok: false, reason: `host ${host} resolves to a ${cls} address (${a.address}); list it in CALLBACK_ALLOWED_HOSTS to allow it` };
  }
  return { ok: true, addresses };
}

/** The send-time check: scheme, allow-list, then every resolved address. Never throws. */
export async function checkCallbackTarget(urlText: string, policy: CallbackTargetPolicy): Promise<TargetVerdict> {
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    return { ok: false, reason: 'the callbackUrl is not a URL' };
  }
  const first = checkUrl(url, policy);
  if (!first.ok) return first;
  let addresses: ResolvedAddress[];
  if (isIP(first.host) !== 0) addresses = [{ address: first.host, family: isIP(first.host) }];
  else {
    try {
      addresses = await (policy.resolve ?? systemResolver)(first.host);
    } catch (error) {
      return { ok: false, reason: `host ${first.host} could not be resolved (${codeOf(error) ?? 'error'})`, retryable: true };
    }
  }
  return checkAddresses(first.host, first.listed, addresses, policy);
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | ResolvedAddress[], family?: number) => void;

/**
 * The `lookup` of the connection itself: resolves again and connects only to addresses the
 * policy allows (a name that changed its answer since {@link checkCallbackTarget} is refused).
 */
export function guardedLookup(policy: CallbackTargetPolicy): (hostname: string, options: { all?: boolean }, callback: LookupCallback) => void {
  return (hostname, options, callback) => {
    const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
    const listed = policy.allowedHosts.includes(host);
    const resolve = isIP(host) !== 0 ? Promise.resolve([{ address: host, family: isIP(host) }]) : (policy.resolve ?? systemResolver)(host);
    resolve.then(
      (addresses) => {
        const verdict = checkAddresses(host, listed, addresses, policy);
        if (!verdict.ok) return callback(Object.assign(new Error(verdict.reason), { code: 'CALLBACK_TARGET_REFUSED' }), '');
        if (options?.all) return callback(null, verdict.addresses);
        return callback(null, verdict.addresses[0]!.address, verdict.addresses[0]!.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, ''),
    );
  };
}

export interface GuardedPostResult {
  status: number;
  retryAfter: string | null;
}

/**
 * POSTs `body` with node's own client, its connection resolved through {@link guardedLookup}, no
 * redirects followed, and the response never read beyond its status line and headers.
 */
export function postGuarded(urlText: string, headers: Record<string, string>, body: string, policy: CallbackTargetPolicy, timeoutMs: number): Promise<GuardedPostResult> {
  const url = new URL(urlText);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        lookup: guardedLookup(policy) as never,
        timeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        const retryAfter = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, retryAfter: typeof retryAfter === 'string' ? retryAfter : null });
        // The receiver's body is not ours to read or log.
        res.destroy();
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`timed out after ${timeoutMs} ms`), { name: 'TimeoutError' })));
    req.on('error', reject);
    req.end(body);
  });
}
