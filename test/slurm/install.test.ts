/**
 * contrib/slurm/install.sh, run as a user would (into temp folders, `--no-start`): the programs,
 * the root-only settings, and the sync timer; bad options refused with a reason; the key never echoed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { root } from '../e2e/harness.ts';

const KEY = 'fn-key-0123456789-secret';
const dir = mkdtempSync(join(tmpdir(), 'install-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (args: string[], env: Record<string, string> = { SCALER_KEY: KEY }) =>
  spawnSync('bash', [join(root, 'contrib/slurm/install.sh'), ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);

describe('contrib/slurm/install.sh', () => {
  it('installs the programs, a 0600 scaler.conf and a timer that runs the sync every --interval seconds', () => {
    const [prefix, conf, units] = ['p', 'c', 'u'].map((d) => join(dir, d));
    writeFileSync(join(dir, 'sign.key'), 'k\n', { mode: 0o600 });
    const r = run([
      '--url',
      'https://app.example/api',
      '--cluster',
      'hpc',
      '--prefix',
      prefix!,
      '--conf-dir',
      conf!,
      '--systemd-dir',
      units!,
      '--interval',
      '7',
      '--signing-key-file',
      join(dir, 'sign.key'),
      '--no-start',
    ]);
    expect(r.status, r.stderr).toBe(0);
    for (const f of ['scaler-power.sh', 'resume.sh', 'suspend.sh', 'resume-fail.sh']) expect(mode(join(prefix!, f)), f).toBe('755');
    expect(mode(join(conf!, 'scaler.conf'))).toBe('600');
    expect(readFileSync(join(conf!, 'scaler.conf'), 'utf8')).toBe(
      `SCALER_URL=https://app.example/api\nSCALER_KEY=${KEY}\nSCALER_CLUSTER=hpc\nSCALER_SIGNING_KEY_FILE=${join(dir, 'sign.key')}\n`,
    );
    const service = readFileSync(join(units!, 'ccscale-slurm-sync.service'), 'utf8');
    expect(service).toContain(`ExecStart=${prefix}/scaler-power.sh sync`);
    expect(service).toContain(`Environment=SLURM_CONF=${conf}/slurm.conf`);
    expect(readFileSync(join(units!, 'ccscale-slurm-sync.timer'), 'utf8')).toMatch(/OnUnitActiveSec=7s[\s\S]*WantedBy=timers.target/);
    // The key is in the settings file only: never on stdout or stderr.
    expect(r.stdout + r.stderr).not.toContain(KEY);
  });

  it('refuses bad options with the reason, before writing anything', () => {
    const target = join(dir, 'bad');
    const cases: [string[], Record<string, string> | undefined, RegExp][] = [
      [['--url', 'https://a/api', '--prefix', target], undefined, /--cluster is required/],
      [['--url', 'ftp://a', '--cluster', 'hpc', '--prefix', target], undefined, /--url must be/],
      [['--url', 'https://a/api', '--cluster', 'hpc', '--prefix', target], {}, /function key is required/],
      [['--url', 'https://a/api', '--cluster', 'h p', '--prefix', target], undefined, /--cluster h p/],
      [['--url', 'https://a/api', '--cluster', 'hpc', '--interval', '1', '--prefix', target], undefined, /--interval must be 2 to 60/],
      [['--url', 'https://a/api', '--cluster', 'hpc', '--bogus', '--prefix', target], undefined, /unknown option --bogus/],
    ];
    for (const [args, env, message] of cases) {
      const r = run(args, env ?? { SCALER_KEY: KEY });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr).not.toContain(KEY);
    }
    writeFileSync(join(dir, 'open.key'), 'k\n', { mode: 0o644 });
    const open = run(['--url', 'https://a/api', '--cluster', 'hpc', '--prefix', target, '--signing-key-file', join(dir, 'open.key')]);
    expect(open.status).toBe(2);
    expect(open.stderr).toMatch(/mode 644, must be 600 or 400/);
    expect(() => statSync(target)).toThrow();
  });
});
