/**
 * A small HTTP API on loopback for CLI tests: the real route handlers over fake deps, behind a
 * minimal host that checks the function key (as the Functions host does) and maps routes.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import functions from '@azure/functions';
import { ROUTES } from '../../src/http/routes.ts';
import type { HttpDeps } from '../../src/http/deps.ts';

export const TEST_KEY = 'cli-test-function-key-5f2a9c';

export interface FakeApi {
  url: string;
  /** Every call the CLI made: method, path (without query), key header sent or not. */
  calls: { method: string; path: string; keyed: boolean; body: string }[];
  close(): Promise<void>;
}

const compiled = ROUTES.map((r) => ({
  route: r,
  pattern: new RegExp(`^/api/${r.route.replace(/[.]/g, '\\.').replace(/\{(\w+)\}/g, '(?<$1>[^/]+)')}$`),
}));

export async function startFakeApi(deps: HttpDeps): Promise<FakeApi> {
  const calls: FakeApi['calls'] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
    calls.push({ method: req.method ?? '', path: url.pathname, keyed: req.headers['x-functions-key'] !== undefined, body: body.toString('utf8') });
    const match = compiled.map((c) => ({ c, m: c.pattern.exec(url.pathname) })).find((x) => x.m && x.c.route.methods.includes(req.method as never));
    if (!match) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"no such route"}');
      return;
    }
    if (match.c.route.authLevel === 'function' && req.headers['x-functions-key'] !== TEST_KEY) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}');
      return;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
    const request = new functions.HttpRequest({
      method: req.method ?? 'GET',
      url: url.toString(),
      headers,
      params: { ...match.m!.groups },
      ...(body.length ? { body: { bytes: body } } : {}),
    });
    const answer = await match.c.route.handler(deps, request);
    res.writeHead(answer.status ?? 200, (answer.headers ?? {}) as Record<string, string>);
    res.end(answer.jsonBody === undefined ? '' : JSON.stringify(answer.jsonBody));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
