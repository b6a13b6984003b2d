/** The queue the gateway fills and the worker drains. */
export const REVOCATION_QUEUE = 'revocations';
/** Admin revocations: their own queue and workers, so webhook backlog never delays them. */
export const REVOCATION_PRIORITY_QUEUE = 'revocations-priority';
/** Scheduled jobs: the index sweep and the Redis memory watch. */
export const MAINTENANCE_QUEUE = 'maintenance';
/** Every queue of the service, for dashboards and readiness. */
export const ALL_QUEUES = [REVOCATION_QUEUE, REVOCATION_PRIORITY_QUEUE, MAINTENANCE_QUEUE] as const;
/** Job name of a revocation command (one job name, one schema: RevocationCommand). */
export const REVOKE_JOB = 'revoke';
