import { Inject, Injectable, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '#config';
import { SessionStore } from '#session-store';
import { GATEWAY_SESSION_STORE } from './admin.service.js';

export const GATEWAY_SESSION_REDIS = Symbol('GATEWAY_SESSION_REDIS');

const sessionRedisProvider: Provider = {
  provide: GATEWAY_SESSION_REDIS,
  inject: [APP_CONFIG],
  useFactory: (config: AppConfig) =>
    config.session.tagSecret
      ? new Redis(config.redis.url, { maxRetriesPerRequest: 1, lazyConnect: false })
      : null,
};

/** The admin API reads sessions through the same store as the applications (when it has the tag secret). */
const sessionStoreProvider: Provider = {
  provide: GATEWAY_SESSION_STORE,
  inject: [APP_CONFIG, GATEWAY_SESSION_REDIS],
  useFactory: (config: AppConfig, redis: Redis | null) =>
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
  constructor(@Inject(GATEWAY_SESSION_REDIS) private readonly redis: Redis | null) {}

  async onApplicationShutdown(): Promise<void> {
    await this.redis?.quit().catch(() => this.redis?.disconnect());
  }
}

export const gatewaySessionStoreProviders: Provider[] = [
  sessionRedisProvider,
  sessionStoreProvider,
  GatewaySessionRedisCloser,
];
