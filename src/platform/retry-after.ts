/**
 * `Retry-After` (RFC 9110 §10.2.3), read the same way wherever an answer carries it (CycleCloud,
 * callback receivers): delay-seconds or an HTTP date.
 */

/** Milliseconds from `nowMs`; undefined if absent or unreadable. A date in the past means "now". */
export function parseRetryAfterMs(value: string | string[] | null | undefined, nowMs: number): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  if (!/[a-z]/i.test(text)) return undefined; // a negative or odd number is not a date either
  const date = Date.parse(text);
  return Number.isFinite(date) ? Math.max(0, date - nowMs) : undefined;
}
