export { HealthController } from './health.controller.js';
export { HEALTH_TARGETS } from './health-targets.js';
export type { HealthTargets } from './health-targets.js';
export { MetricsController } from './metrics.controller.js';
export { connectMetricSources } from './metrics-sources.js';
export { queueErrorLogs } from './queue-error-logs.js';
export { ServiceModule } from './service.module.js';
export type { ServiceOptions } from './service.module.js';
