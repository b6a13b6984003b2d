export { RevokerMetrics } from './revoker-metrics.js';
export type { MemoryReading } from './revoker-metrics.js';
