import keySlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import type { RedisClient } from './redis-client.js';
import { masterNodes, parseInfo } from './redis-info.js';

/** How long a marker written before a WAIT lives: only its place in the replication stream matters. */
const MARKER_MS = 10_000;

/**
 * WAITs on one connection, shared by everyone who wrote through it. WAIT blocks its connection and
 * covers only writes that connection sent before it, so one WAIT per caller would queue them one
 * replica round trip apart. Instead, callers that arrive while a WAIT is in flight share the next
 * one, sent once it returns, so after every write of theirs (group commit).
 *
 * What a caller relies on may have been written through another connection (a duplicate delivery's
 * first one, a stamp another process raised first, so that this caller's script wrote nothing). When
 * a caller names a marker key (one of its own, on this node), the WAIT is sent right behind a write
 * of it, in the same round trip: the marker follows those writes in the node's replication stream,
 * so replicas that acknowledge it hold them too.
 */
class NodeWaiter {
  private replicas = { count: 0, at: 0 };
  private current: Promise<number> | undefined;
  private queued: Promise<number> | undefined;
  /** What the callers of the next WAIT asked for: the most replicas, the shortest deadline, a marker. */
  private ask: { replicas: number; timeoutMs: number; marker?: string } = {
    replicas: 0,
    timeoutMs: Infinity,
  };

  constructor(private readonly node: Redis) {}

  /** { wanted, acknowledged } for at most `replicas`, never more than the node has (INFO, cached 1 s). */
  async wait(
    replicas: number,
    timeoutMs: number,
    marker?: string,
  ): Promise<{ wanted: number; acknowledged: number }> {
    if (Date.now() - this.replicas.at > 1000) {
      const info = parseInfo(await this.node.info('replication'));
      this.replicas = { count: Number(info.get('connected_slaves') ?? 0), at: Date.now() };
    }
    const wanted = Math.min(replicas, this.replicas.count);
    if (wanted === 0) return { wanted, acknowledged: 0 };
    this.ask = {
      replicas: Math.max(this.ask.replicas, wanted),
      timeoutMs: Math.min(this.ask.timeoutMs, Math.max(1, timeoutMs)),
      // Any caller's marker will do: all are on this node, and one write covers every caller.
      marker: marker ?? this.ask.marker,
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
    const { replicas, timeoutMs, marker } = this.ask;
    this.ask = { replicas: 0, timeoutMs: Infinity };
    // Not expected (every caller asks for one or more); failing is the safe answer.
    if (replicas === 0) return Promise.resolve(0);
    // Both commands go out together, the marker first; a marker refused fails the WAIT's callers.
    const marked = marker ? this.node.set(marker, '1', 'PX', MARKER_MS) : null;
    const waited = this.node.call('WAIT', String(replicas), String(timeoutMs)).then(Number);
    const sent = marked ? Promise.all([marked, waited]).then(([, n]) => n) : waited;
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
 * { wanted, acknowledged }. With `marker` (a key of the caller's own, in `key`'s slot, which is
 * written), the WAIT also covers what other connections wrote on that node before it.
 */
export async function waitForReplicas(
  redis: RedisClient,
  key: string,
  replicas: number,
  timeoutMs: number,
  options: { marker?: string } = {},
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
  return waiterOf(node).wait(replicas, timeoutMs, options.marker);
}

/**
 * WAIT on every master (one on a standalone Redis) for the writes this client made there: for
 * writes spread over slots, such as a revocation's stamps. Resolves with the { wanted, acknowledged }
 * of the node furthest short (zeros when no node has a replica).
 */
export async function waitForReplicasEverywhere(
  redis: RedisClient,
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
