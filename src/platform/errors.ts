/**
 * The one base of every error this product throws on purpose (STYLE: `name`, a stable `code`, `cause`).
 *
 * Callers branch on `code`, never on the message or the class: {@link isScalerError} narrows an
 * `unknown` from a catch, also across duplicate copies of this module (a bundle and its tests), and
 * {@link codeOf} reads the code of any error (ours, Node's `ECONNREFUSED`, the Azure SDK's) without
 * a cast. The logger prints the `cause` chain by code and message only (see `log.ts`).
 *
 * Pure: imports nothing, so every layer (the simulator and the CLI too) may use it.
 */

/** Marks our errors so a check still works when two copies of this module are loaded. */
const BRAND = Symbol.for('cyclecloud-scaler.ScalerError');

export class ScalerError<C extends string = string> extends Error {
  override name = 'ScalerError';
  /** Stable, machine-readable: part of the contract where an error reaches a caller; never reworded. */
  readonly code: C;

  constructor(code: C, message: string, options?: ErrorOptions) {
    // A `cause: undefined` key would still show as an own property: pass the option only when there is one.
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    Object.defineProperty(this, BRAND, { value: true, enumerable: false });
  }
}

/**
 * True when `error` is a {@link ScalerError} (with `code`, or one of `codes`, when given). Use this
 * at catch sites instead of `(error as { code?: string }).code`.
 */
export function isScalerError(error: unknown): error is ScalerError;
export function isScalerError<C extends string>(error: unknown, code: C | readonly C[]): error is ScalerError<C>;
export function isScalerError(error: unknown, code?: string | readonly string[]): error is ScalerError {
  if (!(error instanceof Error)) return false;
  if (!(error instanceof ScalerError) && (error as unknown as Record<symbol, unknown>)[BRAND] !== true) return false;
  if (code === undefined) return true;
  const actual = (error as { code?: unknown }).code;
  if (typeof actual !== 'string') return false;
  return typeof code === 'string' ? actual === code : code.includes(actual);
}

/**
 * The `code` of any thrown value when it is a non-empty string: ours (`LEDGER_NOT_FOUND`), Node's
 * system errors (`ECONNREFUSED`, `ENOENT`), undici's (`UND_ERR_CONNECT_TIMEOUT`) or the Azure SDK's
 * (`TableNotFound`); otherwise undefined.
 */
export function codeOf(error: unknown): string | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code !== '' ? code : undefined;
}
