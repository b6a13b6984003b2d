import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { AppConfig } from '#config';
import { RevokerMetrics } from '#metrics';
import { AdminAuthService } from './admin/admin-auth.service.js';
import { EdgeRoutes } from './edge/edge.module.js';
import { limitAdminCalls } from './http/admin-rate-limit.js';
import { IntrospectionAuth } from './tokens/introspection-auth.js';
import { keepBodiesAsBytes } from './http/body-parsing.js';
import { mountDashboard } from './http/dashboard.js';
import { echoRequestId } from './http/fastify-adapter.js';
import { serveOpenApi } from './http/openapi.js';
import { measureRequests } from './http/request-metrics.js';
import { authenticateWebhooksEarly } from './http/webhook-auth.js';
import { PingOneAuthGuard } from './webhooks/pingone-auth.guard.js';

export { gatewayAdapter, gatewayLogger } from './http/fastify-adapter.js';

/**
 * Everything the HTTP app needs beyond its module, in one place for production and tests alike (so a
 * supertest test behaves like the real service), one file per concern under http/.
 */
export async function configureGateway(
  app: NestFastifyApplication,
  config: AppConfig,
): Promise<NestFastifyApplication> {
  const fastify = app.getHttpAdapter().getInstance();
  keepBodiesAsBytes(fastify, config);
  echoRequestId(fastify);
  authenticateWebhooksEarly(fastify, app.get(PingOneAuthGuard));
  const introspection = config.tokens.issuers.length > 0 ? app.get(IntrospectionAuth) : undefined;
  await limitAdminCalls(fastify, config, app.get(AdminAuthService), introspection);
  measureRequests(fastify, app.get(RevokerMetrics));
  app.get(EdgeRoutes).mount(fastify);
  await mountDashboard(app, config);
  serveOpenApi(app);
  return app;
}
