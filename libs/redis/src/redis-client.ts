import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { AppConfig } from '#config';
import { logRedisErrors } from './redis-errors.js';

/** A client of one Redis role: a standalone Redis or a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** The two Redis roles: the queue's (BullMQ, dedup, audit, quarantine) and the sessions'. */
export type RedisRole = 'queue' | 'sessions';

/**
 * A client for one Redis role: a standalone Redis, or (cluster) a Redis Cluster reached through the
 * seed node in the URL and any more `seeds` (`host:port`); ioredis discovers the rest and follows
 * failovers. Options apply per node. Every reconnection starts again from the seeds (BullMQ's
 * blocking connections, duplicates of this client, too): with a single seed, losing that node leaves
 * them nowhere to go.
 */
export function createRedisClient(
  url: string,
  cluster: boolean,
  options: RedisOptions = {},
  seeds: string[] = [],
): RedisClient {
  if (!cluster) return new Redis(url, options);
  const seed = new URL(url);
  const more = seeds.map((s) => {
    const at = s.lastIndexOf(':');
    return { host: s.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(s.slice(at + 1)) };
  });
  // URL keeps an IPv6 host in brackets; ioredis wants it bare.
  const host = seed.hostname.replace(/^\[(.*)\]$/, '$1');
  return new Cluster([{ host, port: Number(seed.port || 6379) }, ...more], {
    redisOptions: {
      ...options,
      ...(seed.username ? { username: decodeURIComponent(seed.username) } : {}),
      ...(seed.password ? { password: decodeURIComponent(seed.password) } : {}),
      ...(seed.protocol === 'rediss:' ? { tls: {} } : {}),
    },
    ...(options.enableOfflineQueue !== undefined ? { enableOfflineQueue: options.enableOfflineQueue } : {}),
    // A failover moves slots: retry instead of failing the first command that lands on the old master.
    clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
    retryDelayOnFailover: 200,
    retryDelayOnTryAgain: 200,
    retryDelayOnClusterDown: 300,
  });
}

/**
 * Reconnect attempts 100 ms apart, backing off to 1 s: back within a second of Redis. ioredis 6 alone
 * backs off to 5 s, and so do BullMQ's blocking connections (duplicates of the client): after a 3 s
 * outage the worker then took over 10 s to take jobs again.
 */
const reconnectWithinASecond = (times: number) => Math.min(times * 100, 1000);

/**
 * The client of one Redis role from config (the queue's, or the sessions'): a cluster client with its
 * seeds when configured, reconnecting within a second, its errors logged once per outage. `options`
 * add to or override those of the role.
 */
export function redisClientFor(config: AppConfig, role: RedisRole, options: RedisOptions = {}): RedisClient {
  const r = config.redis;
  const [url, cluster, seeds] =
    role === 'queue' ? [r.queueUrl, r.queueCluster, r.queueClusterNodes] : [r.url, r.cluster, r.clusterNodes];
  return logRedisErrors(
    createRedisClient(url, cluster, { retryStrategy: reconnectWithinASecond, ...options }, seeds),
    role === 'queue' ? 'queue Redis' : 'session Redis',
  );
}

/**
 * Closes a client: QUIT if Redis answers within a second (QUIT waits behind pending commands, which a
 * stalled Redis never answers), then drop the connection either way.
 */
export async function closeRedisClient(redis: RedisClient | null | undefined): Promise<void> {
  if (!redis) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    redis.quit().catch(() => undefined),
    new Promise((resolve) => {
      timer = setTimeout(resolve, 1000);
    }),
  ]);
  clearTimeout(timer);
  redis.disconnect();
}
