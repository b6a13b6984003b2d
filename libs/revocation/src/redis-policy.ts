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

const slotCache = new Map<string, number>();
const replicaCount = new Map<Redis, { count: number; at: number }>();

/**
 * Redis WAIT on the node that holds `key` (on a cluster, its slot's master), for at most `replicas`
 * replicas and never more than the node has (read from INFO, cached a second): a master whose replica
 * died has nothing to wait for, and a failover cannot happen without one. Resolves with
 * { wanted, acknowledged }.
 */
export async function waitForReplicas(
  redis: Redis | Cluster,
  key: string,
  replicas: number,
  timeoutMs: number,
): Promise<{ wanted: number; acknowledged: number }> {
  let node: Redis = redis as Redis;
  if ('nodes' in redis) {
    const cluster = redis as Cluster;
    let slot = slotCache.get(key);
    if (slot === undefined) slotCache.set(key, (slot = Number(await cluster.cluster('KEYSLOT', key))));
    const owner = cluster.slots[slot]?.[0];
    node =
      cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner) ??
      cluster.nodes('master')[0]!;
  }
  let known = replicaCount.get(node);
  if (!known || Date.now() - known.at > 1000) {
    const info = await node.info('replication');
    known = { count: Number(/^connected_slaves:(\d+)/m.exec(info)?.[1] ?? 0), at: Date.now() };
    replicaCount.set(node, known);
  }
  const wanted = Math.min(replicas, known.count);
  if (wanted === 0) return { wanted, acknowledged: 0 };
  return { wanted, acknowledged: Number(await node.call('WAIT', String(wanted), String(timeoutMs))) };
}
