/**
 * The framework-free part of libs/redis (`#redis/core`), for libraries that must not load NestJS or
 * the configuration (the quarantine).
 */
export type { RedisClient } from './redis-client.js';
export { canonicalStreamId, isStreamId } from './stream-id.js';
