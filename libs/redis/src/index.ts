export { closeRedisClient, createRedisClient, redisClientFor } from './redis-client.js';
export type { RedisClient, RedisRole } from './redis-client.js';
export { isRedisUnavailable, logRedisErrors, REPEAT_ERROR_AFTER_MS } from './redis-errors.js';
export { assertQueueRedisPolicy, masterNodes, parseInfo, readRedisMemory } from './redis-info.js';
export { canonicalStreamId, isStreamId } from './stream-id.js';
export { waitForReplicas, waitForReplicasEverywhere } from './replica-wait.js';
export { RedisModule, QUEUE_REDIS, SESSION_REDIS } from './redis.module.js';
export type { RedisConnectionOptions } from './redis.module.js';
