import {
  type DynamicModule,
  Logger,
  Module,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import type { RedisOptions } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '#config';
import { closeRedisClient, type RedisClient, redisClientFor, type RedisRole } from './redis-client.js';
import { assertQueueRedisPolicy } from './redis-info.js';

/** Injection token of a process's client of the queue Redis (the same name in every app). */
export const QUEUE_REDIS = Symbol('QUEUE_REDIS');
/** Injection token of a process's client of the session Redis; null where the process has none. */
export const SESSION_REDIS = Symbol('SESSION_REDIS');

/** How one process connects to one Redis role. */
export interface RedisConnectionOptions {
  role: RedisRole;
  /** ioredis options of this process's client, over the role's (see `redisClientFor`). */
  client?: RedisOptions;
  /** Provide null instead of a client when this says no (a gateway without the session tag secret). */
  when?: (config: AppConfig) => boolean;
  /**
   * Wait at most this long for the first connection at start-up, then start anyway (logged): a
   * gateway whose Redis is down answers 503 until it is back. Without it, start-up waits for Redis.
   */
  startupWaitMs?: number;
}

/**
 * At start-up: (briefly, with `startupWaitMs`) wait for the first connection, and refuse a queue Redis
 * that may evict BullMQ's keys (unless ALLOW_EVICTING_QUEUE_REDIS). At shutdown: close the client,
 * after everything that shares it (this module sits below BullMQ's, whose hooks run first).
 */
class RedisLifecycle implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Redis');

  constructor(
    private readonly redis: RedisClient | null,
    private readonly config: AppConfig,
    private readonly options: RedisConnectionOptions,
  ) {}

  async onModuleInit(): Promise<void> {
    if (!this.redis || this.options.role !== 'queue') return;
    const wait = this.options.startupWaitMs;
    if (wait !== undefined && !(await this.connectedWithin(this.redis, wait))) {
      this.logger.warn(`the ${this.options.role} Redis is not reachable yet; requests get 503 until it is`);
      return;
    }
    await assertQueueRedisPolicy(this.redis, this.config.allowEvictingQueueRedis);
  }

  async onApplicationShutdown(): Promise<void> {
    await closeRedisClient(this.redis);
  }

  private connectedWithin(redis: RedisClient, ms: number): Promise<boolean> {
    if (redis.status === 'ready') return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      redis.once('ready', () => resolve(true));
      setTimeout(() => resolve(false), ms).unref();
    });
  }
}

/**
 * One way to provide a Redis connection: `RedisModule.forRole(...)` gives the role's client under
 * QUEUE_REDIS or SESSION_REDIS, made from config, checked at start-up and closed at shutdown.
 */
@Module({})
export class RedisModule {
  static forRole(options: RedisConnectionOptions): DynamicModule {
    const token = options.role === 'queue' ? QUEUE_REDIS : SESSION_REDIS;
    return {
      module: RedisModule,
      providers: [
        {
          provide: token,
          inject: [APP_CONFIG],
          useFactory: (config: AppConfig) =>
            (options.when?.(config) ?? true) ? redisClientFor(config, options.role, options.client) : null,
        },
        {
          provide: RedisLifecycle,
          inject: [token, APP_CONFIG],
          useFactory: (redis: RedisClient | null, config: AppConfig) =>
            new RedisLifecycle(redis, config, options),
        },
      ],
      exports: [token],
    };
  }
}
