import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { expandHostlist, formatHostlist, HostlistError, MAX_HOSTLIST_NAMES, sortNames } from '../../src/slurm/hostlist.ts';

// What `scontrol show hostnames` / `scontrol show hostlist` (Slurm 22.05.8) printed for these on
// 2026-11-30; test/e2e/slurm.test.ts checks many more against the live binary.
const EXPANSIONS: [string, string[]][] = [
  ['hpc-[1-4,7],htc-3', ['hpc-1', 'hpc-2', 'hpc-3', 'hpc-4', 'hpc-7', 'htc-3']],
  ['a[01-10]', ['a01', 'a02', 'a03', 'a04', 'a05', 'a06', 'a07', 'a08', 'a09', 'a10']],
  ['a[1-010]', ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'a9', 'a10']],
  ['a[099-101]', ['a099', 'a100', 'a101']],
  ['a[1-2]b[3-4]', ['a1b3', 'a1b4', 'a2b3', 'a2b4']],
  ['n[1-3],n[2-5]', ['n1', 'n2', 'n3', 'n2', 'n3', 'n4', 'n5']],
  ['a1 a2', ['a1', 'a2']],
  ['a,a', ['a', 'a']],
  ['a[5,1-3]', ['a5', 'a1', 'a2', 'a3']],
];
const FORMATS: [string[], string][] = [
  [['a3', 'a1', 'a2'], 'a[3,1-2]'],
  [['a1', 'a01', 'a001'], 'a[1,01,001]'],
  [['a9', 'a10', 'a11'], 'a[9-11]'],
  [['n1', 'n2', 'm1', 'n3'], 'n[1-2],m1,n3'],
  [['a08', 'a9', 'a10'], 'a[08,9-10]'],
  [['a9', 'a010'], 'a[9,010]'],
  [['a09', 'a10'], 'a[09-10]'],
  [['a99', 'a100'], 'a[99-100]'],
  [['a9', 'a10', 'a011'], 'a[9-10,011]'],
  [['a00', 'a1'], 'a[00,1]'],
  [['007', '8'], '[007,8]'],
  [['a1', 'a2', 'b', 'a3', 'a4'], 'a[1-2],b,a[3-4]'],
  [['a-1.b2', 'a-1.b3'], 'a-1.b[2-3]'],
  [['a1b3', 'a1b4', 'a2b3', 'a2b4'], 'a1b[3-4],a2b[3-4]'],
  [['x'], 'x'],
  [['a12345678901234567890', 'a12345678901234567891'], 'a[12345678901234567890-12345678901234567891]'],
];

describe('Slurm hostlist expressions', () => {
  it.each(EXPANSIONS)('expands %s as scontrol does', (expr, names) => {
    expect(expandHostlist(expr)).toEqual(names);
  });

  it.each(FORMATS)('formats %j as scontrol does', (names, expr) => {
    expect(formatHostlist(names)).toBe(expr);
  });

  it.each(['a[3-1]', 'a[]', 'a[x]', 'a[1-2]b', 'a[1-3]]', 'a[1-3', 'a[[1]]'])('refuses %s, naming the problem', (expr) => {
    expect(() => expandHostlist(expr)).toThrow(HostlistError);
  });

  it('refuses an expression that expands past the limit instead of allocating it', () => {
    expect(() => expandHostlist(`n[1-${MAX_HOSTLIST_NAMES + 1}]`)).toThrow(/more than/);
    expect(() => expandHostlist('n[1-1000]x[1-1000]')).toThrow(/more than/);
  });

  it('round-trips any list of names (format, then expand, gives the list back)', () => {
    const name = fc
      .tuple(fc.constantFrom('hpc-', 'n', 'a.b', '', 'x-1-'), fc.option(fc.integer({ min: 0, max: 2000 })), fc.integer({ min: 0, max: 3 }))
      .map(([p, n, pad]) => (n === null ? `${p}login` : `${p}${String(n).padStart(String(n).length + pad, '0')}`));
    fc.assert(
      fc.property(fc.array(name, { minLength: 1, maxLength: 40 }), (names) => {
        expect(expandHostlist(formatHostlist(names))).toEqual(names);
      }),
      { numRuns: 500 },
    );
  });

  it('sorts names for the shortest form: by prefix, then number', () => {
    expect(formatHostlist(sortNames(['hpc-10', 'hpc-2', 'hpc-1', 'htc-3', 'hpc-3', 'hpc-2']))).toBe('hpc-[1-3,10],htc-3');
  });
});
