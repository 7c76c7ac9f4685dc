// The helpers live in src/local/net.ts (the local host needs them too); tests keep importing them here.
export { freePort, isPortFree, waitForPort } from '../../src/local/net.ts';
