/**
 * The bounds of a lease and of a max lifetime in seconds, shared by the message schemas
 * (`src/ledger/`) and the settings that default them (`config.ts`).
 */

/** A lease's length (docs/api.md §3 `lease.seconds`, renew's `seconds`, `DEFAULT_LEASE_SECONDS`): 1 minute to 30 days. */
export const LEASE_SECONDS = { min: 60, max: 30 * 86_400 } as const;
/** `maxLifetimeSeconds` and `DEFAULT_MAX_LIFETIME_SECONDS`: 1 minute to 365 days. */
export const MAX_LIFETIME_SECONDS = { min: 60, max: 365 * 86_400 } as const;
