/** The queue the gateway fills and the worker drains. */
export const REVOCATION_QUEUE = 'revocations';
/** Job name of a revocation command (one job name, one schema: RevocationCommand). */
export const REVOKE_JOB = 'revoke';
