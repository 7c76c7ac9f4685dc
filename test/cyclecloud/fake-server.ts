/**
 * A tiny scripted HTTP(S) server on 127.0.0.1 for client tests: each request is recorded and
 * answered by the test's `respond` function (or dropped, or left hanging).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throwaway self-signed certificate for 127.0.0.1 and localhost (openssl), valid one day. */
export function selfSignedCert(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'cc-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-days',
        '1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface RecordedCall {
  method: string;
  /** Path and query as received. */
  url: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
}

export type Reply =
  | { status: number; json?: unknown; text?: string; headers?: Record<string, string> }
  /** Destroy the socket without answering (a reset after the request was sent). */
  | { drop: true }
  /** Never answer (a timeout). */
  | { hang: true };

export interface FakeServer {
  url: string;
  calls: RecordedCall[];
  respond: (call: RecordedCall, index: number) => Reply | Promise<Reply>;
  close(): Promise<void>;
}

export async function startFakeServer(respond: FakeServer['respond'] = () => ({ status: 200, json: {} }), tls?: { key: string; cert: string }): Promise<FakeServer> {
  const calls: RecordedCall[] = [];
  const hanging = new Set<ServerResponse>();
  const fake: FakeServer = { url: '', calls, respond, close: async () => {} };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const u = new URL(req.url ?? '/', 'http://x');
        const call: RecordedCall = {
          method: req.method ?? '',
          url: req.url ?? '',
          path: u.pathname,
          query: u.searchParams,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        calls.push(call);
        const reply = await fake.respond(call, calls.length - 1);
        if ('drop' in reply) {
          req.socket.destroy();
          return;
        }
        if ('hang' in reply) {
          hanging.add(res);
          return;
        }
        const body = reply.json !== undefined ? JSON.stringify(reply.json) : (reply.text ?? '');
        res.writeHead(reply.status, {
          ...(reply.json !== undefined ? { 'content-type': 'application/json' } : { 'content-type': 'text/plain' }),
          ...reply.headers,
        });
        res.end(body);
      })();
    });
  };
  const server: Server = tls ? createHttpsServer({ key: tls.key, cert: tls.cert }, handler) : createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  fake.url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  fake.close = () =>
    new Promise<void>((resolve) => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return fake;
}
