import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePorts, type RedisProcess, startRedisServer } from './redis.js';

/**
 * A throw-away redis-server for a worker's sessions (REDIS_URL), so a test can pause or stop it
 * without touching the shared Redis, which stays the queue Redis (QUEUE_REDIS_URL).
 */
export interface OwnRedis {
  url: string;
  port: number;
  /** A client of it (reconnects quickly). */
  client: Redis;
  /**
   * Holds every write (and every Lua script) of every client until `unpause`, for at most `ms`:
   * a worker's revocations block mid-job, deterministically. Reads, INFO and CLIENT still answer.
   */
  pauseWrites(ms?: number): Promise<void>;
  unpause(): Promise<void>;
  stop(): Promise<void>;
}

export async function startOwnRedis(name: string, args: string[] = []): Promise<OwnRedis> {
  const dir = mkdtempSync(join(tmpdir(), `sr-${name}-`));
  const [port] = (await freePorts(1)) as [number];
  let server: RedisProcess;
  try {
    server = await startRedisServer(port, dir, args);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { retryStrategy: () => 100 });
  client.on('error', () => undefined);
  return {
    url,
    port,
    client,
    async pauseWrites(ms = 30_000) {
      await client.call('CLIENT', 'PAUSE', String(ms), 'WRITE');
    },
    async unpause() {
      await client.call('CLIENT', 'UNPAUSE');
    },
    async stop() {
      client.disconnect();
      if (server.process.exitCode === null && server.process.signalCode === null) {
        const exited = new Promise((resolve) => server.process.once('exit', resolve));
        server.process.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
