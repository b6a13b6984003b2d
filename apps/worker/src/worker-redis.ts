import { Inject, Injectable, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import {
  APP_CONFIG,
  type AppConfig,
  closeRedisClient,
  createRedisClient,
  logRedisErrors,
  type RedisClient,
} from '#config';

export const WORKER_QUEUE_REDIS = Symbol('WORKER_QUEUE_REDIS');

/**
 * The worker's client of the queue Redis. BullMQ workers need `maxRetriesPerRequest: null` (their
 * blocking calls must wait out a reconnect rather than fail), and they duplicate it for blocking.
 */
export const workerQueueRedisProvider: Provider = {
  provide: WORKER_QUEUE_REDIS,
  inject: [APP_CONFIG],
  useFactory: (config: AppConfig) =>
    logRedisErrors(
      createRedisClient(
        config.redis.queueUrl,
        config.redis.queueCluster,
        {
          maxRetriesPerRequest: null,
          // Back within a second of Redis (ioredis 6 backs off to 5 s; BullMQ's blocking connections,
          // duplicates of this client, then took over 10 s to take jobs again after a 3 s outage).
          retryStrategy: (times) => Math.min(times * 100, 1000),
        },
        config.redis.queueClusterNodes,
      ),
      'queue Redis',
    ),
};

/** Closes the client last: after workers and queues (Nest runs shutdown hooks in reverse module order). */
@Injectable()
export class WorkerQueueRedisCloser implements OnApplicationShutdown {
  constructor(@Inject(WORKER_QUEUE_REDIS) private readonly redis: RedisClient) {}

  async onApplicationShutdown(): Promise<void> {
    await closeRedisClient(this.redis);
  }
}
