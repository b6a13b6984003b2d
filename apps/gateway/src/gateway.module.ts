import { type DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import type { AppConfig } from '#config';
import { ServiceModule } from '#health';
import type { RevokerMetrics } from '#metrics';
import { AdminAuditInterceptor } from './admin/admin-audit.interceptor.js';
import { AdminAuthService } from './admin/admin-auth.service.js';
import { AdminDeadlineInterceptor } from './admin/admin-deadline.interceptor.js';
import { AdminController } from './admin/admin.controller.js';
import { AdminGuard } from './admin/admin.guard.js';
import { AdminService } from './admin/admin.service.js';
import { IngestService } from './enqueue/ingest.service.js';
import { quarantineProvider } from './enqueue/quarantine.provider.js';
import { RedisUnavailableFilter } from './http/redis-unavailable.js';
import { BackchannelLogoutController } from './webhooks/backchannel-logout.controller.js';
import { PingOneAuthGuard } from './webhooks/pingone-auth.guard.js';
import { PingOneWebhookController } from './webhooks/pingone-webhook.controller.js';
import { SsfController } from './webhooks/ssf.controller.js';
import { IntrospectController } from './tokens/introspect.controller.js';
import { IntrospectionAuth } from './tokens/introspection-auth.js';
import { EdgeModule } from './edge/edge.module.js';

/**
 * HTTP in: authenticate, parse and normalise every source (webhooks/), then store it durably
 * (enqueue/); the admin API (admin/) revokes through the same enqueue step; tokens/ answers RFC 7662
 * introspection from the token verifier; edge/ (its own module, runnable alone) serves the proxies.
 */
@Module({})
export class GatewayModule {
  static forRoot(config: AppConfig, options: { metrics?: RevokerMetrics } = {}): DynamicModule {
    const tokens = config.tokens.issuers.length > 0;
    return {
      module: GatewayModule,
      imports: [
        ServiceModule.forRoot(config, {
          ...options,
          // No offline queue and one retry per command: while Redis is unreachable a webhook must fail
          // fast with 503 (the sender retries), not hang until a reconnect. A Redis down at start-up
          // does not stop the gateway: deliveries get 503 until it is back.
          queueRedis: {
            client: { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2000 },
            startupWaitMs: 5000,
          },
          // The admin API reads sessions through the same store as the applications, when it has the
          // tag secret.
          sessionRedis: { client: { maxRetriesPerRequest: 1 }, when: (c) => Boolean(c.session.tagSecret) },
          sessionStore: 'optional',
        }),
        // Forward auth and the login, and the token verifier the introspection endpoint shares.
        EdgeModule.forRoot(config),
      ],
      controllers: [
        PingOneWebhookController,
        BackchannelLogoutController,
        SsfController,
        AdminController,
        // The token verifier's endpoint exists when token issuers are configured.
        ...(tokens ? [IntrospectController] : []),
      ],
      providers: [
        IngestService,
        quarantineProvider,
        PingOneAuthGuard,
        AdminAuthService,
        AdminGuard,
        AdminService,
        AdminAuditInterceptor,
        AdminDeadlineInterceptor,
        { provide: APP_FILTER, useClass: RedisUnavailableFilter },
        ...(tokens ? [IntrospectionAuth] : []),
      ],
    };
  }
}
