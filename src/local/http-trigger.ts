/**
 * The HTTP trigger: routes under the host's `routePrefix` with `{param}` templates, `methods`
 * (405 otherwise), function keys for `authLevel: 'function' | 'admin'` (`x-functions-key` header or
 * `code` query; 401 otherwise), the contract's 256 KiB body limit (413), 404 for unknown routes,
 * and a generic 500 when a handler throws.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
// Default import: Node's CommonJS named-export detection misses the library's classes.
import functions from '@azure/functions';
import type { Cookie, HttpResponseInit, InvocationContext } from '@azure/functions';

const { HttpRequest, HttpResponse } = functions;
import type { Logger } from '../platform/log.ts';
import type { HttpRegistration } from './registrations.ts';

/** docs/api.md §4: bodies over 256 KiB get 413. */
export const DEFAULT_MAX_BODY_BYTES = 256 * 1024;

type Segment = { literal: string } | { param: string; optional: boolean; catchAll: boolean };

export interface CompiledRoute {
  registration: HttpRegistration;
  template: string;
  segments: Segment[];
}

/** Compiles a route template such as `clusters/{cluster}/status` (`{x?}` optional, `{*rest}` catch-all, `{id:int}` constraint ignored). */
export function compileRoute(registration: HttpRegistration, template: string): CompiledRoute {
  const segments: Segment[] = template
    .split('/')
    .filter((s) => s !== '')
    .map((s) => {
      const m = /^\{(\*)?([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\?)?\}$/.exec(s);
      return m ? { param: m[2]!, optional: m[3] === '?', catchAll: m[1] === '*' } : { literal: s.toLowerCase() };
    });
  return { registration, template, segments };
}

/** Route params when `parts` (decoded path segments after the prefix) match, else undefined. */
export function matchRoute(route: CompiledRoute, parts: string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  let i = 0;
  for (const seg of route.segments) {
    if ('literal' in seg) {
      if (parts[i]?.toLowerCase() !== seg.literal) return undefined;
      i++;
    } else if (seg.catchAll) {
      if (i < parts.length) params[seg.param] = parts.slice(i).join('/');
      i = parts.length;
    } else if (i < parts.length) {
      params[seg.param] = parts[i]!;
      i++;
    } else if (!seg.optional) {
      return undefined;
    }
  }
  return i === parts.length ? params : undefined;
}

export interface HttpDispatcherOptions {
  routes: CompiledRoute[];
  routePrefix: string;
  /** Required for `function`/`admin` routes. */
  functionKey: string | undefined;
  maxBodyBytes: number;
  logger: Logger;
  /** Runs the function (logging, context); throws when it failed. */
  run(registration: HttpRegistration, invoke: (ctx: InvocationContext) => Promise<unknown>): Promise<unknown>;
  /** Base URL the handler sees in `request.url`. */
  baseUrl(): string;
}

function problem(res: ServerResponse, status: number, title: string, detail?: string, headers: Record<string, string> = {}, extra: Record<string, string> = {}): void {
  const text = JSON.stringify({ type: 'about:blank', title, status, ...(detail ? { detail } : {}), ...extra });
  res.writeHead(status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function keyMatches(expected: string, given: string | null | undefined): boolean {
  if (!given) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Reads the body, stopping as soon as it exceeds `limit` (returns undefined then). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

function serializeCookie(c: Cookie): string {
  const parts = [`${c.name}=${c.value}`];
  if (c.domain) parts.push(`Domain=${c.domain}`);
  if (c.path) parts.push(`Path=${c.path}`);
  if (c.expires) parts.push(`Expires=${new Date(c.expires).toUTCString()}`);
  if (c.maxAge !== undefined) parts.push(`Max-Age=${c.maxAge}`);
  if (c.secure) parts.push('Secure');
  if (c.httpOnly) parts.push('HttpOnly');
  if (c.sameSite) parts.push(`SameSite=${c.sameSite}`);
  return parts.join('; ');
}

async function writeResult(req: IncomingMessage, res: ServerResponse, result: unknown): Promise<void> {
  // No returned response: the host answers 204 No Content.
  const response = result instanceof HttpResponse ? result : new HttpResponse((result ?? { status: 204 }) as HttpResponseInit);
  const body = req.method === 'HEAD' ? Buffer.alloc(0) : Buffer.from(await response.arrayBuffer());
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') headers[name] = value;
  });
  const cookies = [...response.headers.getSetCookie(), ...response.cookies.map(serializeCookie)];
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  if (req.method !== 'HEAD') headers['content-length'] = String(body.length);
  res.writeHead(response.status, headers);
  res.end(body);
}

/** Creates the `node:http` request listener. */
export function createHttpDispatcher(o: HttpDispatcherOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const prefix = o.routePrefix ? `/${o.routePrefix.toLowerCase()}` : '';
  return (req, res) => {
    void dispatch(req, res).catch((error: unknown) => {
      o.logger.error('local host could not answer an HTTP request', { error });
      if (!res.headersSent) problem(res, 500, 'Internal Server Error');
      else res.destroy();
    });
  };

  async function dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = (req.method ?? 'GET').toUpperCase();
    const path = url.pathname;
    if (prefix && path.toLowerCase() !== prefix && !path.toLowerCase().startsWith(`${prefix}/`)) {
      return problem(res, 404, 'Not Found');
    }
    let parts: string[];
    try {
      parts = path
        .slice(prefix.length)
        .split('/')
        .filter((s) => s !== '')
        .map(decodeURIComponent);
    } catch {
      return problem(res, 400, 'Bad Request', 'the path is not valid percent-encoding');
    }
    const matches = o.routes.flatMap((route) => {
      const params = matchRoute(route, parts);
      return params ? [{ route, params }] : [];
    });
    if (matches.length === 0) return problem(res, 404, 'Not Found');
    const hit = matches.find((m) => m.route.registration.options.methods.includes(method as never));
    if (!hit) {
      const allow = [...new Set(matches.flatMap((m) => m.route.registration.options.methods))].join(', ');
      return problem(res, 405, 'Method Not Allowed', undefined, { allow });
    }
    const { registration } = hit.route;
    if (registration.options.authLevel !== 'anonymous') {
      const given = req.headers['x-functions-key'];
      const key = (Array.isArray(given) ? given[0] : given) ?? url.searchParams.get('code');
      if (!o.functionKey || !keyMatches(o.functionKey, key)) {
        // problem+json like every other refusal; `error` kept for callers that read it.
        return problem(
          res,
          401,
          'Unauthorized',
          'a valid function key is required in the x-functions-key header or the code query parameter (npm start prints it)',
          {},
          { error: 'Unauthorized' },
        );
      }
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > o.maxBodyBytes) {
      // Answer without reading the body; closing the connection stops the upload.
      return problem(res, 413, 'Content Too Large', `request bodies are limited to ${o.maxBodyBytes} bytes`, { connection: 'close' });
    }
    const bytes = await readBody(req, o.maxBodyBytes);
    if (!bytes) {
      return problem(res, 413, 'Content Too Large', `request bodies are limited to ${o.maxBodyBytes} bytes`, { connection: 'close' });
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const request = new HttpRequest({
      method,
      url: `${o.baseUrl()}${url.pathname}${url.search}`,
      headers,
      params: hit.params,
      body: { bytes },
    });
    let result: unknown;
    try {
      result = await o.run(registration, (ctx) => Promise.resolve(registration.options.handler(request, ctx)));
    } catch {
      // The invocation wrapper logged the error; the caller gets no details (no stack, no secrets).
      return problem(res, 500, 'Internal Server Error', 'the function failed; see the host log for its invocation id');
    }
    await writeResult(req, res, result);
  }
}
