import { Logger } from '@nestjs/common';

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
