import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/net.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** True while any process of the group still exists. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start (src/local/main.ts)', () => {
  it('boots azurite, the simulator and the functions, answers HTTP, and stops cleanly on Ctrl-C', async () => {
    // Prepare: its own process group, so SIGINT reaches every child the way a terminal Ctrl-C does.
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port) };
    for (const k of ['AzureWebJobsStorage', 'CYCLECLOUD_URL', 'CYCLECLOUD_USERNAME', 'CYCLECLOUD_PASSWORD', 'CYCLECLOUD_CLUSTERS', 'FUNCTION_KEY', 'KEY_VAULT_URL']) delete env[k];
    const child = spawn(process.execPath, ['src/local/main.ts'], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

    try {
      // Act
      const base = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no URL printed within 40 s\n${stdout}\n${stderr}`)), 40_000);
        const check = () => {
          const m = /HTTP base URL:\s+(\S+)/.exec(stdout);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        };
        child.stdout.on('data', check);
        void exited.then((code) => reject(new Error(`exited early with ${code}\n${stdout}\n${stderr}`)));
      });
      const health = await fetch(`${base}/health`);
      const key = /Function key:\s+(\S+)/.exec(stdout)?.[1];

      // Assess the banner and the answer
      expect(base).toBe(`http://127.0.0.1:${port}/api`);
      expect(health.status).toBe(200);
      expect(key).toBeTruthy();
      expect(stdout).toMatch(/CycleCloud:\s+http:\/\/127\.0\.0\.1:\d+ \(embedded simulator.*password in \S+\)/);
      expect(stdout).toContain(`curl -s -X POST ${base}/scale-requests -H 'x-functions-key: ${key}'`);
      // The simulator password is in a private file, never on the console.
      const credentialsFile = /password in (\S+)\)/.exec(stdout)![1]!;
      const saved = JSON.parse(readFileSync(credentialsFile, 'utf8')) as { password: string };
      expect(statSync(credentialsFile).mode & 0o077).toBe(0);
      expect(saved.password.length).toBeGreaterThan(8);
      expect(stdout + stderr).not.toContain(saved.password);

      // Act: Ctrl-C to the whole group
      const sentAtMs = Date.now();
      process.kill(-child.pid!, 'SIGINT');
      const code = await exited;

      // Assess
      expect(code).toBe(0);
      expect(Date.now() - sentAtMs).toBeLessThan(20_000);
      await new Promise((r) => setTimeout(r, 500));
      expect(groupAlive(child.pid!)).toBe(false);
      expect(existsSync(credentialsFile)).toBe(false);
    } finally {
      if (groupAlive(child.pid!)) process.kill(-child.pid!, 'SIGKILL');
    }
  }, 70_000);

  it('stops with one message naming a bad setting', async () => {
    // Prepare
    const env: NodeJS.ProcessEnv = { ...process.env, SNAPSHOT_SCHEDULE: 'every minute', PORT: String(await freePort()) };
    delete env.AzureWebJobsStorage;

    // Act
    const child = spawn(process.execPath, ['src/local/main.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));

    // Assess
    expect(code).toBe(1);
    expect(stderr).toContain('SNAPSHOT_SCHEDULE');
    expect(stderr.trim().split('\n')).toHaveLength(1);
  }, 30_000);
});
