import { Logger } from '@nestjs/common';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { AppConfig } from './app-config.js';

export type RedisClient = Redis | Cluster;

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
export function redisClientFor(
  config: AppConfig,
  role: 'queue' | 'sessions',
  options: RedisOptions = {},
): RedisClient {
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

interface Emitter {
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  on(event: 'node error', listener: (err: Error, node: string) => void): unknown;
}

/** How long the same error of one source stays quiet if no 'ready' ends its outage first. */
export const REPEAT_ERROR_AFTER_MS = 60_000;

/**
 * Logs what goes wrong with a Redis client, a BullMQ queue or a worker as JSON warnings: each
 * different error of an outage once, not every failed reconnect (without a listener, ioredis prints
 * each attempt to stderr and BullMQ a stack; a worker retries several times a second). The next
 * 'ready' of `readyFrom` ends the outage (for the client itself, logged); a queue or a worker does not
 * forward 'ready', so pass the client it uses. An error still going on is logged again after
 * REPEAT_ERROR_AFTER_MS, in case its 'ready' never comes (a worker's own blocking connection). A
 * cluster client's errors on one node ('node error') are logged the same way.
 */
export function logRedisErrors<T extends Emitter>(
  source: T,
  what: string,
  readyFrom: Emitter = source,
  logger: Pick<Logger, 'warn' | 'log'> = new Logger('Redis'),
  now: () => number = Date.now,
): T {
  const logged = new Map<string, number>();
  const report = (message: string) => {
    const at = logged.get(message);
    if (at !== undefined && now() - at < REPEAT_ERROR_AFTER_MS) return;
    logged.set(message, now());
    logger.warn(message);
  };
  source.on('error', (err: Error) => report(`${what}: ${err.message}`));
  source.on('node error', (err: Error, node: string) => report(`${what}, node ${node}: ${err.message}`));
  readyFrom.on('ready', () => {
    if (logged.size === 0) return;
    logged.clear();
    if (readyFrom === source) logger.log(`${what}: connected again`);
  });
  return source;
}

/**
 * Whether an error means Redis could not be reached, or would not take a command just now (loading,
 * failing over, out of memory): a request that met it deserves 503 and a retry, not a 500.
 */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'MaxRetriesPerRequestError' || err.name === 'ClusterAllFailedError') return true;
  return /Stream isn't writeable|Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|None of startup nodes|Failed to refresh slots cache|^(CLUSTERDOWN|LOADING|READONLY|TRYAGAIN|MASTERDOWN|NOREPLICAS|OOM|BUSY)\b/.test(
    err.message,
  );
}
