import type { Queue } from 'bullmq';
import type { RedisClient } from '#redis';
import type { QueueKeys } from '#revocation';

/** What readiness looks at; each app provides it from its own clients. */
export interface HealthTargets {
  /** The session Redis, when this process talks to it. */
  sessions?: RedisClient | null;
  /** The queue Redis: absent in a process without queues (the edge on its own). */
  queue?: RedisClient;
  /** Our keys on the queue Redis (the memory watch's readings). */
  keys?: QueueKeys;
  queues: Queue[];
}

export const HEALTH_TARGETS = Symbol('HEALTH_TARGETS');
