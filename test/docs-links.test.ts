/** The README and docs/ stand alone: every relative link and anchor resolves inside the repository. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { root } from './e2e/harness.ts';

const files = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens. */
const anchors = (text: string) =>
  [...text.matchAll(/^#+ (.*)$/gm)].map((h) =>
    h[1]!
      .toLowerCase()
      .replace(/[^\w\- ]/g, '')
      .replace(/ /g, '-'),
  );

describe('README and docs links', () => {
  it.each(files)('%s links only to files and headings inside the repository', (file) => {
    const text = readFileSync(join(root, file), 'utf8');
    const problems: string[] = [];
    for (const [, link] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(link!)) continue;
      const [path, anchor] = link!.split('#');
      const target = path ? resolve(root, dirname(file), path) : join(root, file);
      if (relative(root, target).startsWith('..')) problems.push(`${link} leaves the repository`);
      else if (!existsSync(target)) problems.push(`${link} does not exist`);
      else if (anchor && target.endsWith('.md') && !anchors(readFileSync(target, 'utf8')).includes(anchor)) problems.push(`${link}: no such heading`);
    }
    expect(problems).toEqual([]);
    expect(text).not.toMatch(/CONTRACT §/);
  });

  it('shows the console in the README with the screenshot the browser test takes', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    expect(readme).toMatch(/!\[[^\]]+\]\(docs\/console\.png\)/);
    // A PNG, not a placeholder: the signature and a real picture's size
    const png = readFileSync(join(root, 'docs', 'console.png'));
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    expect(png.readUInt32BE(16)).toBeGreaterThanOrEqual(1000); // width
    expect(readFileSync(join(root, 'test', 'e2e', 'console.test.ts'), 'utf8')).toContain("join(root, 'docs', 'console.png')");
  });
});
