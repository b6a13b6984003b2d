import { Inject, Injectable, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import { APP_CONFIG, type AppConfig, closeRedisClient, type RedisClient, redisClientFor } from '#config';
import { SessionStore } from '#session-store';
import { GATEWAY_SESSION_STORE } from './admin.service.js';

export const GATEWAY_SESSION_REDIS = Symbol('GATEWAY_SESSION_REDIS');

const sessionRedisProvider: Provider = {
  provide: GATEWAY_SESSION_REDIS,
  inject: [APP_CONFIG],
  useFactory: (config: AppConfig) =>
    config.session.tagSecret ? redisClientFor(config, 'sessions', { maxRetriesPerRequest: 1 }) : null,
};

/** The admin API reads sessions through the same store as the applications (when it has the tag secret). */
const sessionStoreProvider: Provider = {
  provide: GATEWAY_SESSION_STORE,
  inject: [APP_CONFIG, GATEWAY_SESSION_REDIS],
  useFactory: (config: AppConfig, redis: RedisClient | null) =>
    redis && config.session.tagSecret
      ? new SessionStore({
          redis,
          prefix: config.redis.sessionPrefix,
          tagSecret: config.session.tagSecret,
          clockSkewMs: config.session.clockSkewMs,
        })
      : null,
};

@Injectable()
class GatewaySessionRedisCloser implements OnApplicationShutdown {
  constructor(@Inject(GATEWAY_SESSION_REDIS) private readonly redis: RedisClient | null) {}

  async onApplicationShutdown(): Promise<void> {
    await closeRedisClient(this.redis);
  }
}

export const gatewaySessionStoreProviders: Provider[] = [
  sessionRedisProvider,
  sessionStoreProvider,
  GatewaySessionRedisCloser,
];
