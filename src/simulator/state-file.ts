/**
 * The simulator's state in a file, for `npm start -- --data DIR`: read once at start, written
 * atomically (temporary file + rename) every few seconds while it changes and once at stop, so a
 * restart, even after a crash, finds the nodes CycleCloud "has".
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Simulator, SimulatorState } from './model.ts';
import { codeOf } from '../platform/errors.ts';

/** The saved state, or undefined when there is no file yet. Throws naming the file when it is unreadable. */
export function readSimulatorState(path: string): SimulatorState | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (codeOf(error) === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return JSON.parse(text) as SimulatorState;
  } catch {
    throw new Error(`${path} is not valid JSON; move it away to start the simulator afresh`);
  }
}

/** Keeps `path` up to date with the model; `stop()` writes a last time and stops the timer. */
export function keepSimulatorState(sim: Simulator, path: string, everyMs = 2_000): { save(): void; stop(): void } {
  let last = '';
  const save = (): void => {
    const text = JSON.stringify(sim.exportState());
    if (text === last) return;
    writeFileSync(`${path}.tmp`, text, { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
    last = text;
  };
  const timer = setInterval(save, everyMs);
  timer.unref();
  return {
    save,
    stop: () => {
      clearInterval(timer);
      save();
    },
  };
}
