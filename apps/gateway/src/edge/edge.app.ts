import { type DynamicModule, Module } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { type AppConfig, ConfigError } from '#config';
import { ServiceModule } from '#health';
import { RevokerMetrics } from '#metrics';
import { keepBodiesAsBytes } from '../http/body-parsing.js';
import { echoRequestId } from '../http/fastify-adapter.js';
import { measureRequests } from '../http/request-metrics.js';
import { EdgeModule, EdgeRoutes } from './edge.module.js';

/**
 * The edge on its own (`npm run start:edge`): the session Redis, the session store and the token
 * verifier, with /health and /metrics; no queue Redis, no BullMQ, no webhooks and no admin API. It
 * scales with user traffic while the gateway scales with IdP events; both read the same sessions.
 */
@Module({})
export class EdgeAppModule {
  static forRoot(config: AppConfig, options: { metrics?: RevokerMetrics } = {}): DynamicModule {
    if (!config.edge.oidc && config.tokens.issuers.length === 0)
      throw new ConfigError(
        'OIDC_ISSUER: the edge on its own needs a login (OIDC_*) or token issuers (TOKEN_* / CONFIG_FILE) to check',
      );
    return {
      module: EdgeAppModule,
      imports: [
        ServiceModule.forRoot(config, {
          ...options,
          // One retry per command: a proxy's check fails fast with 503 while Redis is out of reach.
          sessionRedis: { client: { maxRetriesPerRequest: 1 } },
          sessionStore: 'required',
        }),
        EdgeModule.forRoot(config),
      ],
    };
  }
}

/** The edge's HTTP app beyond its module, as for the gateway: request ids, request metrics, the routes. */
export function configureEdge(app: NestFastifyApplication, config: AppConfig): NestFastifyApplication {
  const fastify = app.getHttpAdapter().getInstance();
  keepBodiesAsBytes(fastify, config);
  echoRequestId(fastify);
  measureRequests(fastify, app.get(RevokerMetrics));
  app.get(EdgeRoutes).mount(fastify);
  return app;
}
