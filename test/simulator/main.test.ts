/**
 * `npm run simulator` (src/simulator/main.ts) as a real process: one JSON line when listening, a
 * working server behind it, exit 2 naming a bad flag, clean stop on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterStatus } from '../../src/cyclecloud/schemas.ts';
import { call } from './http.ts';

const MAIN = new URL('../../src/simulator/main.ts', import.meta.url).pathname;
const children: ChildProcess[] = [];

function run(args: string[]): ChildProcess {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}

async function collect(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += String(chunk);
  return text;
}

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

describe('simulator CLI', () => {
  it('prints one JSON line with the real port and serves requests; SIGTERM exits 0', async () => {
    // Act
    const child = run(['--port', '0', '--step-ms', '10', '--username', 'ops', '--password', 'pw-123']);
    const lines = createInterface({ input: child.stdout! });
    const [first] = (await once(lines, 'line')) as [string];
    const info = JSON.parse(first) as { url: string; username: string; password: string; clusters: string[] };
    const res = await call(info, 'GET', '/clusters/hpc/status');
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    // Assess
    expect(Object.keys(info)).toEqual(['url', 'username', 'password', 'clusters']);
    expect(info).toMatchObject({ username: 'ops', password: 'pw-123', clusters: ['hpc'] });
    expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(info.url.endsWith(':0')).toBe(false);
    expect(res.status).toBe(200);
    expect(ClusterStatus.parse(res.json).nodearrays.map((n) => n.name)).toEqual(['ondemand', 'mpi', 'spot', 'gpu']);
    expect(code).toBe(0);
  });

  it('a random password when none is given', async () => {
    const child = run(['--port', '0']);
    const lines = createInterface({ input: child.stdout! });
    const [first] = (await once(lines, 'line')) as [string];
    const info = JSON.parse(first) as { password: string; username: string };
    child.kill('SIGINT');
    await once(child, 'exit');
    expect(info.password.length).toBeGreaterThanOrEqual(16);
  });

  it.each([
    [['--port', 'eighty'], '--port'],
    [['--port', '70000'], '--port'],
    [['--step-ms', '-5'], '--step-ms'],
    [['--prot', '1'], '--prot'],
  ])('bad flags %j exit 2 naming the flag', async (args, flag) => {
    const child = run(args);
    const [stderr, [code]] = await Promise.all([collect(child.stderr!), once(child, 'exit') as Promise<[number | null]>]);
    expect(code).toBe(2);
    expect(stderr).toContain(flag);
  });
});
