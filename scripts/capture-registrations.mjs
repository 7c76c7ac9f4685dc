// Build helper: prints, after a marker line, the registrations functions/index.ts makes (names and
// options, without handlers) as JSON. scripts/build.mjs runs it twice with different STORAGE_PREFIX
// values to find the options that depend on app settings at run time.
import { captureRegistrations } from '../src/local/registrations.ts';

const registrations = await captureRegistrations(() => import('../functions/index.ts'));
const plain = registrations.map(({ kind, name, options }) => {
  const { handler: _handler, ...rest } = options;
  return { kind, name, options: rest };
});
process.stdout.write(`\n@@registrations@@\n${JSON.stringify(plain)}\n`);
