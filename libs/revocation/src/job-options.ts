import type { AppConfig } from '#config';
import { QueueKeys } from './queue-keys.js';
import type { ProducerOptions } from './revocation-producer.js';

/**
 * Retries, backoff and retention of every revocation job, from config: completed jobs are trimmed by
 * age and count, failed ones are kept for inspection and replay. Shared by the gateway and the worker
 * (which enqueues group fan-outs) so both queue alike.
 */
export function revocationJobOptions(config: AppConfig) {
  return {
    attempts: config.jobs.attempts,
    backoff: { type: 'exponential', delay: config.jobs.backoffMs },
    removeOnComplete: { age: config.jobs.completedMaxAgeSec, count: config.jobs.completedMaxCount },
    removeOnFail: false,
  };
}

/** What the RevocationProducer needs, from config. */
export function producerOptions(config: AppConfig): ProducerOptions {
  return {
    dedupWindowMs: config.dedupWindowMs,
    keys: new QueueKeys(config.redis.queuePrefix),
    jobOptions: revocationJobOptions(config),
    fused: config.enqueueOneScript,
  };
}
