/**
 * A settings document given as JSON text (the tenants document, the price table): parsed and
 * validated, with its first problem named by path (`tenants.cfd.weight: must be > 0`).
 */
import type { z } from 'zod';

export type DocumentResult<T> = { ok: true; value: T } | { ok: false; problem: string };

export function parseJsonDocument<T>(schema: z.ZodType<T>, text: string): DocumentResult<T> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON.parse's message: it quotes the text, which may come from a Key Vault secret.
    return { ok: false, problem: 'is not JSON' };
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0]!;
  // A bad record key (a tenant's name) carries the key's own problem inside.
  const inner = issue.code === 'invalid_key' ? issue.issues[0]?.message : undefined;
  return { ok: false, problem: `${issue.path.length ? `${issue.path.join('.')}: ` : ''}${inner ?? issue.message}` };
}
