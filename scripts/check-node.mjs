// Runs before `npm start` (as `node --import`) and `npm test`: on a Node older than the
// dependencies need, one plain sentence instead of ERR_UNKNOWN_FILE_EXTENSION or a vitest crash.
// `npm ci` normally puts Node 22 into node_modules/.bin (the node-<os>-<cpu> optional dependency),
// and npm scripts find it there first, so this only fires when that package is missing.
// Plain JavaScript on purpose: it must parse on any Node.
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const wanted = /^>=\s*(\d+)\.(\d+)\.(\d+)$/.exec(pkg.engines.node);
const need = wanted.slice(1).map(Number);
const have = process.versions.node.split('.').map(Number);
const older = have[0] !== need[0] ? have[0] < need[0] : have[1] !== need[1] ? have[1] < need[1] : have[2] < need[2];
if (older) {
  const binary = `node-${process.platform}-${process.arch}`;
  const shipped = Object.keys(pkg.optionalDependencies ?? {}).includes(binary);
  process.stderr.write(
    `cyclecloud-scaler needs Node.js ${need.join('.')} or newer; this is v${process.versions.node} (${process.execPath}).\n` +
      (shipped
        ? `  npm ci installs Node ${need[0]} into node_modules/.bin (package ${binary}) and npm scripts use it first; it is missing:\n` +
          `  run \`npm ci\` again (without --omit=optional or --no-optional), or put Node ${need[0]} first on PATH.\n`
        : `  No Node ${need[0]} package is pinned for ${process.platform}-${process.arch}: install Node ${need[0]} and put it first on PATH.\n`),
  );
  process.exit(1);
}
