/**
 * The node filter evaluator: the expressions real clients send, and errors that name the position.
 */
import { describe, expect, it } from 'vitest';
import { compileFilter, FilterSyntaxError } from '../../src/simulator/filter.ts';

const nodes = [
  { Name: 'a-1', State: 'Started', Status: 'Ready', ClusterName: 'c', Configuration: { autoscale: { enabled: true } }, CoreCount: 4 },
  { Name: 'a-2', State: 'Terminated', Status: 'Off', ClusterName: 'c', KeepAlive: false, CoreCount: 8 },
  { Name: 'b-1', Status: 'Acquiring', ClusterName: 'd', KeepAlive: true, CoreCount: 8 },
];

const names = (expr: string): string[] => nodes.filter(compileFilter(expr)).map((n) => n.Name);

describe('compileFilter', () => {
  it.each([
    ['State == "Started"', ['a-1']],
    ['State === "Started"', ['a-1']],
    ["Status != 'Ready'", ['a-2', 'b-1']],
    ['State !== "Started"', ['a-2', 'b-1']],
    ['Name in {"a-1", "b-1"}', ['a-1', 'b-1']],
    ['Name in {}', []],
    ['State is undefined', ['b-1']],
    ['State is not undefined', ['a-1', 'a-2']],
    ['KeepAlive', ['b-1']],
    ['!KeepAlive', ['a-1', 'a-2']],
    ['Configuration.autoscale.enabled == true', ['a-1']],
    ['CoreCount == 8 && ClusterName == "c"', ['a-2']],
    ['ClusterName == "c" && Name in {"a-1","a-2","b-1"} && (State=="Terminated" || State is undefined)', ['a-2']],
    ['Status == "Off" || Status == "Acquiring" && ClusterName == "d"', ['a-2', 'b-1']],
    ['Name == "a \\"quoted\\""', []],
  ])('%s', (expr, expected) => {
    expect(names(expr)).toEqual(expected);
  });

  it.each([
    ['', /empty/],
    ['Name ==', /expected a value at 7/],
    ['Name == "x', /unterminated string at 8/],
    ['(Name == "x"', /expected '\)'/],
    ['Name in {"a" "b"}', /expected '}'/],
    ['Name is defined', /expected 'undefined'/],
    ['Name == "x" Status', /expected end of expression/],
    ['Name # 1', /unexpected character at 5/],
  ])('rejects %j', (expr, message) => {
    expect(() => compileFilter(expr)).toThrow(FilterSyntaxError);
    expect(() => compileFilter(expr)).toThrow(message);
  });
});
