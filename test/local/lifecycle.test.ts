/**
 * `npm start`'s life as a user meets it: nothing outlives the host however it ends, a busy port is
 * named with the setting that moves it, and `--data DIR` brings back records, nodes and the key.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { root } from '../e2e/harness.ts';
import { freePort } from '../helpers/net.ts';

const CLEARED = ['AzureWebJobsStorage', 'CYCLECLOUD_URL', 'CYCLECLOUD_USERNAME', 'CYCLECLOUD_PASSWORD', 'CYCLECLOUD_CLUSTERS', 'FUNCTION_KEY', 'KEY_VAULT_URL', 'LOG_FORMAT'];

interface Started {
  child: ChildProcess;
  base: string;
  key: string;
  output: () => string;
  exited: Promise<number | null>;
}

const started: ChildProcess[] = [];
const folders: string[] = [];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Child pids of `pid` (Linux /proc), to find azurite and the reaper. */
async function childrenOf(pid: number): Promise<number[]> {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

function launch(args: string[], extraEnv: Record<string, string> = {}): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const env: NodeJS.ProcessEnv = { ...process.env, SIMULATOR_STEP_MS: '100', TRACKER_POLL_MIN_SECONDS: '1', ...extraEnv };
  for (const k of CLEARED) if (!(k in extraEnv)) delete env[k];
  const child = spawn(process.execPath, ['src/local/main.ts', ...args], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function start(args: string[] = [], extraEnv: Record<string, string> = {}): Promise<Started> {
  const run = launch(args, { PORT: String(await freePort()), ...extraEnv });
  let done = false;
  void run.exited.then(() => (done = true));
  await waitUntil(() => done || /Function key:\s+\S+/.test(run.output()), 45_000);
  const base = /HTTP base URL:\s+(\S+)/.exec(run.output())?.[1];
  const key = /Function key:\s+(\S+)/.exec(run.output())?.[1];
  if (!base || !key) throw new Error(`npm start printed no banner:\n${run.output()}`);
  return { ...run, base, key };
}

async function stopAndWait(s: Started, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  s.child.kill(signal);
  return s.exited;
}

afterEach(() => {
  for (const child of started.splice(0))
    if (child.pid && alive(child.pid))
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
  for (const dir of folders.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('npm start: stopping', () => {
  it('SIGTERM to the host stops it and everything it started within 5 s', async () => {
    // Prepare
    const s = await start();
    const kids = await childrenOf(s.child.pid!);
    const credentials = /password in (\S+)\)/.exec(s.output())![1]!;

    // Act
    const sentAt = Date.now();
    const code = await stopAndWait(s);

    // Assess
    expect(code).toBe(0);
    expect(Date.now() - sentAt).toBeLessThan(5_000);
    expect(kids.length).toBeGreaterThanOrEqual(2); // azurite and the temp-folder reaper
    expect(await waitUntil(() => kids.every((pid) => !alive(pid)), 3_000)).toBe(true);
    expect(existsSync(credentials)).toBe(false);
  }, 60_000);

  it("SIGINT to npm's PID (npm start) reaches the host: everything stops within 5 s", async () => {
    // Prepare: npm start as typed, npm in a group of its own; npm forwards the signal it gets
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(await freePort()) };
    for (const k of CLEARED) delete env[k];
    for (const k of Object.keys(env)) if (k.startsWith('npm_')) delete env[k];
    const npm = spawn('npm', ['start'], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(npm);
    let out = '';
    npm.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    npm.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
    expect(await waitUntil(() => /Function key:/.test(out), 45_000)).toBe(true);
    const host = (await childrenOf(npm.pid!))[0]!;
    const tree = [host, ...(await childrenOf(host))];

    // Act
    const sentAt = Date.now();
    process.kill(npm.pid!, 'SIGINT');
    await exited;
    const gone = await waitUntil(() => tree.every((pid) => !alive(pid)), 5_000);

    // Assess
    expect(tree.length).toBeGreaterThanOrEqual(3); // the host (npm execs it), azurite, the reaper
    expect(gone).toBe(true);
    expect(Date.now() - sentAt).toBeLessThan(5_000);
    expect(out).toContain('SIGINT: stopping');
  }, 60_000);

  it('after a SIGKILL of the host, azurite exits and the folder holding the simulator password is removed', async () => {
    // Prepare
    const s = await start();
    const kids = await childrenOf(s.child.pid!);
    const credentials = /password in (\S+)\)/.exec(s.output())![1]!;
    expect(existsSync(credentials)).toBe(true);

    // Act
    s.child.kill('SIGKILL');
    await s.exited;

    // Assess
    expect(await waitUntil(() => kids.every((pid) => !alive(pid)), 5_000)).toBe(true);
    expect(await waitUntil(() => !existsSync(credentials), 2_000)).toBe(true);
  }, 60_000);

  it('a busy port stops start-up with one line naming the port and PORT', async () => {
    // Prepare: hold a port
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;

    try {
      // Act
      const run = launch([], { PORT: String(port) });
      const code = await run.exited;

      // Assess
      expect(code).toBe(1);
      expect(run.output()).toContain(`port ${port} is already in use`);
      expect(run.output()).toContain('set PORT');
    } finally {
      server.close();
    }
  }, 60_000);
});

describe('npm start -- --data DIR', () => {
  it('keeps the key, the records and the simulator nodes across a restart; without it the banner says memory', async () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), 'ccscale-data-test-'));
    folders.push(dir);
    const first = await start(['--data', dir]);
    expect(first.output()).toContain(`kept in ${dir}`);
    const headers = { 'x-functions-key': first.key, 'content-type': 'application/json' };
    const body = JSON.stringify({ requestId: 'kept-1', cluster: 'hpc', demands: [{ nodearray: 'ondemand', count: 1 }] });
    expect((await fetch(`${first.base}/scale-requests`, { method: 'POST', headers, body })).status).toBe(202);
    let state = '';
    for (let i = 0; i < 300 && state !== 'fulfilled'; i++) {
      state = ((await (await fetch(`${first.base}/scale-requests/kept-1`, { headers })).json()) as { state: string }).state;
      if (state !== 'fulfilled') await new Promise((r) => setTimeout(r, 100));
    }
    expect(state).toBe('fulfilled');
    expect(await stopAndWait(first)).toBe(0);

    // Act
    const second = await start(['--data', dir]);
    const record = (await (await fetch(`${second.base}/scale-requests/kept-1`, { headers: { 'x-functions-key': first.key } })).json()) as {
      state: string;
      nodes: Array<{ name: string }>;
    };
    const sim = JSON.parse(readFileSync(join(dir, 'simulator-credentials.json'), 'utf8')) as { url: string; username: string; password: string };
    const auth = `Basic ${Buffer.from(`${sim.username}:${sim.password}`).toString('base64')}`;
    const nodes = (await (await fetch(`${sim.url}/clusters/hpc/nodes`, { headers: { authorization: auth } })).json()) as { nodes: Array<{ Name: string; Status: string }> };

    // Assess
    expect(second.key).toBe(first.key);
    expect(second.output()).toContain('state restored');
    expect(record.state).toBe('fulfilled');
    expect(record.nodes).toHaveLength(1);
    expect(nodes.nodes.map((n) => [n.Name, n.Status])).toEqual([[record.nodes[0]!.name, 'Ready']]);
    expect(await stopAndWait(second, 'SIGINT')).toBe(0);
    expect(first.output() + second.output()).toContain('Data:');
  }, 120_000);

  it('says in the banner that data is in memory without --data', async () => {
    const s = await start();
    expect(s.output()).toMatch(/Data:\s+in memory: lost when this stops \(npm start -- --data DIR keeps it\)/);
    expect(s.output()).toMatch(/npx ccscale watch demo-1 --url \S+\/api --key \S+/);
    expect(s.output()).toMatch(/Console:\s+\S+\/api\/console/);
    await stopAndWait(s);
  }, 60_000);
});

describe('npm start: console logs', () => {
  it('are JSON on a pipe without invocation lines at info; LOG_FORMAT=text and LOG_LEVEL=debug give readable lines with them', async () => {
    // Act: one HTTP invocation under each setting
    const plain = await start();
    await fetch(`${plain.base}/health`);
    await new Promise((r) => setTimeout(r, 300));
    await stopAndWait(plain);
    const debug = await start([], { LOG_FORMAT: 'text', LOG_LEVEL: 'debug' });
    await fetch(`${debug.base}/health`);
    await new Promise((r) => setTimeout(r, 300));
    await stopAndWait(debug);

    // Assess
    expect(plain.output()).toMatch(/Logs:\s+json, level info/);
    expect(plain.output()).not.toContain('invocation started');
    expect(plain.output()).toMatch(/^\{"level":"info","msg":"local host stopped"/m);
    expect(debug.output()).toMatch(/Logs:\s+text, level debug/);
    expect(debug.output()).toMatch(/^\d\d:\d\d:\d\d\.\d{3} DEBUG health +invocation started {2}trigger=http$/m);
    expect(debug.output()).not.toMatch(/^\{"level"/m);
  }, 90_000);
  it('refuses an unknown LOG_FORMAT, naming it', async () => {
    const run = launch([], { LOG_FORMAT: 'pretty', PORT: String(await freePort()) });
    expect(await run.exited).toBe(1);
    expect(run.output().trim()).toBe('Setting LOG_FORMAT must be "json" or "text" (got "pretty")');
  }, 30_000);
});
