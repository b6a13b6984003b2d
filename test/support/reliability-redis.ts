import { getQueueToken } from '@nestjs/bullmq';
import type { INestApplicationContext } from '@nestjs/common';
import type { Queue } from 'bullmq';
import type { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL_QUEUES } from '#revocation';
import { freePorts, type RedisProcess, startRedisServer } from './redis.js';

/**
 * A throw-away redis-server of a test's own, on a spare port (never the shared one): for tests that
 * kill, pause or otherwise disturb their Redis.
 */
export interface OwnRedis {
  url: string;
  port: number;
  dir: string;
  /** SIGKILLs the server and waits for it to exit; resolves with Date.now() just before the signal. */
  kill(): Promise<number>;
  /** Starts it again on the same port and directory; resolves once it answers PING. */
  restart(): Promise<void>;
  /** Kills it (if running) and deletes its directory. */
  stop(): Promise<void>;
}

/**
 * An OwnRedis that keeps what it acknowledged: AOF on, fsync before every reply (`appendfsync
 * always`). SIGKILL it and restart it, and it comes back with every write it answered OK. (A
 * no-persistence Redis loses everything when killed, queued jobs included, so it cannot show that
 * acknowledged means stored.)
 */
export type DurableRedis = OwnRedis;

const running = (s: RedisProcess) => s.process.exitCode === null && s.process.signalCode === null;

async function killServer(server: RedisProcess): Promise<void> {
  if (!running(server)) return;
  const exited = new Promise((resolve) => server.process.once('exit', resolve));
  server.process.kill('SIGKILL');
  await exited;
}

/** Starts an OwnRedis without persistence; `args` are passed to redis-server after the defaults. */
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
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async kill() {
      const at = Date.now();
      await killServer(server);
      return at;
    },
    async restart() {
      if (running(server)) throw new Error(`the Redis of ${name} is still running`);
      server = await startRedisServer(port, dir, args);
    },
    async stop() {
      await killServer(server);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function startDurableRedis(name: string, args: string[] = []): Promise<DurableRedis> {
  // Later arguments win: these override startRedisServer's `--appendonly no`.
  return startOwnRedis(name, ['--appendonly', 'yes', '--appendfsync', 'always', ...args]);
}

/**
 * Hides console.error / console.warn calls whose text matches one of `patterns` (connection errors a
 * test provokes on purpose); returns the function that restores the console.
 */
export function muteConsole(patterns: RegExp[]): () => void {
  const { error, warn } = console;
  const filter =
    (original: (...args: unknown[]) => void) =>
    (...args: unknown[]) => {
      const text = args.map((a) => (a instanceof Error ? `${a.message}\n${a.stack}` : String(a))).join(' ');
      if (!patterns.some((p) => p.test(text))) original(...args);
    };
  console.error = filter(error);
  console.warn = filter(warn);
  return () => {
    console.error = error;
    console.warn = warn;
  };
}

/** Adds no-op `error` listeners to the service's queues in a Nest app (their Redis goes away on purpose). */
export function quietQueues(app: INestApplicationContext, extra: EventEmitter[] = []): void {
  const noop = () => undefined;
  for (const name of ALL_QUEUES) app.get<Queue>(getQueueToken(name), { strict: false }).on('error', noop);
  for (const e of extra) e.on('error', noop);
}
