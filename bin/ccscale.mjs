#!/usr/bin/env node
// The operator CLI. Node 22.19+ runs the TypeScript sources directly (type stripping), so there is
// no build step; older Node gets one clear message instead of a syntax error.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19) || !process.features?.typescript) {
  process.stderr.write(`ccscale needs Node.js 22.19 or newer (this is ${process.version})\n`);
  process.exit(2);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env });
