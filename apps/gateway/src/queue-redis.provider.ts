import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleInit,
  type Provider,
} from '@nestjs/common';
import { APP_CONFIG, type AppConfig, closeRedisClient, type RedisClient, redisClientFor } from '#config';
import { assertQueueRedisPolicy } from '#revocation';

/** Injection token of the gateway's client of the queue Redis. */
export const QUEUE_REDIS = Symbol('QUEUE_REDIS');

/**
 * The queue Redis client. No offline queue and one retry per command: while Redis is unreachable a
 * webhook must fail fast with 503 (the sender retries), not hang until a reconnect.
 */
export const queueRedisProvider: Provider = {
  provide: QUEUE_REDIS,
  inject: [APP_CONFIG],
  useFactory: (config: AppConfig) =>
    redisClientFor(config, 'queue', {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
    }),
};

/**
 * Waits (briefly) for the first connection, so the first webhook does not fail for want of one; a
 * Redis that is down at start-up does not stop the gateway: deliveries get 503 until it is back.
 * Closes the client last, after the queue that shares it.
 */
@Injectable()
export class QueueRedisLifecycle implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('QueueRedis');

  constructor(
    @Inject(QUEUE_REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    const ready =
      this.redis.status === 'ready' ||
      (await new Promise<boolean>((resolve) => {
        this.redis.once('ready', () => resolve(true));
        setTimeout(() => resolve(false), 5000).unref();
      }));
    if (!ready) {
      this.logger.warn('queue Redis is not reachable yet; deliveries get 503 until it is');
      return;
    }
    // Refuse to start on a Redis that may evict queued revocations (unless overridden).
    await assertQueueRedisPolicy(this.redis, this.config.allowEvictingQueueRedis);
  }

  async onApplicationShutdown(): Promise<void> {
    await closeRedisClient(this.redis);
  }
}
