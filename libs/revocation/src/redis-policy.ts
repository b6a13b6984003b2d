import keySlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
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
export async function masterNodes(redis: Redis | Cluster): Promise<Redis[]> {
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
  redis: Redis | Cluster,
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
export async function assertQueueRedisPolicy(
  redis: Redis | Cluster,
  allowEvicting: boolean,
): Promise<string> {
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

/**
 * WAITs on one connection, shared by everyone who wrote through it. WAIT blocks its connection and
 * covers only writes that connection sent before it, so one WAIT per caller would queue them one
 * replica round trip apart. Instead, callers that arrive while a WAIT is in flight share the next
 * one, sent once it returns, so after every write of theirs (group commit).
 */
class NodeWaiter {
  private replicas = { count: 0, at: 0 };
  private current: Promise<number> | undefined;
  private queued: Promise<number> | undefined;
  /** What the callers of the next WAIT asked for: the most replicas, the shortest deadline. */
  private ask = { replicas: 0, timeoutMs: Infinity };

  constructor(private readonly node: Redis) {}

  /** { wanted, acknowledged } for at most `replicas`, never more than the node has (INFO, cached 1 s). */
  async wait(replicas: number, timeoutMs: number): Promise<{ wanted: number; acknowledged: number }> {
    if (Date.now() - this.replicas.at > 1000) {
      const info = parseInfo(await this.node.info('replication'));
      this.replicas = { count: Number(info.get('connected_slaves') ?? 0), at: Date.now() };
    }
    const wanted = Math.min(replicas, this.replicas.count);
    if (wanted === 0) return { wanted, acknowledged: 0 };
    this.ask = {
      replicas: Math.max(this.ask.replicas, wanted),
      timeoutMs: Math.min(this.ask.timeoutMs, Math.max(1, timeoutMs)),
    };
    return { wanted, acknowledged: await this.join() };
  }

  private join(): Promise<number> {
    if (!this.current) return this.send();
    // A WAIT someone sent after the one in flight returned was sent after these callers' writes too.
    const after = () => {
      this.queued = undefined;
      return this.current ?? this.send();
    };
    this.queued ??= this.current.then(after, after);
    return this.queued;
  }

  /** One WAIT for every caller so far. */
  private send(): Promise<number> {
    const { replicas, timeoutMs } = this.ask;
    this.ask = { replicas: 0, timeoutMs: Infinity };
    // Not expected (every caller asks for one or more); failing is the safe answer.
    if (replicas === 0) return Promise.resolve(0);
    const sent = this.node.call('WAIT', String(replicas), String(timeoutMs)).then(Number);
    this.current = sent;
    const clear = () => {
      if (this.current === sent) this.current = undefined;
    };
    sent.then(clear, clear);
    return sent;
  }
}

const waiters = new WeakMap<Redis, NodeWaiter>();
const waiterOf = (node: Redis): NodeWaiter => {
  let waiter = waiters.get(node);
  if (!waiter) waiters.set(node, (waiter = new NodeWaiter(node)));
  return waiter;
};

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
    // The slot is a hash of the key, computed here as ioredis does to route commands: no round trip.
    const owner = cluster.slots[keySlot(key)]?.[0];
    node =
      cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner) ??
      cluster.nodes('master')[0]!;
  }
  return waiterOf(node).wait(replicas, timeoutMs);
}

/**
 * WAIT on every master (one on a standalone Redis) for the writes this client made there: for
 * writes spread over slots, such as a revocation's stamps. Resolves with the { wanted, acknowledged }
 * of the node furthest short (zeros when no node has a replica).
 */
export async function waitForReplicasEverywhere(
  redis: Redis | Cluster,
  replicas: number,
  timeoutMs: number,
): Promise<{ wanted: number; acknowledged: number }> {
  const nodes = await masterNodes(redis);
  const results = await Promise.all(nodes.map((node) => waiterOf(node).wait(replicas, timeoutMs)));
  return results.reduce(
    (worst, r) => (r.wanted - r.acknowledged > worst.wanted - worst.acknowledged ? r : worst),
    results[0] ?? { wanted: 0, acknowledged: 0 },
  );
}
