/**
 * `ccscale`: the operator CLI over the HTTP API (docs/api.md §4).
 *
 *   ccscale submit --cluster hpc --nodearray ondemand --count 4 [--machine-type T]… [--colocated] [--watch]
 *   ccscale submit --cluster hpc --min-vcpus 44 --count 4 --colocated   (any nodearray, by resources)
 *   ccscale submit --file request.json [--watch]
 *   ccscale status <requestId>        ccscale watch <requestId> [--interval 2000] [--timeout s]
 *   ccscale plan  (same flags as submit) ccscale terminate --cluster hpc --name n1 [--id …] [--filter …]
 *   ccscale clusters [cluster…]       ccscale health        ccscale pause | resume   ccscale tenants
 *   ccscale renew <requestId> [--seconds N]                 ccscale release <requestId>
 *   (submit also takes --lease S, --max-lifetime S and --capacity regular|spot|spot-first)
 *   ccscale slurm conf --cluster hpc [--programs-dir D] [--resume-timeout s] [--resume-timeout-for NA=s]… [--suspend-time s]
 *                      [--suspend-timeout s] [--gpus-for NA=n]… [--gres-conf FILE] [--topology-conf FILE]
 *
 * Every command takes `--url` (default `$SCALER_URL` or http://127.0.0.1:7071), `--key` (default
 * `$SCALER_KEY`) and `--json` (machine-readable output on stdout; errors as `{"error":…}` on stderr).
 * Exit codes: 0 success / fulfilled; 1 the request ended failed, rejected or partially_fulfilled
 * (also `health` when degraded, `watch --timeout` when time ran out); 2 usage errors; 3 the API
 * refused the call or could not be reached.
 */
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { FINAL_STATES, parseRequestMessage } from '../ledger/schemas.ts';
import type { Accepted } from '../http/schemas.ts';
import { CliError, EXIT, ScalerClient } from './client.ts';
import { codeOf } from '../platform/errors.ts';
import { DEFAULT_WIDTH, painter, renderCluster, renderHealth, renderPlan, renderRecord, renderTenants, useColour, type Paint } from './render.ts';
import { exitCodeFor, watchRequest } from './watch.ts';
import { DEFAULT_PROGRAMS_DIR } from '../slurm/conf.ts';
import { perNodearray, slurmConfFiles, type SlurmConfFlags } from './slurm-conf.ts';

/** Default API base URL: the local host (`npm start`). */
export const DEFAULT_URL = 'http://127.0.0.1:7071';

export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  env: Record<string, string | undefined>;
  /** Source of `--file -`. Default process.stdin. */
  stdin?: NodeJS.ReadableStream;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
}

interface GlobalOptions {
  url?: string;
  key?: string;
  json?: boolean;
}

interface RequestFlags {
  file?: string;
  cluster?: string;
  nodearray?: string;
  count?: number;
  machineType?: string[];
  colocated?: boolean;
  placementGroup?: string;
  jobId?: string;
  requestId?: string;
  callbackUrl?: string;
  nodearrays?: string;
  minVcpus?: number;
  minMemoryGb?: number;
  minGpus?: number;
  infiniband?: boolean;
  allOrNothing?: boolean;
  pick?: string;
  ownPlacementGroup?: boolean;
  capacity?: string;
  lease?: number;
  maxLifetime?: number;
  tenant?: string;
}

interface TerminateFlags {
  file?: string;
  cluster?: string;
  id?: string[];
  name?: string[];
  hostname?: string[];
  ip?: string[];
  filter?: string;
  requestId?: string;
  callbackUrl?: string;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function positiveInt(name: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return Number(value);
  };
}

function wholeNumber(name: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${name} must be a whole number ≥ 0`);
    return Number(value);
  };
}

function nonNegative(name: string): (value: string) => number {
  return (value) => {
    if (!/^\d+(\.\d+)?$/.test(value)) throw new InvalidArgumentError(`${name} must be a number ≥ 0`);
    return Number(value);
  };
}

/** `cli-20261128T013500-a1b2c3`: readable, sortable, unique enough for one operator's requests. */
export function generateRequestId(nowMs: number = Date.now()): string {
  const stamp = new Date(nowMs)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '');
  return `cli-${stamp}-${randomBytes(3).toString('hex')}`;
}

async function readJsonFile(path: string, io: CliIo): Promise<Record<string, unknown>> {
  let text: string;
  try {
    if (path === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of io.stdin ?? process.stdin) chunks.push(Buffer.from(chunk as Buffer));
      text = Buffer.concat(chunks).toString('utf8');
    } else {
      text = await readFile(path, 'utf8');
    }
  } catch (error) {
    throw new CliError('CLI_USAGE', `cannot read --file ${path}: ${codeOf(error) ?? (error instanceof Error ? error.message : String(error))}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CliError('CLI_USAGE', `--file ${path} is not valid JSON`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new CliError('CLI_USAGE', `--file ${path} must hold one JSON object (a request of docs/api.md §3)`);
  return value as Record<string, unknown>;
}

/** Validates locally with the API's own schema, so a typo is a usage error naming the field. */
function validated(message: Record<string, unknown>): Record<string, unknown> {
  const parsed = parseRequestMessage(message);
  if (parsed.ok) return message;
  const { errors } = parsed;
  const lines = errors.map((e) => `  ${e.path || '(body)'}: ${e.message}`).join('\n');
  throw new CliError('CLI_USAGE', `the request is invalid:\n${lines}`, { errors });
}

async function scaleMessage(flags: RequestFlags, io: CliIo, command: string): Promise<Record<string, unknown>> {
  const selectorFlags =
    flags.nodearrays !== undefined ||
    flags.minVcpus !== undefined ||
    flags.minMemoryGb !== undefined ||
    flags.minGpus !== undefined ||
    flags.infiniband ||
    flags.allOrNothing ||
    flags.pick !== undefined ||
    flags.capacity !== undefined ||
    flags.ownPlacementGroup;
  const demandFlags = flags.nodearray !== undefined || flags.count !== undefined || flags.machineType || flags.colocated || flags.placementGroup || flags.jobId || selectorFlags;
  let message: Record<string, unknown>;
  if (flags.file) {
    if (demandFlags) throw new CliError('CLI_USAGE', `${command}: use either --file or the demand flags (--nodearray, --count, …), not both`);
    message = await readJsonFile(flags.file, io);
  } else {
    if (!flags.cluster || flags.count === undefined) {
      throw new CliError(
        'CLI_USAGE',
        `${command} needs --file <request.json>, or --cluster, --count and a selector (--nodearray, --nodearrays, --machine-type, --min-vcpus, --min-memory-gb, --min-gpus, --infiniband)`,
      );
    }
    const demand: Record<string, unknown> = { count: flags.count };
    if (flags.nodearray !== undefined) demand.nodearray = flags.nodearray;
    if (flags.nodearrays !== undefined)
      demand.nodearrays = flags.nodearrays
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);
    if (flags.machineType?.length) demand.machineTypes = flags.machineType;
    if (flags.minVcpus !== undefined) demand.minVcpus = flags.minVcpus;
    if (flags.minMemoryGb !== undefined) demand.minMemoryGB = flags.minMemoryGb;
    if (flags.minGpus !== undefined) demand.minGpus = flags.minGpus;
    if (flags.infiniband) demand.infiniband = true;
    if (flags.allOrNothing) demand.allOrNothing = true;
    if (flags.pick !== undefined) demand.pick = flags.pick;
    if (flags.ownPlacementGroup) demand.ownPlacementGroup = true;
    if (flags.capacity !== undefined) demand.capacity = flags.capacity;
    if (flags.colocated) demand.colocated = true;
    if (flags.placementGroup) demand.placementGroupId = flags.placementGroup;
    if (flags.jobId) demand.jobId = flags.jobId;
    message = { kind: 'scale', cluster: flags.cluster, demands: [demand] };
  }
  if (flags.cluster) message.cluster = flags.cluster;
  if (flags.callbackUrl) message.callbackUrl = flags.callbackUrl;
  if (flags.lease !== undefined) message.lease = { seconds: flags.lease };
  if (flags.maxLifetime !== undefined) message.maxLifetimeSeconds = flags.maxLifetime;
  if (flags.tenant !== undefined) message.tenant = flags.tenant;
  if (flags.requestId) message.requestId = flags.requestId;
  message.requestId ??= generateRequestId();
  return validated(message);
}

async function terminateMessage(flags: TerminateFlags, io: CliIo): Promise<Record<string, unknown>> {
  const message: Record<string, unknown> = flags.file ? await readJsonFile(flags.file, io) : {};
  message.kind ??= 'terminate';
  if (flags.cluster) message.cluster = flags.cluster;
  if (flags.id?.length) message.ids = flags.id;
  if (flags.name?.length) message.names = flags.name;
  if (flags.hostname?.length) message.hostnames = flags.hostname;
  if (flags.ip?.length) message.ipAddresses = flags.ip;
  if (flags.filter) message.filter = flags.filter;
  if (flags.callbackUrl) message.callbackUrl = flags.callbackUrl;
  if (flags.requestId) message.requestId = flags.requestId;
  if (!message.cluster) throw new CliError('CLI_USAGE', 'terminate needs --cluster (or a --file that names it)');
  message.requestId ??= generateRequestId();
  return validated(message);
}

function addRequestFlags(cmd: Command): Command {
  return cmd
    .option('-f, --file <path>', 'the request as JSON (docs/api.md §3); "-" reads stdin')
    .option('-c, --cluster <name>', 'CycleCloud cluster')
    .option('-n, --nodearray <name>', 'nodearray of the demand')
    .option('--count <n>', 'nodes to add', positiveInt('--count'))
    .option('-m, --machine-type <type>', 'acceptable machine type, in order of preference (repeatable)', collect)
    .option('--colocated', 'all nodes in one placement group (tightly coupled) or none')
    .option('--placement-group <id>', 'explicit placement group (implies --colocated)')
    .option('--nodearrays <a,b>', 'allowed nodearrays, comma-separated, in order of preference (instead of --nodearray)')
    .option('--min-vcpus <n>', 'vCPUs per node at least (any nodearray unless --nodearray/--nodearrays)', wholeNumber('--min-vcpus'))
    .option('--min-memory-gb <gb>', 'GB of memory per node at least', nonNegative('--min-memory-gb'))
    .option('--min-gpus <n>', 'GPUs per node at least', wholeNumber('--min-gpus'))
    .option('--infiniband', 'only machines with InfiniBand')
    .option('--all-or-nothing', 'all nodes from one bucket or none (implied by --colocated)')
    .addOption(new Option('--pick <how>', 'among matching buckets: the first in CycleCloud order, or the smallest machine').choices(['first', 'smallest']))
    .option('--own-placement-group', 'with --colocated: a new placement group no other demand joins')
    .addOption(new Option('--capacity <kind>', 'spot or regular buckets: regular, spot, or spot-first (spot, else regular)').choices(['regular', 'spot', 'spot-first']))
    .option('--lease <seconds>', 'shut the nodes down unless renewed within this many seconds (ccscale renew)', positiveInt('--lease'))
    .option('--max-lifetime <seconds>', 'shut the nodes down this long after acceptance, renewed or not', positiveInt('--max-lifetime'))
    .option('--tenant <name>', 'whose request it is (docs/api.md, Tenants; default: by the function key, else default)')
    .option('--job-id <id>', 'scheduler job id carried into logs and status')
    .option('--request-id <id>', 'idempotency key (default: generated)')
    .option('--callback-url <url>', 'https URL that receives the final record');
}

function addWatchFlags(cmd: Command): Command {
  return cmd
    .option('--interval <ms>', 'poll interval in milliseconds', positiveInt('--interval'), 2000)
    .option('--timeout <seconds>', 'stop watching after this many seconds (exit 1)', positiveInt('--timeout'));
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const paint: Paint = painter(useColour(io.stdout.isTTY, io.env));
  const out = (text: string) => io.stdout.write(`${text}\n`);
  // Tables wrap long reasons to the terminal's width (a pipe gets DEFAULT_WIDTH).
  const width = (io.stdout as { columns?: number }).columns || DEFAULT_WIDTH;
  let exitCode: number = EXIT.ok;
  let jsonMode = argv.includes('--json');

  const program = new Command('ccscale')
    .description('Operate the CycleCloud scaler through its HTTP API')
    .addOption(new Option('--url <url>', `scaler base URL (default: $SCALER_URL or ${DEFAULT_URL})`))
    .addOption(new Option('--key <key>', 'function key (default: $SCALER_KEY)'))
    .option('--json', 'machine-readable JSON on stdout')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      [
        '',
        'Environment: SCALER_URL (default --url), SCALER_KEY (default --key), NO_COLOR (no colours).',
        'Exit codes: 0 success or fulfilled; 1 the request ended failed, rejected or partially_fulfilled',
        '(health: degraded; watch --timeout: time ran out); 2 usage error; 3 the API refused the call',
        '(401 key, 404, 400, 409, 413, 5xx) or could not be reached.',
        'Messages, routes and the request record: docs/api.md in the scaler repository.',
      ].join('\n'),
    )
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  const context = (cmd: Command) => {
    const g = cmd.optsWithGlobals<GlobalOptions>();
    jsonMode = Boolean(g.json);
    const key = g.key ?? io.env.SCALER_KEY;
    const client = new ScalerClient({
      baseUrl: g.url ?? io.env.SCALER_URL ?? DEFAULT_URL,
      ...(key ? { key } : {}),
      ...(io.fetch ? { fetch: io.fetch } : {}),
    });
    return { client, json: jsonMode };
  };

  const watchOptions = (json: boolean, flags: { interval?: number; timeout?: number }) => ({
    json,
    tty: Boolean(io.stdout.isTTY),
    paint,
    stdout: io.stdout,
    stderr: io.stderr,
    intervalMs: flags.interval ?? 2000,
    ...(flags.timeout ? { timeoutMs: flags.timeout * 1000 } : {}),
    ...(io.sleep ? { sleep: io.sleep } : {}),
  });

  /** After a 202: print where to follow it, or follow it (`--watch`) and answer how it ended. */
  const accepted = async (client: ScalerClient, body: Accepted, json: boolean, flags: { watch?: boolean; interval?: number; timeout?: number }): Promise<number> => {
    if (!flags.watch) {
      if (json) out(JSON.stringify(body));
      else out(`accepted ${body.requestId} (${body.state})\nstatus: ${body.statusUrl}\nfollow: ccscale watch ${body.requestId}`);
      return EXIT.ok;
    }
    // With --json only the final record goes to stdout, so scripts get one JSON document.
    if (!json) out(`accepted ${body.requestId} (${body.state})`);
    return watchRequest(client, body.requestId, watchOptions(json, flags));
  };

  addWatchFlags(
    addRequestFlags(program.command('submit').description('submit a scale request (flags for one demand, or --file)')).option(
      '-w, --watch',
      'follow the request until it is final',
    ),
  ).action(async (flags: RequestFlags & { watch?: boolean; interval?: number; timeout?: number }, cmd: Command) => {
    const { client, json } = context(cmd);
    const message = await scaleMessage(flags, io, 'submit');
    exitCode = await accepted(client, (await client.submit(message)).body, json, flags);
  });

  program
    .command('status')
    .description('show a request: state, demands (with where the planner put them and why), operations, nodes')
    .argument('<requestId>')
    .option('--explain', "with --json: add each demand's nodearray, bucketId and explanation (the table always shows them)")
    .option('--cost', "with --json: add the request's cost and its nodes' times (the table always shows the cost)")
    .action(async (requestId: string, flags: { explain?: boolean; cost?: boolean }, cmd: Command) => {
      const { client, json } = context(cmd);
      const { body } = await client.record(requestId, { explain: !json || flags.explain === true, cost: !json || flags.cost === true });
      out(json ? JSON.stringify(body) : renderRecord(body, paint, width));
      exitCode = FINAL_STATES.has(body.state) ? exitCodeFor(body) : EXIT.ok;
    });

  addWatchFlags(program.command('watch').description('follow a request until it is final (exit 0 fulfilled, 1 otherwise)').argument('<requestId>')).action(
    async (requestId: string, flags: { interval?: number; timeout?: number }, cmd: Command) => {
      const { client, json } = context(cmd);
      exitCode = await watchRequest(client, requestId, watchOptions(json, flags));
    },
  );

  addRequestFlags(program.command('plan').description('explain what a scale request would create, and why; creates nothing')).action(async (flags: RequestFlags, cmd: Command) => {
    const { client, json } = context(cmd);
    const message = await scaleMessage(flags, io, 'plan');
    const { body } = await client.plan(message);
    out(json ? JSON.stringify(body) : renderPlan(body, paint, width));
  });

  addWatchFlags(
    program
      .command('terminate')
      .description('terminate nodes (at least one of --id, --name, --hostname, --ip, --filter)')
      .option('-f, --file <path>', 'the terminate request as JSON; "-" reads stdin')
      .option('-c, --cluster <name>', 'CycleCloud cluster')
      .option('--id <id>', 'node id (repeatable)', collect)
      .option('--name <name>', 'node name (repeatable)', collect)
      .option('--hostname <host>', 'hostname (repeatable)', collect)
      .option('--ip <address>', 'IP address (repeatable)', collect)
      .option('--filter <expr>', 'CycleCloud node filter expression')
      .option('--request-id <id>', 'idempotency key (default: generated)')
      .option('--callback-url <url>', 'https URL that receives the final record')
      .option('-w, --watch', 'follow the request until it is final'),
  ).action(async (flags: TerminateFlags & { watch?: boolean; interval?: number; timeout?: number }, cmd: Command) => {
    const { client, json } = context(cmd);
    const message = await terminateMessage(flags, io);
    exitCode = await accepted(client, (await client.terminate(message)).body, json, flags);
  });

  program
    .command('renew')
    .description("renew a request's lease: for its own length, or --seconds (exit 3 when it expired or was released)")
    .argument('<requestId>')
    .option('--seconds <n>', 'the new lease length (60–2592000)', positiveInt('--seconds'))
    .action(async (requestId: string, flags: { seconds?: number }, cmd: Command) => {
      const { client, json } = context(cmd);
      const { body } = await client.renew(requestId, flags.seconds);
      out(json ? JSON.stringify(body) : `${body.requestId}: lease ${body.lease ? `${body.lease.seconds} s, expires ${body.lease.expiresAt}` : 'none'}`);
    });

  program
    .command('release')
    .description("shut a request's nodes down now (each by its nodearray's ShutdownPolicy); repeating it is harmless")
    .argument('<requestId>')
    .action(async (requestId: string, _flags: unknown, cmd: Command) => {
      const { client, json } = context(cmd);
      const { body } = await client.release(requestId);
      out(json ? JSON.stringify(body) : `${body.requestId}: released at ${body.released?.at ?? '?'} (${body.released?.reason ?? 'released'}); its nodes are shutting down`);
    });

  program
    .command('clusters')
    .description('latest snapshot per cluster: buckets, available/active/max, placement groups')
    .argument('[cluster...]', 'clusters to show (default: every cluster health knows)')
    .action(async (names: string[], _flags: unknown, cmd: Command) => {
      const { client, json } = context(cmd);
      let clusters = names;
      if (!clusters.length) {
        const { body } = await client.health();
        clusters = body.clusters.filter((c) => c.takenAt !== null).map((c) => c.cluster);
      }
      const statuses = [];
      for (const c of clusters) statuses.push((await client.clusterStatus(c)).body);
      if (json) out(JSON.stringify(statuses));
      else out(statuses.length ? statuses.map((s) => renderCluster(s, paint)).join('\n\n') : 'no cluster has been snapshotted yet');
    });

  program
    .command('health')
    .description('storage, snapshot ages, queue depth, poison and rejected counts (exit 1 when degraded)')
    .action(async (_flags: unknown, cmd: Command) => {
      const { client, json } = context(cmd);
      const { body } = await client.health();
      out(json ? JSON.stringify(body) : renderHealth(body, paint));
      exitCode = body.status === 'ok' ? EXIT.ok : EXIT.requestFailed;
    });

  program
    .command('tenants')
    .description('each tenant: weight, caps, cost today and this month, budget, and the nodes and cores it holds per cluster with its share')
    .action(async (_flags: unknown, cmd: Command) => {
      const { client, json } = context(cmd);
      const { body } = await client.tenants();
      out(json ? JSON.stringify(body) : renderTenants(body, paint));
    });

  for (const action of ['pause', 'resume'] as const) {
    program
      .command(action)
      .description(action === 'pause' ? 'hold scale-out (requests are still accepted and wait)' : 'resume scale-out')
      .action(async (_flags: unknown, cmd: Command) => {
        const { client, json } = context(cmd);
        const { body } = await client.scaleOut(action);
        out(json ? JSON.stringify(body) : `scale-out is ${body.paused ? 'paused' : 'running'}`);
      });
  }

  const slurm = program.command('slurm').description('Slurm power saving through the scaler (README "Use it with Slurm")');
  slurm
    .command('conf')
    .description("print the slurm.conf node, partition and power-saving lines for a cluster's nodearrays; optionally write gres.conf and topology.conf")
    .requiredOption('-c, --cluster <name>', 'CycleCloud cluster')
    .option('--programs-dir <dir>', "where contrib/slurm's resume.sh, suspend.sh, resume-fail.sh are installed", DEFAULT_PROGRAMS_DIR)
    .option(
      '--resume-timeout <seconds>',
      "ResumeTimeout (create + boot + slurmd start), and each partition's unless --resume-timeout-for names it",
      positiveInt('--resume-timeout'),
      1800,
    )
    .option('--resume-timeout-for <nodearray=seconds>', "a partition's own ResumeTimeout (repeatable)", perNodearray('--resume-timeout-for', 1))
    .option('--suspend-time <seconds>', 'SuspendTime (idle seconds before suspend)', positiveInt('--suspend-time'), 300)
    .option('--suspend-timeout <seconds>', 'SuspendTimeout (at least a VM delete)', positiveInt('--suspend-timeout'), 600)
    .option('--gpus-for <nodearray=count>', "GPUs per node of a nodearray, instead of its bucket's gpuCount (repeatable; 0 = none)", perNodearray('--gpus-for', 0))
    .option('--gres-conf <file>', "write gres.conf (the GPUs' device files) to this file: slurm.conf's folder, e.g. /etc/slurm/gres.conf")
    .option('--topology-conf <file>', 'write topology.conf (one switch per placement group) to this file, e.g. /etc/slurm/topology.conf, and add TopologyPlugin=topology/tree')
    .action(async (flags: SlurmConfFlags, cmd: Command) => {
      const { client } = context(cmd);
      const { body } = await client.clusterStatus(flags.cluster);
      // The status route keeps to the contract's fields; the capacity view adds each bucket's gpuCount.
      // A scaler without it (older) leaves Gres to --gpus-for.
      const capacity = await client.clusterCapacity(flags.cluster).catch(() => null);
      const gpus = new Map((capacity?.body.nodearrays ?? []).flatMap((na) => na.buckets.map((b) => [`${na.name}\u0000${b.bucketId}`, b.gpuCount] as const)));
      const status = {
        ...body,
        nodearrays: body.nodearrays.map((na) => ({ ...na, buckets: na.buckets.map((b) => ({ ...b, gpuCount: gpus.get(`${na.name}\u0000${b.bucketId}`) ?? 0 })) })),
      };
      io.stdout.write(await slurmConfFiles(status, flags));
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are not failures; everything else commander refuses is a usage error.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof CliError) {
      if (jsonMode) io.stderr.write(`${JSON.stringify(error.toJSON())}\n`);
      else io.stderr.write(`${paint('red', 'error:')} ${error.message}\n`);
      return error.exitCode;
    }
    io.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.http;
  }
}
