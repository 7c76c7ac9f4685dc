/**
 * Where callbacks may go, without DNS: the policy, the class of an address, and the checks of a
 * URL's scheme, credentials, allow-list and IP-literal host. Intake uses it to refuse a
 * `callbackUrl` that can never be called; the send-time check (src/tracking/callback-guard.ts)
 * applies it again after resolving the host.
 */
import { BlockList, isIP } from 'node:net';

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

export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
}

/** `retryable`: the name could not be resolved now (DNS may recover); every other refusal is final. */
export type TargetVerdict = { ok: true; addresses: ResolvedAddress[] } | { ok: false; reason: string; retryable?: boolean };

/** Applies the policy to the URL's scheme and host (no DNS). */
export function checkUrl(url: URL, policy: CallbackTargetPolicy): { ok: true; host: string; listed: boolean } | { ok: false; reason: string } {
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

export function checkAddresses(host: string, listed: boolean, addresses: ResolvedAddress[], policy: CallbackTargetPolicy): TargetVerdict {
  if (addresses.length === 0) return { ok: false, reason: `host ${host} has no address` };
  for (const a of addresses) {
    const cls = addressClass(a.address);
    if (cls === 'public' || listed) continue;
    if (cls === 'loopback' && policy.localDevelopment) continue;
    return { ok: false, reason: `host ${host} resolves to a ${cls} address (${a.address}); list it in CALLBACK_ALLOWED_HOSTS to allow it` };
  }
  return { ok: true, addresses };
}

/**
 * The part of the send-time check that needs no DNS, for intake: scheme, credentials, allow-list
 * and, for a host that is an IP literal, its class. Null when the send-time check could still pass;
 * otherwise why it never will (a URL the scaler would accept and never call is refused up front).
 */
export function refusedAtIntake(urlText: string, policy: CallbackTargetPolicy): string | null {
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    return 'the callbackUrl is not a URL';
  }
  const first = checkUrl(url, policy);
  if (!first.ok) return first.reason;
  if (isIP(first.host) === 0) return null;
  const verdict = checkAddresses(first.host, first.listed, [{ address: first.host, family: isIP(first.host) }], policy);
  return verdict.ok ? null : verdict.reason.replace(/resolves to/, 'is');
}

/** The send-time check: scheme, allow-list, then every resolved address. Never throws. */
