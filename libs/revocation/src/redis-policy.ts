import type { Cluster, Redis } from 'ioredis';

/** Reads one field of INFO (on a cluster, from the first master). */
export async function redisInfoField(
  redis: Redis | Cluster,
  section: string,
  field: string,
): Promise<string | undefined> {
  const node = 'nodes' in redis ? (redis as Cluster).nodes('master')[0]! : (redis as Redis);
  const info = await node.info(section);
  return new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

/**
 * BullMQ loses jobs when Redis evicts keys, so the queue Redis must run `maxmemory-policy noeviction`.
 * Throws an error that says why and how to fix it, unless explicitly overridden.
 */
export async function assertQueueRedisPolicy(
  redis: Redis | Cluster,
  allowEvicting: boolean,
): Promise<string> {
  const policy = (await redisInfoField(redis, 'memory', 'maxmemory_policy')) ?? 'unknown';
  if (policy !== 'noeviction' && !allowEvicting) {
    throw new Error(
      `the queue Redis runs maxmemory-policy ${policy}; BullMQ needs noeviction or it silently loses queued ` +
        `revocations. Run \`CONFIG SET maxmemory-policy noeviction\` (and put it in redis.conf), point ` +
        `QUEUE_REDIS_URL at a Redis that has it, or set ALLOW_EVICTING_QUEUE_REDIS=true to run anyway.`,
    );
  }
  return policy;
}
