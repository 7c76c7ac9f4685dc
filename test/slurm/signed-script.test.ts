/**
 * contrib/slurm/scaler-power.sh signs its POSTs when a signing key file is configured (issue 21
 * item 4): run as slurmctld would run it, against a loopback server that checks the signature with
 * the product's own verifier, answers 503 once to force a retry (which must be signed anew: the
 * scaler refuses a replayed signature), and never sees the key in the script's command lines.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyRequestSignature } from '../../src/platform/signature.ts';

const SCRIPT = resolve(import.meta.dirname, '../../contrib/slurm/scaler-power.sh');
const SECRET = 'slurm-head-node-signing-key-0123456789';

let dir: string;
let server: Server;
let url: string;
const seen: { path: string; headers: IncomingHttpHeaders; body: string }[] = [];
let failFirst = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'signed-script-'));
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      if (failFirst > 0) {
        failFirst -= 1;
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"detail":"busy"}');
        return;
      }
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"requestIds":["slurm-1"]}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`;
}, 30_000);

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

async function settings(extra: string, keyMode = 0o600): Promise<string> {
  const keyFile = join(dir, 'scaler.signing-key');
  await writeFile(keyFile, `${SECRET}\n`);
  await chmod(keyFile, keyMode);
  const file = join(dir, 'scaler.conf');
  await writeFile(file, `SCALER_URL=${url}\nSCALER_KEY=fn-key-abc\nSCALER_CLUSTER=hpc\nSCALER_LOG=${join(dir, 'power.log')}\nSCALER_SIGNING_KEY_FILE=${keyFile}\n${extra}`);
  await chmod(file, 0o600);
  return file;
}

function run(file: string, action = 'suspend', nodes = 'hpc-[1-2]'): Promise<number> {
  return new Promise((done) => {
    execFile('bash', [SCRIPT, action, nodes], { env: { SCALER_SLURM_SETTINGS: file, PATH: process.env.PATH ?? '' }, timeout: 30_000 }, (error) => {
      done(error ? (typeof error.code === 'number' ? error.code : -1) : 0);
    });
  });
}

const verified = (s: (typeof seen)[number]) =>
  verifyRequestSignature(SECRET, { method: 'POST', path: s.path, body: s.body }, s.headers['x-scaler-signature'] as string, s.headers['x-scaler-timestamp'] as string, Date.now());

describe('scaler-power.sh signing', () => {
  it('signs each POST with the documented scheme; a retry after a 503 is signed anew', async () => {
    // Prepare
    seen.length = 0;
    failFirst = 1;
    const file = await settings('');

    // Act
    const code = await run(file);

    // Assess: two attempts, both verified by the product's verifier, with different signatures
    expect(code).toBe(0);
    expect(seen).toHaveLength(2);
    expect(seen.map((s) => s.path)).toEqual(['/api/slurm/suspend', '/api/slurm/suspend']);
    expect(JSON.parse(seen[0]!.body)).toEqual({ cluster: 'hpc', nodes: 'hpc-[1-2]' });
    for (const s of seen) expect(verified(s)).toMatchObject({ ok: true });
    expect(seen[0]!.headers['x-scaler-signature']).not.toBe(seen[1]!.headers['x-scaler-signature']);
    expect(seen[0]!.headers['x-functions-key']).toBe('fn-key-abc');
    // The key is in no log line
    expect(await readFile(join(dir, 'power.log'), 'utf8')).not.toContain(SECRET);
  }, 30_000);

  it('refuses a signing key file anyone else can read, and signs nothing without one', async () => {
    seen.length = 0;
    failFirst = 0;
    const open = await settings('', 0o644);
    expect(await run(open)).toBe(2);
    expect(seen).toHaveLength(0);
    expect(await readFile(join(dir, 'power.log'), 'utf8')).toMatch(/refusing to use .*scaler\.signing-key: mode 644, must be 600 or 400/);

    const unsigned = join(dir, 'unsigned.conf');
    await writeFile(unsigned, `SCALER_URL=${url}\nSCALER_KEY=fn-key-abc\nSCALER_CLUSTER=hpc\nSCALER_LOG=${join(dir, 'power.log')}\n`);
    await chmod(unsigned, 0o600);
    expect(await run(unsigned)).toBe(0);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers['x-scaler-signature']).toBeUndefined();
  }, 30_000);

  it('signs a resume body with the resume file, a key longer than the HMAC block included', async () => {
    seen.length = 0;
    const long = 'k'.repeat(100);
    const file = await settings('');
    await writeFile(join(dir, 'scaler.signing-key'), long);
    const resumeFile = join(dir, 'resume.json');
    await writeFile(resumeFile, '{"all_nodes_resume":"hpc-1","jobs":[{"job_id":7,"nodes_alloc":"hpc-1"}]}');
    const code = await new Promise<number>((done) =>
      execFile('bash', [SCRIPT, 'resume', 'hpc-1'], { env: { SCALER_SLURM_SETTINGS: file, SLURM_RESUME_FILE: resumeFile, PATH: process.env.PATH ?? '' } }, (e) =>
        done(e ? Number(e.code) : 0),
      ),
    );
    expect(code).toBe(0);
    expect(JSON.parse(seen[0]!.body).resumeFile.jobs[0].job_id).toBe(7);
    expect(
      verifyRequestSignature(
        long,
        { method: 'POST', path: seen[0]!.path, body: seen[0]!.body },
        seen[0]!.headers['x-scaler-signature'] as string,
        seen[0]!.headers['x-scaler-timestamp'] as string,
        Date.now(),
      ),
    ).toMatchObject({ ok: true });
  }, 30_000);

  it('sync asks sinfo again while slurmctld is busy, and gives up at once on any other sinfo error', async () => {
    // Prepare: a sinfo that times out twice (slurmctld stalled), then answers; SLURM_BIN_DIR puts it first
    const bin = join(dir, 'bin');
    await rm(bin, { recursive: true, force: true });
    await mkdir(bin);
    const count = join(dir, 'sinfo-calls');
    await writeFile(count, '');
    const fake = (busy: string) => `#!/bin/bash\necho x >> ${count}\nn=$(wc -l < ${count})\nif [ "$n" -le 2 ]; then echo "${busy}" >&2; exit 1; fi\necho 'idle~||hpc-[1-2]'\n`;
    await writeFile(join(bin, 'sinfo'), fake('slurm_load_node: Socket timed out on send/recv operation'), { mode: 0o755 });
    const file = await settings(`SLURM_BIN_DIR=${bin}\n`);
    seen.length = 0;
    // Act
    const code = await run(file, 'sync', '');
    // Assess: three sinfo calls, then one sync POST with Slurm's view
    expect(code).toBe(0);
    expect((await readFile(count, 'utf8')).trim().split('\n')).toHaveLength(3);
    const syncs = seen.filter((x) => x.path.startsWith('/api/slurm/sync'));
    expect(syncs).toHaveLength(1);
    expect(JSON.parse(syncs[0]!.body)).toMatchObject({ cluster: 'hpc', lines: [{ state: 'idle~', nodes: 'hpc-[1-2]' }] });

    // Any other failure: no retry, no POST, exit 3 with the reason in the log
    await writeFile(count, '');
    await writeFile(join(bin, 'sinfo'), fake('sinfo: error: invalid option'), { mode: 0o755 });
    seen.length = 0;
    expect(await run(file, 'sync', '')).toBe(3);
    expect((await readFile(count, 'utf8')).trim().split('\n')).toHaveLength(1);
    expect(seen).toEqual([]);
    expect(await readFile(join(dir, 'power.log'), 'utf8')).toContain('sinfo failed: sinfo: error: invalid option');
  });
});
