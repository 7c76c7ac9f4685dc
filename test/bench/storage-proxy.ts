/**
 * A counting proxy in front of azurite's queue or table endpoint, for benches: every storage round
 * trip the scaler makes goes through it and is counted (by method), so a figure like "storage round
 * trips per request" is measured, not estimated. Bodies are streamed through untouched; SharedKey
 * signatures do not cover the Host header, so they stay valid.
 */
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CountingProxy {
  port: number;
  /** Requests forwarded since start (or the last reset), by HTTP method. */
  counts(): Record<string, number>;
  /** Requests forwarded by method and table or queue (`PUT scalerLedger`, `GET scale-requests`), the most first. */
  byTarget(): Record<string, number>;
  total(): number;
  /** The most requests matching `watch` that were ever in flight at once. */
  mostInFlight(): number;
  reset(): void;
  close(): Promise<void>;
}

export async function countingProxy(targetPort: number, watch: (method: string, path: string) => boolean = () => false): Promise<CountingProxy> {
  let byMethod: Record<string, number> = {};
  let inFlight = 0;
  let most = 0;
  let byTarget = new Map<string, number>();
  const server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    byMethod[method] = (byMethod[method] ?? 0) + 1;
    // /<account>/<table>(PartitionKey=…) or /<account>/<queue>/messages…
    const target = `${method} ${(req.url ?? '').split('?')[0]!.split('/')[2]?.replace(/\(.*$/, '') ?? ''}`;
    byTarget.set(target, (byTarget.get(target) ?? 0) + 1);
    if (watch(method, (req.url ?? '').split('?')[0]!)) {
      inFlight += 1;
      most = Math.max(most, inFlight);
      res.once('close', () => {
        inFlight -= 1;
      });
    }
    const upstream = httpRequest({ host: '127.0.0.1', port: targetPort, method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    counts: () => ({ ...byMethod }),
    byTarget: () => Object.fromEntries([...byTarget].sort((a, b) => b[1] - a[1])),
    total: () => Object.values(byMethod).reduce((a, b) => a + b, 0),
    mostInFlight: () => most,
    reset: () => {
      byMethod = {};
      most = inFlight;
      byTarget = new Map();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
