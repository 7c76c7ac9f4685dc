/**
 * Stores a JSON document in one Table entity: gzip, then split into Binary properties of at most
 * 60 KiB (Table limits: 64 KiB per property, 1 MiB per entity, 255 properties). A record with
 * thousands of nodes fits; the limit is reported by name instead of failing obscurely.
 */
import { gzipSync, gunzipSync } from 'node:zlib';
import { ScalerError } from './errors.ts';

const CHUNK = 60 * 1024;
const MAX_CHUNKS = 15; // 15 × 60 KiB ≈ 900 KiB compressed, below the 1 MiB entity limit with room for other properties

export class DocumentTooLargeError extends ScalerError<'STORAGE_DOCUMENT_TOO_LARGE'> {
  override name = 'DocumentTooLargeError';
  constructor(message: string, options?: ErrorOptions) {
    super('STORAGE_DOCUMENT_TOO_LARGE', message, options);
  }
}

/** Properties `docN` (Binary) + `docChunks`. Merge them into an entity. */
export function packJson(value: unknown): Record<string, Uint8Array | number> {
  const zipped = gzipSync(Buffer.from(JSON.stringify(value), 'utf8'));
  const chunks = Math.max(1, Math.ceil(zipped.length / CHUNK));
  if (chunks > MAX_CHUNKS) throw new DocumentTooLargeError(`document is ${zipped.length} bytes compressed; the table limit is ${MAX_CHUNKS * CHUNK}`);
  const out: Record<string, Uint8Array | number> = { docChunks: chunks };
  for (let i = 0; i < chunks; i++) out[`doc${i}`] = new Uint8Array(zipped.subarray(i * CHUNK, (i + 1) * CHUNK));
  return out;
}

/** Inverse of {@link packJson}; `entity` is what `getEntity`/`listEntities` returned. */
export function unpackJson<T>(entity: Record<string, unknown>): T {
  const n = Number(entity.docChunks ?? 0);
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const part = entity[`doc${i}`];
    if (!(part instanceof Uint8Array)) throw new Error(`table entity is missing doc${i}`);
    parts.push(Buffer.from(part));
  }
  return JSON.parse(gunzipSync(Buffer.concat(parts)).toString('utf8')) as T;
}
