import { Inject, Injectable, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import {
  APP_CONFIG,
  type AppConfig,
  closeRedisClient,
  ConfigError,
  type RedisClient,
  redisClientFor,
} from '#config';
import { SessionStore } from '#session-store';

export const SESSION_REDIS = Symbol('SESSION_REDIS');

export const sessionRedisProvider: Provider = {
  provide: SESSION_REDIS,
  inject: [APP_CONFIG],
  // A session Redis that is down should fail the job attempt fast (it is retried with backoff).
  useFactory: (config: AppConfig) => redisClientFor(config, 'sessions', { maxRetriesPerRequest: 2 }),
};

/** The session store the applications write to; the worker revokes through it. */
export const sessionStoreProvider: Provider = {
  provide: SessionStore,
  inject: [APP_CONFIG, SESSION_REDIS],
  useFactory: (config: AppConfig, redis: RedisClient) => {
    if (!config.session.tagSecret)
      throw new ConfigError(
        'SESSION_TAG_SECRET: required by the worker (the same secret the applications use)',
      );
    return new SessionStore({
      redis,
      prefix: config.redis.sessionPrefix,
      tagSecret: config.session.tagSecret,
      clockSkewMs: config.session.clockSkewMs,
    });
  },
};

/** Closes the session Redis client after the workers that use it have stopped. */
@Injectable()
export class SessionRedisCloser implements OnApplicationShutdown {
  constructor(@Inject(SESSION_REDIS) private readonly redis: RedisClient) {}

  async onApplicationShutdown(): Promise<void> {
    await closeRedisClient(this.redis);
  }
}
