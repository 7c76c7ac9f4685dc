/**
 * Runs azurite in this process (argv as azurite's own) and makes it die with its parent: the
 * parent holds the write end of our stdin, so when the parent exits for any reason, SIGKILL
 * included, stdin ends and azurite shuts down (saving its files when it has a location).
 * `startAzurite` spawns this file; it is not meant to be run by hand.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const entry = require.resolve('azurite/dist/src/azurite.js');

const parentGone = (): void => {
  // Azurite's own SIGTERM handler closes its servers (and writes its databases); then we leave.
  setTimeout(() => process.exit(0), 3_000).unref();
  process.kill(process.pid, 'SIGTERM');
};
process.stdin.once('end', parentGone);
process.stdin.once('error', parentGone);
process.stdin.resume();
// The pipe must not keep the process alive once azurite has closed its servers.
(process.stdin as unknown as { unref?: () => void }).unref?.();

process.argv = [process.argv[0]!, entry, ...process.argv.slice(2)];
require(entry);
