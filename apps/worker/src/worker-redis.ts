import { Inject, Injectable, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import { APP_CONFIG, type AppConfig, closeRedisClient, type RedisClient, redisClientFor } from '#config';

export const WORKER_QUEUE_REDIS = Symbol('WORKER_QUEUE_REDIS');

/**
 * The worker's client of the queue Redis. BullMQ workers need `maxRetriesPerRequest: null` (their
 * blocking calls must wait out a reconnect rather than fail), and they duplicate it for blocking.
 */
export const workerQueueRedisProvider: Provider = {
  provide: WORKER_QUEUE_REDIS,
  inject: [APP_CONFIG],
  useFactory: (config: AppConfig) => redisClientFor(config, 'queue', { maxRetriesPerRequest: null }),
};

/** Closes the client last: after workers and queues (Nest runs shutdown hooks in reverse module order). */
@Injectable()
export class WorkerQueueRedisCloser implements OnApplicationShutdown {
  constructor(@Inject(WORKER_QUEUE_REDIS) private readonly redis: RedisClient) {}

  async onApplicationShutdown(): Promise<void> {
    await closeRedisClient(this.redis);
  }
}
