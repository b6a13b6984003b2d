export { RevokerMetrics } from './revoker-metrics.js';
