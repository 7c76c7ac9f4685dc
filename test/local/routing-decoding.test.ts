import { describe, expect, it } from 'vitest';
import { compileRoute, matchRoute } from '../../src/local/http-trigger.ts';
import { decodeQueueItem } from '../../src/local/queue-trigger.ts';
import { httpReg } from './helpers.ts';

const route = (template: string) => compileRoute(httpReg('r', { handler: () => ({}) }), template);

describe('route templates', () => {
  it('matches literals case-insensitively and binds parameters', () => {
    expect(matchRoute(route('clusters/{cluster}/status'), ['Clusters', 'hpc', 'STATUS'])).toEqual({ cluster: 'hpc' });
    expect(matchRoute(route('clusters/{cluster}/status'), ['clusters', 'hpc'])).toBeUndefined();
    expect(matchRoute(route('clusters/{cluster}/status'), ['clusters', 'hpc', 'status', 'x'])).toBeUndefined();
  });

  it('supports optional, constrained and catch-all parameters', () => {
    expect(matchRoute(route('items/{id?}'), ['items'])).toEqual({});
    expect(matchRoute(route('items/{id:int}'), ['items', '7'])).toEqual({ id: '7' });
    expect(matchRoute(route('files/{*path}'), ['files', 'a', 'b.txt'])).toEqual({ path: 'a/b.txt' });
  });
});

describe('queue message decoding', () => {
  it('decodes base64 JSON to a value and other text to a string', () => {
    expect(decodeQueueItem(Buffer.from('{"a":[1]}').toString('base64'), 'base64')).toEqual({ text: '{"a":[1]}', item: { a: [1] } });
    expect(decodeQueueItem(Buffer.from('hello').toString('base64'), 'base64').item).toBe('hello');
    expect(decodeQueueItem('42', 'none').item).toBe(42);
  });

  it('refuses text that is not base64 when the host expects base64', () => {
    expect(() => decodeQueueItem('{"kind":"scale"}', 'base64')).toThrow(/not valid base64/);
  });
});
