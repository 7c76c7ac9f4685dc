/**
 * The hostile-input edges of intake (issue 14), kept apart from the intake logic itself:
 *
 * - {@link decodeIntakeMessage}: what a queue trigger hands over (object, JSON text with or
 *   without a UTF-8 BOM, a Buffer, base64 text when the host did not decode it) → one JSON object,
 *   or the reason it is not one. Never throws.
 * - `usableRequestId` (`src/ledger/schemas.ts`): a continue message's id is used as a storage key only when it is a
 *   valid docs/api.md §3 requestId; anything else is recorded under the queue message id.
 * - {@link sendAdmitted}: the queue message of an admitted request. A request that does not fit a
 *   queue message (Azure: 64 KiB of base64 text, so about 48 KiB of JSON) travels by reference:
 *   the ledger already holds it, and the message only names it. A send that fails after the
 *   admit is left to the sweeper, which re-sends lost intake messages: the caller is told 202
 *   because the request WILL be carried out, never "failed" for something that then happens.
 */
import type { Logger } from '../platform/log.ts';
import { decodeQueueMessage, encodeQueueMessage } from '../platform/storage.ts';
import type { RequestMessage } from '../ledger/schemas.ts';
import type { QueueSender } from './submit.ts';

/** Azure Storage's limit on a queue message (the base64 text). */
export const MAX_QUEUE_MESSAGE_CHARS = 64 * 1024;
/** `reason` of the continue message that carries an admitted request by reference. */
export const BY_REFERENCE_REASON = 'intake-by-reference';

const BOM = '\uFEFF';
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export type DecodedIntake = { ok: true; body: Record<string, unknown> } | { ok: false; reason: string };

const isPlainObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** One JSON object from whatever the trigger handed over; a UTF-8 BOM is ignored, as over HTTP. */
export function decodeIntakeMessage(message: unknown): DecodedIntake {
  let value: unknown = message;
  if (message instanceof Uint8Array) {
    try {
      value = new TextDecoder('utf-8', { fatal: true }).decode(message);
    } catch {
      return { ok: false, reason: 'the message is not valid UTF-8' };
    }
  }
  if (typeof value === 'string') {
    const text = (value.startsWith(BOM) ? value.slice(BOM.length) : value).trim();
    const parsed = parseJson(text) ?? parseJson(base64Text(text));
    if (parsed === undefined) return { ok: false, reason: 'the message is not JSON' };
    value = parsed;
  }
  if (!isPlainObject(value)) return { ok: false, reason: 'the message is not a JSON object' };
  return { ok: true, body: value };
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined || text === '') return undefined;
  const clean = text.startsWith(BOM) ? text.slice(BOM.length) : text;
  try {
    return JSON.parse(clean) as unknown;
  } catch {
    return undefined;
  }
}

/** The UTF-8 text of strict base64 (a host that passed the message undecoded), else undefined. */
function base64Text(text: string): string | undefined {
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0 || compact.length % 4 !== 0 || !BASE64.test(compact)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(decodeQueueMessage(compact), 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * A value from an invalid message kept on its record (e.g. its cluster): at most `max` characters
 * of well-formed text without control characters, or null when it is not a string.
 */
export function recordableText(raw: unknown, max = 128): string | null {
  if (typeof raw !== 'string') return null;
  // Through UTF-8 and back: lone surrogates (also one a cut could make) become U+FFFD.
  return Buffer.from(raw.slice(0, max), 'utf8')
    .toString('utf8')
    .replace(/\p{Cc}/gu, '\uFFFD');
}

/** What goes on the queue for an admitted request: itself, or a reference when it does not fit. */
export function queueBodyFor(message: RequestMessage): unknown {
  if (encodeQueueMessage(message).length <= MAX_QUEUE_MESSAGE_CHARS) return message;
  return { $scaler: 'continue', requestId: message.requestId, reason: BY_REFERENCE_REASON };
}

/**
 * Sends the admitted request's message. Never throws: a failed send leaves the request `queued`,
 * which the snapshot timer's sweeper re-sends (`wakeLostRequests` in `src/app/jobs.ts`).
 */
export async function sendAdmitted(queue: QueueSender, message: RequestMessage, logger?: Logger): Promise<'sent' | 'by-reference' | 'left-to-sweeper'> {
  const body = queueBodyFor(message);
  const byReference = body !== message;
  try {
    await queue.send(body);
  } catch (error) {
    logger?.warn('the intake message could not be sent; the sweeper will send it', { requestId: message.requestId, error });
    return 'left-to-sweeper';
  }
  if (byReference) logger?.info('request too large for a queue message: sent by reference', { requestId: message.requestId });
  return byReference ? 'by-reference' : 'sent';
}
