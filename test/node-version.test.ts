/**
 * On a Node older than engines.node, `npm start` and `npm test` say so in their first line instead
 * of ERR_UNKNOWN_FILE_EXTENSION or a vitest crash (scripts/check-node.mjs, run first by both). The
 * test pretends to be Node 20 with a preload that runs before the check.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { root } from './e2e/harness.ts';

const run = promisify(execFile);
const pretend = (version: string) => `data:text/javascript,Object.defineProperty(process.versions,'node',{value:'${version}'})`;

describe('Node version check', () => {
  it('the package needs what its dependencies need (undici 8: 22.19), and npm scripts check it first', () => {
    const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { engines: { node: string }; scripts: Record<string, string> };
    expect(pkg.engines.node).toBe('>=22.19.0');
    expect(pkg.scripts.start).toBe('exec node --import ./scripts/check-node.mjs src/local/main.ts');
    expect(pkg.scripts.test!.startsWith('node scripts/check-node.mjs && ')).toBe(true);
  });

  it.each(['20.20.2', '22.18.0'])('on Node %s the first line of npm start says which Node it needs', async (version) => {
    // Act
    const failed = await run(process.execPath, ['--import', pretend(version), '--import', './scripts/check-node.mjs', 'src/local/main.ts'], { cwd: root }).catch(
      (e: { code: number; stdout: string; stderr: string }) => e,
    );

    // Assess
    expect('code' in failed ? failed.code : 0).toBe(1);
    expect(failed.stdout).toBe('');
    expect(failed.stderr.split('\n')[0]).toBe(`cyclecloud-scaler needs Node.js 22.19.0 or newer; this is v${version} (${process.execPath}).`);
  });

  it('lets 22.19.0 and newer through', async () => {
    const ok = await run(process.execPath, ['--import', pretend('22.19.0'), '--import', './scripts/check-node.mjs', '-e', 'console.log("ran")'], { cwd: root });
    expect(ok.stdout.trim()).toBe('ran');
  });
});
