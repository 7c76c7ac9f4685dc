#!/usr/bin/env node
// The operator CLI. Node 22.19+ runs the TypeScript sources directly (type stripping), so there is
// no build step; older Node gets one clear message instead of a syntax error.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19) || !process.features?.typescript) {
  process.stderr.write(`ccscale needs Node.js 22.19 or newer (this is ${process.version})\n`);
  process.exit(2);
}
// `ccscale … | head` closes the pipe early: that is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env });
