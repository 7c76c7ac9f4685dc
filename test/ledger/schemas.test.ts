import { describe, expect, it } from 'vitest';
import { parseRequestMessage } from '../../src/ledger/schemas.ts';

describe('parseRequestMessage', () => {
  it('names each bad field by its path', () => {
    const r = parseRequestMessage({ requestId: 'a b', cluster: 'hpc', demands: [{ nodearray: 'x', count: 0 }] });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.path).sort()).toEqual(['demands.0.count', 'requestId']);
  });

  it('names an unknown field itself, not the object holding it', () => {
    const r = parseRequestMessage({ requestId: 'a', cluster: 'hpc', demands: [{ nodearray: 'x', count: 1, colour: 'red' }] });
    expect(r).toEqual({ ok: false, errors: [{ path: 'demands.0.colour', message: 'is not a known field' }] });
  });

  it('defaults kind to scale and refuses an unknown kind', () => {
    const ok = parseRequestMessage({ requestId: 'a', cluster: 'hpc', demands: [{ nodearray: 'x', count: 1 }] });
    expect(ok.ok && ok.value.kind).toBe('scale');
    expect(parseRequestMessage({ kind: 'grow', requestId: 'a' })).toEqual({ ok: false, errors: [{ path: 'kind', message: 'must be "scale" or "terminate"' }] });
  });

  it('accepts https callbacks and http only to loopback', () => {
    const base = { requestId: 'a', cluster: 'hpc', demands: [{ nodearray: 'x', count: 1 }] };
    expect(parseRequestMessage({ ...base, callbackUrl: 'https://s.example.com/h' }).ok).toBe(true);
    expect(parseRequestMessage({ ...base, callbackUrl: 'http://127.0.0.1:9000/h' }).ok).toBe(true);
    const bad = parseRequestMessage({ ...base, callbackUrl: 'http://s.example.com/h' });
    expect(bad.ok ? [] : bad.errors.map((e) => e.path)).toEqual(['callbackUrl']);
  });

  it('requires a terminate request to name at least one node selector', () => {
    const r = parseRequestMessage({ kind: 'terminate', requestId: 'd', cluster: 'hpc' });
    expect(r.ok).toBe(false);
    expect(parseRequestMessage({ kind: 'terminate', requestId: 'd', cluster: 'hpc', names: ['ondemand-1'] }).ok).toBe(true);
  });
});
