/**
 * One error base: every error family the product throws is a ScalerError with its old name, code and
 * message (codes are part of the contract); guards narrow without casts; the logger keeps the cause
 * chain by code and message only, and never a secret.
 */
import { describe, expect, it, afterEach } from 'vitest';
import { codeOf, isScalerError, ScalerError } from '../../src/platform/errors.ts';
import { clearRegisteredSecrets, registerSecret } from '../../src/platform/log.ts';
import { formatForTerminal } from '../../src/platform/console-format.ts';
import { CredentialError } from '../../src/platform/credentials.ts';
import { DocumentTooLargeError } from '../../src/platform/table-json.ts';
import { RetailPricesError } from '../../src/platform/retail-prices.ts';
import { ConfigError } from '../../src/platform/config.ts';
import { HostlistError } from '../../src/slurm/hostlist.ts';
import { SnapshotStoreError } from '../../src/snapshots/store.ts';
import { CapacityMemoryError } from '../../src/snapshots/capacity-store.ts';
import { SimulatorError } from '../../src/simulator/model.ts';
import { FilterSyntaxError } from '../../src/simulator/filter.ts';
import { CycleCloudError, isCycleCloudError } from '../../src/cyclecloud/errors.ts';
import { CliError } from '../../src/cli/client.ts';
import { ClaimLost, SnapshotUnavailableError, SubmitError } from '../../src/requests/submit.ts';
import { LedgerError } from '../../src/ledger/ledger.ts';
import { LeaseRefused } from '../../src/ledger/lease.ts';
import { ReservationConflictError, SnapshotBehindReservationsError } from '../../src/requests/reservations.ts';
import { TrackerStoreError } from '../../src/tracking/store.ts';
import { LocalHostError } from '../../src/local/registrations.ts';
import { captureLogs } from '../helpers/log-capture.ts';

const root = new Error('socket hang up');

/** Each family as its callers build it, with the name, code and message it had before the base existed. */
const families: Array<[Error, string, string, string]> = [
  [new CredentialError('SECRET_NOT_FOUND', 'secret "cc" does not exist', { cause: root, secretName: 'cc' }), 'CredentialError', 'SECRET_NOT_FOUND', 'secret "cc" does not exist'],
  [new DocumentTooLargeError('document is 2 bytes', { cause: root }), 'DocumentTooLargeError', 'STORAGE_DOCUMENT_TOO_LARGE', 'document is 2 bytes'],
  [new RetailPricesError('prices page 1: 500', { cause: root }), 'RetailPricesError', 'RETAIL_PRICES_UNAVAILABLE', 'prices page 1: 500'],
  [new ConfigError('PORT', 'must be a whole number', { cause: root }), 'ConfigError', 'CONFIG_INVALID', 'Setting PORT must be a whole number'],
  [new HostlistError('unbalanced "]"', { cause: root }), 'HostlistError', 'SLURM_BAD_HOSTLIST', 'unbalanced "]"'],
  [new SnapshotStoreError('SNAPSHOT_STORE_CONTENDED', 'contended', { cause: root }), 'SnapshotStoreError', 'SNAPSHOT_STORE_CONTENDED', 'contended'],
  [new CapacityMemoryError('CAPACITY_MEMORY_CONTENDED', 'contended', { cause: root }), 'CapacityMemoryError', 'CAPACITY_MEMORY_CONTENDED', 'contended'],
  [new SimulatorError('SIM_NOT_FOUND', 'no cluster x', { cause: root }), 'SimulatorError', 'SIM_NOT_FOUND', 'no cluster x'],
  [new FilterSyntaxError('filter: unterminated string at 3', { cause: root }), 'FilterSyntaxError', 'SIM_FILTER_SYNTAX', 'filter: unterminated string at 3'],
  [new CycleCloudError('CC_THROTTLED', 'throttled', { cause: root, status: 429 }), 'CycleCloudError', 'CC_THROTTLED', 'throttled'],
  [new CliError('CLI_NETWORK', 'cannot reach', { cause: root }), 'CliError', 'CLI_NETWORK', 'cannot reach'],
  [new SnapshotUnavailableError('stale', { cause: root }), 'SnapshotUnavailableError', 'PLAN_STALE_SNAPSHOT', 'stale'],
  [new SnapshotUnavailableError('no such cluster', { cause: root, permanent: true }), 'SnapshotUnavailableError', 'PLAN_UNKNOWN_CLUSTER', 'no such cluster'],
  [new SubmitError('SUBMIT_UNRESOLVED', 'unresolved', { cause: root }), 'SubmitError', 'SUBMIT_UNRESOLVED', 'unresolved'],
  [new ClaimLost('claimed first', { cause: root }), 'ClaimLost', 'SUBMIT_CLAIM_LOST', 'claimed first'],
  [new LedgerError('LEDGER_NOT_FOUND', 'no entry', { cause: root }), 'LedgerError', 'LEDGER_NOT_FOUND', 'no entry'],
  [new LeaseRefused('lease expired', { cause: root }), 'LeaseRefused', 'LEASE_REFUSED', 'lease expired'],
  [new ReservationConflictError('RESERVATION_CONTENTION', 'contended', { cause: root }), 'ReservationConflictError', 'RESERVATION_CONTENTION', 'contended'],
  [new SnapshotBehindReservationsError('RESERVATION_SNAPSHOT_BEHIND', 'behind', { cause: root }), 'SnapshotBehindReservationsError', 'RESERVATION_SNAPSHOT_BEHIND', 'behind'],
  [new TrackerStoreError('TRACKER_CONFLICT', 'conflict', { cause: root }), 'TrackerStoreError', 'TRACKER_CONFLICT', 'conflict'],
  [new LocalHostError('LOCAL_BINDING', 'bad binding', { cause: root }), 'LocalHostError', 'LOCAL_BINDING', 'bad binding'],
];

describe('ScalerError', () => {
  afterEach(() => clearRegisteredSecrets());

  it.each(families.map(([error, name, code, message]) => ({ error, name, code, message })))(
    '$name keeps its name, code, message and cause, under one base',
    ({ error, name, code, message }) => {
      expect(error).toBeInstanceOf(ScalerError);
      expect(error).toBeInstanceOf(Error);
      expect(error.name).toBe(name);
      expect((error as ScalerError).code).toBe(code);
      expect(error.message).toBe(message);
      expect(error.cause).toBe(root);
      expect(isScalerError(error, code)).toBe(true);
      expect(isScalerError(error, 'SOME_OTHER_CODE')).toBe(false);
    },
  );

  it('covers every error class the product declares (a new one must join the table above)', async () => {
    const { readFileSync, readdirSync, statSync } = await import('node:fs');
    const { join } = await import('node:path');
    const walk = (dir: string): string[] => readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : n.endsWith('.ts') ? [join(dir, n)] : []));
    const declared = walk(join(import.meta.dirname, '../../src'))
      .flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/export class (\w+) extends (\w+)/g)])
      .filter((m) => m[2] === 'Error' || m[2] === 'ScalerError' || m[2] === 'ContentionError')
      .map((m) => m[1]);
    expect(declared.filter((name) => !families.some(([, n]) => n === name))).toEqual([]);
    expect(declared.length).toBeGreaterThanOrEqual(16);
  });

  it('adds no own `cause` key when there is none, so JSON of an error stays as it was', () => {
    const error = new LedgerError('LEDGER_CONTENTION', 'busy');
    expect(Object.hasOwn(error, 'cause')).toBe(false);
    expect(JSON.parse(JSON.stringify(error))).toEqual({ name: 'LedgerError', code: 'LEDGER_CONTENTION' });
  });

  it('isScalerError narrows by code or by a list of codes, and refuses look-alikes', () => {
    const error: unknown = new SubmitError('SUBMIT_NOT_LISTED_YET', 'not listed yet', { retryInMs: 5_000 });
    expect(isScalerError(error)).toBe(true);
    expect(isScalerError(error, ['SUBMIT_UNRESOLVED', 'SUBMIT_NOT_LISTED_YET'])).toBe(true);
    expect(isScalerError(error, ['SUBMIT_UNRESOLVED'])).toBe(false);
    if (isScalerError(error, 'SUBMIT_NOT_LISTED_YET')) {
      const code: 'SUBMIT_NOT_LISTED_YET' = error.code; // narrowed: no cast needed
      expect(code).toBe('SUBMIT_NOT_LISTED_YET');
    }
    // An Error with a `code` field (Node, the Azure SDK) is not ours; neither is a plain object.
    expect(isScalerError(Object.assign(new Error('x'), { code: 'LEDGER_NOT_FOUND' }), 'LEDGER_NOT_FOUND')).toBe(false);
    expect(isScalerError({ name: 'LedgerError', code: 'LEDGER_NOT_FOUND', message: 'x' })).toBe(false);
    expect(isScalerError(undefined)).toBe(false);
    expect(isScalerError('LEDGER_NOT_FOUND')).toBe(false);
  });

  it('isScalerError recognises errors from a second copy of the module (a bundle beside its tests)', async () => {
    // A query string makes the loader evaluate the file again: a second class, a second brand lookup.
    const specifier = '../../src/platform/errors.ts?second-copy';
    const copy = (await import(specifier)) as typeof import('../../src/platform/errors.ts');
    expect(copy.ScalerError).not.toBe(ScalerError);
    const foreign = new copy.ScalerError('LEDGER_NOT_FOUND', 'from the other copy');
    expect(foreign).not.toBeInstanceOf(ScalerError);
    expect(isScalerError(foreign, 'LEDGER_NOT_FOUND')).toBe(true);
    expect(isCycleCloudError(new copy.ScalerError('CC_AUTH', 'not a CycleCloudError by name'))).toBe(false);
  });

  it('imports nothing, so every folder (the pure cores too) may depend on it', async () => {
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(new URL('../../src/platform/errors.ts', import.meta.url), 'utf8');
    expect(text).not.toMatch(/^\s*import\s/m);
    expect(text).not.toMatch(/import\(/);
  });

  it('codeOf reads a string code from anything thrown, without a cast at the catch site', () => {
    expect(codeOf(new LedgerError('LEDGER_NOT_FOUND', 'x'))).toBe('LEDGER_NOT_FOUND');
    expect(codeOf(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }))).toBe('ECONNREFUSED');
    expect(codeOf({ code: 'TableNotFound' })).toBe('TableNotFound');
    expect(codeOf({ code: 42 })).toBeUndefined();
    expect(codeOf({ code: '' })).toBeUndefined();
    expect(codeOf(new Error('plain'))).toBeUndefined();
    expect(codeOf(null)).toBeUndefined();
    expect(codeOf('ECONNREFUSED')).toBeUndefined();
  });
});

describe('the logger keeps the cause chain', () => {
  afterEach(() => clearRegisteredSecrets());

  it('logs SUBMIT_UNRESOLVED with the CycleCloud code behind it, and the socket error behind that', () => {
    const logs = captureLogs();
    const socket = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const cc = new CycleCloudError('CC_UNAVAILABLE', 'POST /clusters/hpc/nodes/create failed', { cause: socket, ambiguous: true });
    logs.logger.warn('submission unresolved', { error: new SubmitError('SUBMIT_UNRESOLVED', 'could not settle the create', { cause: cc }) });
    expect(logs.entries()[0]!.error).toEqual({
      name: 'SubmitError',
      message: 'could not settle the create',
      code: 'SUBMIT_UNRESOLVED',
      cause: {
        name: 'CycleCloudError',
        message: 'POST /clusters/hpc/nodes/create failed',
        code: 'CC_UNAVAILABLE',
        cause: { name: 'Error', message: 'socket hang up', code: 'ECONNRESET' },
      },
    });
  });

  it('never prints a secret from a cause: its message is scrubbed and its request, headers and other fields are not copied', () => {
    const password = 'Sup3r-Secret-Pw';
    const basic = `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`;
    registerSecret(password);
    registerSecret(basic);
    const cc = new CycleCloudError('CC_AUTH', 'unauthorized', {
      status: 401,
      cause: Object.assign(new Error(`login as admin:${password} refused`), { code: 'E_AUTH', headers: { authorization: basic }, config: { password } }),
      request: { method: 'GET', url: 'https://cc/clusters', headers: { authorization: basic } },
      response: { status: 401, headers: {} },
    });
    const logs = captureLogs();
    logs.logger.error('poll failed', { error: new LedgerError('LEDGER_CONTENTION', 'gave up', { cause: cc }) });
    expect(logs.lines).toContainNoSecret([password, basic]);
    const cause = (logs.entries()[0]!.error as { cause: { cause: Record<string, unknown> } }).cause.cause;
    expect(cause).toEqual({ name: 'Error', message: 'login as admin:[redacted] refused', code: 'E_AUTH' });
  });

  it('survives a cycle, cuts a very long chain, and keeps only code and message of a non-Error cause', () => {
    const logs = captureLogs();
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    logs.logger.error('cycle', { error: a });
    expect(logs.entries()[0]!.error).toEqual({ name: 'Error', message: 'a', cause: { name: 'Error', message: 'b' } });

    let deep: Error = new Error('0');
    for (let i = 1; i <= 20; i++) deep = new Error(String(i), { cause: deep });
    logs.logger.error('deep', { error: deep });
    expect(logs.lines[1]!.length).toBeLessThan(1_000);
    expect(logs.lines[1]).toContain('[…]');

    logs.logger.error('object cause', { error: new Error('outer', { cause: { code: 'X1', message: 'inner', token: 'abc-secret-token' } }) });
    expect(logs.entries()[2]!.error).toEqual({ name: 'Error', message: 'outer', cause: { code: 'X1', message: 'inner' } });
    logs.logger.error('string cause', { error: new Error('outer', { cause: 'just words' }) });
    expect(logs.entries()[3]!.error).toEqual({ name: 'Error', message: 'outer', cause: 'just words' });
  });

  it('reads as one sentence on a terminal: code, message, then each cause', () => {
    const logs = captureLogs();
    const cc = new CycleCloudError('CC_THROTTLED', 'throttled', { cause: Object.assign(new Error('busy'), { code: 'E429' }) });
    logs.logger.warn('create refused', { error: new SubmitError('SUBMIT_UNRESOLVED', 'unresolved', { cause: cc }) });
    const text = formatForTerminal('warn', logs.lines[0]!, { colour: false, now: new Date(2026, 0, 2, 3, 4, 5, 6) });
    expect(text).toContain('error="SUBMIT_UNRESOLVED: unresolved; caused by CC_THROTTLED: throttled; caused by E429: busy"');
  });
});
