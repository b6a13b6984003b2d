import type { Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';

/** What readiness looks at; each app provides it from its own clients. */
export interface HealthTargets {
  /** The session Redis, when this process talks to it. */
  sessions?: Redis | Cluster | null;
  queue: Redis | Cluster;
  queuePrefix: string;
  queues: Queue[];
}

export const HEALTH_TARGETS = Symbol('HEALTH_TARGETS');
