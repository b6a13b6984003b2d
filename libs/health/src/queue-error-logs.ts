import { getQueueToken } from '@nestjs/bullmq';
import type { Provider } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { logRedisErrors, type RedisClient } from '#redis';
import { ALL_QUEUES } from '#revocation';

/** Token of the listeners on every queue's errors (nothing injects it; providing it attaches them). */
export const QUEUE_ERROR_LOGS = Symbol('QUEUE_ERROR_LOGS');

/**
 * Logs every queue's errors (JSON, once per outage): without a listener BullMQ prints each of a
 * queue's connection errors to stderr. `redisToken` is the queue Redis client, whose 'ready' ends one.
 */
export const queueErrorLogs = (redisToken: symbol): Provider => ({
  provide: QUEUE_ERROR_LOGS,
  inject: [redisToken, ...ALL_QUEUES.map((q) => getQueueToken(q))],
  useFactory: (redis: RedisClient, ...queues: Queue[]) =>
    queues.map((q) => logRedisErrors(q, `queue ${q.name}`, redis)),
});
