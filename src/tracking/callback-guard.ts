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
import { isIP } from 'node:net';
import { lookup as dnsLookup } from 'node:dns/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { codeOf } from '../platform/errors.ts';
import { checkAddresses, checkUrl, type CallbackTargetPolicy, type ResolvedAddress, type Resolver, type TargetVerdict } from '../platform/callback-target.ts';

export {
  addressClass,
  refusedAtIntake,
  type AddressClass,
  type CallbackTargetPolicy,
  type ResolvedAddress,
  type Resolver,
  type TargetVerdict,
} from '../platform/callback-target.ts';

const systemResolver: Resolver = async (hostname) => (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family }));

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
