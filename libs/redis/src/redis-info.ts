import type { Cluster, Redis } from 'ioredis';
import type { RedisClient } from './redis-client.js';
import type { MemoryReading } from '#metrics';

/** The `name:value` lines of an INFO reply. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return fields;
}

/**
 * The masters to ask: the Redis itself, or every master of a cluster once the client has mapped its
 * slots (before that, its node list holds the seeds, which may include one that is down).
 */
export async function masterNodes(redis: RedisClient): Promise<Redis[]> {
  if (!('nodes' in redis)) return [redis as Redis];
  const cluster = redis as Cluster;
  if (cluster.status !== 'ready') {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error('the Redis Cluster is not ready after 30 s')), 30_000);
      cluster.once('ready', () => resolve());
    }).finally(() => clearTimeout(timer));
  }
  return cluster.nodes('master');
}

/**
 * One Redis role's memory. On a cluster every master has its own `maxmemory`: the reading is the
 * fullest master's, with the evictions and OOM refusals of all of them, and degraded when any master
 * uses more than `warnFraction` of its limit.
 */
export async function readRedisMemory(
  redis: RedisClient,
  role: MemoryReading['role'],
  warnFraction: number,
): Promise<MemoryReading> {
  const nodes = await Promise.all(
    (await masterNodes(redis)).map(async (node) => {
      const [memory, stats, errors] = await Promise.all(
        ['memory', 'stats', 'errorstats'].map(async (section) => parseInfo(await node.info(section))),
      );
      const usedMemory = Number(memory!.get('used_memory') ?? 0);
      const maxmemory = Number(memory!.get('maxmemory') ?? 0);
      return {
        usedMemory,
        maxmemory,
        fullness: maxmemory > 0 ? usedMemory / maxmemory : 0,
        policy: memory!.get('maxmemory_policy') ?? 'unknown',
        fragmentationRatio: Number(memory!.get('mem_fragmentation_ratio') ?? 0),
        evictedKeys: Number(stats!.get('evicted_keys') ?? 0),
        oomErrors: Number(/count=(\d+)/.exec(errors!.get('errorstat_OOM') ?? '')?.[1] ?? 0),
      };
    }),
  );
  const fullest = nodes.reduce((a, b) => (b.fullness > a.fullness ? b : a));
  return {
    role,
    usedMemory: fullest.usedMemory,
    maxmemory: fullest.maxmemory,
    policy: fullest.policy,
    fragmentationRatio: fullest.fragmentationRatio,
    evictedKeys: nodes.reduce((n, x) => n + x.evictedKeys, 0),
    oomErrors: nodes.reduce((n, x) => n + x.oomErrors, 0),
    degraded: nodes.some((x) => x.maxmemory > 0 && x.fullness > warnFraction),
    checkedAt: Date.now(),
  };
}

/**
 * BullMQ loses jobs when Redis evicts keys, so the queue Redis (every master of a cluster) must run
 * `maxmemory-policy noeviction`. Throws an error that says why and how to fix it, unless explicitly overridden.
 */
export async function assertQueueRedisPolicy(redis: RedisClient, allowEvicting: boolean): Promise<string> {
  const policies = await Promise.all(
    (await masterNodes(redis)).map(
      async (node) => parseInfo(await node.info('memory')).get('maxmemory_policy') ?? 'unknown',
    ),
  );
  const policy = policies.find((p) => p !== 'noeviction') ?? 'noeviction';
  if (policy !== 'noeviction' && !allowEvicting) {
    throw new Error(
      `the queue Redis runs maxmemory-policy ${policy}; BullMQ needs noeviction or it silently loses queued ` +
        `revocations. Run \`CONFIG SET maxmemory-policy noeviction\` (and put it in redis.conf), point ` +
        `QUEUE_REDIS_URL at a Redis that has it, or set ALLOW_EVICTING_QUEUE_REDIS=true to run anyway.`,
    );
  }
  return policy;
}
