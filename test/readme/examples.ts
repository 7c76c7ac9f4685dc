/**
 * The README's "First run" commands, as a user types them into a second terminal: the shell block
 * after the `readme-examples` marker, with the banner's URL and key put in, run line by line by bash.
 * Used by test/readme-examples.test.ts (against npm start in the suite) and by the fresh-clone test.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ExampleRun {
  command: string;
  code: number | null;
  output: string;
  ms: number;
}

/** The commands of the marked block, continuation lines joined, comments kept (bash ignores them). */
export function readmeExamples(root: string): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const at = readme.indexOf('<!-- readme-examples');
  if (at < 0) throw new Error('README.md has no <!-- readme-examples --> marker');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!block) throw new Error('no ```sh block after the readme-examples marker');
  return block[1]!
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

/**
 * Runs each command in `cwd` with the banner's values, in one bash so `export` carries over; stops
 * at the first failure. `env` is the user's environment (PATH decides which node and npx).
 */
export async function runReadmeExamples(root: string, cwd: string, banner: { base: string; key: string }, env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<ExampleRun[]> {
  const commands = readmeExamples(root).map((c) => c.replaceAll('http://127.0.0.1:7071/api', banner.base).replaceAll('<key from the banner>', banner.key));
  const runs: ExampleRun[] = [];
  let exports = '';
  const deadline = Date.now() + timeoutMs;
  for (const command of commands) {
    const started = Date.now();
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn('bash', ['-o', 'pipefail', '-c', `${exports}\n${command}`], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), Math.max(1_000, deadline - Date.now()));
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve({ code: c, output: out });
      });
    });
    runs.push({ command, code, output, ms: Date.now() - started });
    if (command.startsWith('export ')) exports += `${command}\n`;
    if (code !== 0) break;
  }
  return runs;
}
