/**
 * A tiny fetch wrapper for the simulator tests: Basic auth from the handle, JSON in and out.
 */
import type { SimulatorHandle } from '../../src/simulator/server.ts';

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, or undefined when empty or not JSON. */
  json: unknown;
}

export interface CallOptions {
  body?: unknown;
  /** Override the Authorization header; null sends none. */
  authorization?: string | null;
}

export function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

export async function call(handle: Pick<SimulatorHandle, 'url' | 'username' | 'password'>, method: string, path: string, options: CallOptions = {}): Promise<HttpResult> {
  const headers: Record<string, string> = {};
  const authorization = options.authorization === undefined ? basic(handle.username, handle.password) : options.authorization;
  if (authorization !== null) headers.authorization = authorization;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${handle.url}${path}`, {
    method,
    headers,
    ...(options.body !== undefined ? { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : (JSON.parse(text) as unknown);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}
