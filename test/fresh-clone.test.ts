/**
 * The first hour of a newcomer, for real: a fresh clone of this commit, the machine's older Node
 * first on PATH, `npm ci && npm start`, the README's "First run" commands, then SIGTERM to npm's
 * PID — and nothing it started may be left. Slow (a full `npm ci`), so it runs in CI (`CI` set, as
 * `.ci/run` is) or with FRESH_CLONE_TEST=1, and is skipped with its name shown otherwise.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { root } from './e2e/harness.ts';
import { freePort } from './helpers/net.ts';
import { runReadmeExamples } from './readme/examples.ts';

const enabled = Boolean(process.env.CI || process.env.FRESH_CLONE_TEST);
const folders: string[] = [];
const groups: number[] = [];

/** PATH as the user's shell has it: no node_modules/.bin, no ~/.node22, the machine's node first. */
function userPath(): { path: string; node: string } {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d && !d.includes('node_modules') && !d.startsWith(join(homedir(), '.node22')));
  const nodeDir = dirs.find((d) => existsSync(join(d, 'node')));
  if (!nodeDir) throw new Error('no node on PATH outside node_modules');
  return { path: [nodeDir, ...dirs.filter((d) => d !== nodeDir)].join(delimiter), node: join(nodeDir, 'node') };
}

/** Every descendant of `pid` (Linux /proc). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let kids: number[] = [];
    try {
      for (const task of readdirSync(`/proc/${p}/task`)) {
        kids = kids.concat(readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
      }
    } catch {
      return;
    }
    for (const k of kids) {
      out.push(k);
      walk(k);
    }
  };
  walk(pid);
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie has exited; only its parent has not collected it yet.
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

afterAll(() => {
  for (const g of groups)
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      /* gone */
    }
  for (const f of folders) rmSync(f, { recursive: true, force: true });
}, 60_000);

describe("a fresh clone, the machine's own Node first on PATH", () => {
  it.skipIf(!enabled)(
    'npm ci && npm start, the README examples, then SIGTERM to npm stops everything within 5 s (runs in CI or with FRESH_CLONE_TEST=1)',
    async () => {
      // Prepare: a clone of this commit, as `git clone` gives it
      const dir = mkdtempSync(join(tmpdir(), 'ccscale-fresh-clone-'));
      folders.push(dir);
      const clone = join(dir, 'repo');
      const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
      execFileSync('git', ['clone', '--quiet', '--no-checkout', root, clone]);
      execFileSync('git', ['checkout', '--quiet', head], { cwd: clone });
      const { path, node } = userPath();
      const machineNode = execFileSync(node, ['-v'], { encoding: 'utf8' }).trim();
      console.log(`fresh clone: the machine's node is ${machineNode} (${node})`);
      const env: NodeJS.ProcessEnv = { ...process.env, PATH: path, PORT: String(await freePort()) };
      for (const k of Object.keys(env)) if (/^(npm_|NODE_OPTIONS|VITEST|AzureWebJobsStorage|CYCLECLOUD_|FUNCTION_KEY|LOG_FORMAT)/.test(k)) delete env[k];

      // Act 1: npm ci
      execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: clone, env, stdio: 'ignore', timeout: 420_000 });

      // Act 2: npm start, in a group of its own so the test can always clean up
      const npm = spawn('npm', ['start'], { cwd: clone, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      groups.push(npm.pid!);
      let output = '';
      npm.stdout.on('data', (c: Buffer) => (output += c.toString()));
      npm.stderr.on('data', (c: Buffer) => (output += c.toString()));
      const npmExited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
      const until = Date.now() + 60_000;
      while (!/Function key:\s+\S+/.test(output) && npm.exitCode === null && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
      const base = /HTTP base URL:\s+(\S+)/.exec(output)?.[1];
      const key = /Function key:\s+(\S+)/.exec(output)?.[1];
      expect(base, output).toBeTruthy();
      const passwordFolder = /password in (\S+)\/simulator-credentials\.json\)/.exec(output)![1]!;

      // Act 3: the README's commands, in a second terminal with the same PATH
      const runs = await runReadmeExamples(clone, clone, { base: base!, key: key! }, env, 60_000);

      // Act 4: SIGTERM to npm's PID
      const started = descendants(npm.pid!);
      const sentAt = Date.now();
      process.kill(npm.pid!, 'SIGTERM');
      const npmCode = await npmExited;
      const allGone = await (async () => {
        while (Date.now() - sentAt < 5_000) {
          if (!started.some(alive)) return true;
          await new Promise((r) => setTimeout(r, 100));
        }
        return !started.some(alive);
      })();
      const stoppedMs = Date.now() - sentAt;

      // Assess
      expect(output).not.toMatch(/ERR_UNKNOWN_FILE_EXTENSION|needs Node\.js/);
      expect(output).toContain('Data:           in memory');
      const failed = runs.find((r) => r.code !== 0);
      expect(failed, failed && `${failed.command}\n${failed.output}\n--- npm start ---\n${output}`).toBeUndefined();
      expect(runs.find((r) => r.command.includes('job-4711.json'))!.output).toContain('ended fulfilled');
      expect(started.length).toBeGreaterThanOrEqual(3); // node, azurite, the reaper (and its cat)
      expect(allGone, `left running: ${started.filter(alive).join(', ')}\n${output}`).toBe(true);
      expect(stoppedMs).toBeLessThan(5_000);
      expect([0, null]).toContain(npmCode);
      expect(existsSync(passwordFolder)).toBe(false);
      expect(statSync(clone).isDirectory()).toBe(true);
    },
    600_000,
  );
});
