export { commandId, isIssuedCommandId } from './command-id.js';
export {
  ALL_QUEUES,
  MAINTENANCE_QUEUE,
  REVOCATION_PRIORITY_QUEUE,
  REVOCATION_QUEUE,
  REVOKE_JOB,
} from './queue-names.js';
export {
  COMMAND_SOURCES,
  CommandSource,
  FAN_OUT_BATCH,
  RevocationCommand,
  RevocationTarget,
} from './revocation-command.js';
export { RevocationProducer } from './revocation-producer.js';
export type { EnqueueResult, ProducerOptions } from './revocation-producer.js';
export { AuditLog } from './audit-log.js';
export type { AuditRecord } from './audit-log.js';
export { QueueKeys } from './queue-keys.js';
export { Quarantine } from './quarantine.js';
export type { QuarantineBounds, QuarantineEntry, StoredQuarantineEntry } from './quarantine.js';
export { producerOptions, revocationJobOptions } from './job-options.js';
export { describeWarmUp, inFlight, untilWarm } from './warm-up.js';
export type { WarmUpOptions, WarmUpReport } from './warm-up.js';
