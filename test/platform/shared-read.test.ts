import { describe, expect, it } from 'vitest';
import { SharedRead } from '../../src/platform/shared-read.ts';

describe('SharedRead', () => {
  it('concurrent and recent callers share one read; past the ttl, or forgotten, it reads again', async () => {
    let t = 0;
    let reads = 0;
    const shared = new SharedRead<number>(1_000, () => t);
    const read = async () => {
      reads += 1;
      return reads;
    };
    expect(await Promise.all([shared.get('a', read), shared.get('a', read), shared.get('a', read)])).toEqual([1, 1, 1]);
    t = 999;
    expect(await shared.get('a', read)).toBe(1);
    expect(await shared.get('b', read)).toBe(2); // another key reads on its own
    t = 1_000;
    expect(await shared.get('a', read)).toBe(3);
    shared.forget('a');
    expect(await shared.get('a', read)).toBe(4);
    expect(reads).toBe(4);
  });

  it('a failed read is not kept, and a ttl of 0 never shares', async () => {
    const shared = new SharedRead<number>(1_000, () => 0);
    await expect(shared.get('a', async () => Promise.reject(new Error('storage down')))).rejects.toThrow('storage down');
    expect(await shared.get('a', async () => 7)).toBe(7);
    let reads = 0;
    const never = new SharedRead<number>(0, () => 0);
    await Promise.all([never.get('a', async () => ++reads), never.get('a', async () => ++reads)]);
    expect(reads).toBe(2);
  });
});
