import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Batcher } from '../../src/requests/batcher.ts';

/** A flush that records each batch and answers each member with `<member>@<batch number>`. */
function recorder(hold?: () => Promise<void>) {
  const batches: { key: string; members: string[] }[] = [];
  const flush = async (key: string, members: string[]): Promise<string[]> => {
    batches.push({ key, members: [...members] });
    const n = batches.length;
    if (hold) await hold();
    return members.map((m) => `${m}@${n}`);
  };
  return { batches, flush };
}

const options = { windowMs: 200, windowMaxMs: 1_000, maxWeight: 100 };

describe('Batcher', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('gathers members that arrive within the window into one flush, each getting its own answer', async () => {
    const r = recorder();
    const b = new Batcher(options, r.flush);
    const answers = [b.join('c1', 'a'), b.join('c1', 'b')];
    await vi.advanceTimersByTimeAsync(150);
    answers.push(b.join('c1', 'c'));
    await vi.advanceTimersByTimeAsync(199);
    expect(r.batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(await Promise.all(answers)).toEqual(['a@1', 'b@1', 'c@1']);
    expect(r.batches).toEqual([{ key: 'c1', members: ['a', 'b', 'c'] }]);
  });

  it('closes at windowMaxMs after the first member however steady the arrivals', async () => {
    const r = recorder();
    const b = new Batcher(options, r.flush);
    const answers: Promise<string>[] = [];
    for (let t = 0; t < 1_400; t += 100) {
      answers.push(b.join('c1', `m${t}`));
      await vi.advanceTimersByTimeAsync(100);
    }
    await vi.advanceTimersByTimeAsync(1_000);
    await Promise.all(answers);
    // m0..m900 went at 1,000 ms (10 members); the rest gathered in a second window
    expect(r.batches.map((x) => x.members.length)).toEqual([10, 4]);
  });

  it('closes at once when the weight reaches maxWeight, and a member that would overflow starts the next batch', async () => {
    const r = recorder();
    const b = new Batcher({ ...options, maxWeight: 5 }, r.flush);
    const answers = [b.join('c1', 'a', 2), b.join('c1', 'b', 2), b.join('c1', 'c', 2)];
    await vi.advanceTimersByTimeAsync(0);
    expect(r.batches.map((x) => x.members)).toEqual([['a', 'b']]);
    answers.push(b.join('c1', 'd', 3));
    await vi.advanceTimersByTimeAsync(0);
    expect(r.batches.map((x) => x.members)).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    expect(await Promise.all(answers)).toEqual(['a@1', 'b@1', 'c@2', 'd@2']);
  });

  it('keeps keys apart', async () => {
    const r = recorder();
    const b = new Batcher(options, r.flush);
    const answers = [b.join('c1', 'a'), b.join('c2', 'b'), b.join('c1', 'c')];
    await vi.advanceTimersByTimeAsync(200);
    await Promise.all(answers);
    expect([...r.batches].sort((x, y) => x.key.localeCompare(y.key))).toEqual([
      { key: 'c1', members: ['a', 'c'] },
      { key: 'c2', members: ['b'] },
    ]);
  });

  it('runs one flush per key at a time; members arriving meanwhile gather until it ends', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let first = true;
    const r = recorder(() => {
      if (!first) return Promise.resolve();
      first = false;
      return gate;
    });
    const b = new Batcher(options, r.flush);
    const one = b.join('c1', 'a');
    await vi.advanceTimersByTimeAsync(200);
    expect(r.batches).toHaveLength(1);
    // The first batch is still being sent; three latecomers arrive, one well after their window
    const later = [b.join('c1', 'b'), b.join('c1', 'c')];
    await vi.advanceTimersByTimeAsync(5_000);
    later.push(b.join('c1', 'd'));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(r.batches).toHaveLength(1);
    release();
    expect(await one).toBe('a@1');
    expect(await Promise.all(later)).toEqual(['b@2', 'c@2', 'd@2']);
    expect(r.batches[1]!.members).toEqual(['b', 'c', 'd']);
  });

  it('a window of 0 flushes each member alone, at once and concurrently (the behaviour before batching)', async () => {
    let running = 0;
    let most = 0;
    const b = new Batcher({ windowMs: 0, windowMaxMs: 0, maxWeight: 100 }, async (_key, members: string[]) => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 10));
      running--;
      return members;
    });
    expect(b.batching).toBe(false);
    const answers = [b.join('c1', 'a'), b.join('c1', 'b'), b.join('c1', 'c')];
    await vi.advanceTimersByTimeAsync(10);
    expect(await Promise.all(answers)).toEqual(['a', 'b', 'c']);
    expect(most).toBe(3);
  });

  it('a flush that throws fails every member of its batch, and the next batch still runs', async () => {
    let n = 0;
    const b = new Batcher(options, async (_key, members: string[]) => {
      n++;
      if (n === 1) throw new Error('storage down');
      return members;
    });
    const failed = [b.join('c1', 'a'), b.join('c1', 'b')].map((p) => p.catch((e: Error) => e.message));
    await vi.advanceTimersByTimeAsync(200);
    expect(await Promise.all(failed)).toEqual(['storage down', 'storage down']);
    const ok = b.join('c1', 'c');
    await vi.advanceTimersByTimeAsync(200);
    expect(await ok).toBe('c');
  });
});
