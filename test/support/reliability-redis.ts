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
 * A throw-away redis-server that keeps what it acknowledged: AOF on, fsync before every reply
 * (`appendfsync always`). SIGKILL it and start it again on the same port and directory, and it comes
 * back with every write it answered OK. (A no-persistence Redis loses everything when killed, queued
 * jobs included, so it cannot show that acknowledged means stored.)
 */
export interface DurableRedis {
  url: string;
  port: number;
  dir: string;
  /** SIGKILLs the server and waits for it to exit; resolves with Date.now() just before the signal. */
  kill(): Promise<number>;
  /** Starts it again on the same port and directory; resolves once it answers PING (AOF loaded). */
  restart(): Promise<void>;
  /** Kills it (if running) and deletes its directory. */
  stop(): Promise<void>;
}

const running = (s: RedisProcess) => s.process.exitCode === null && s.process.signalCode === null;

async function killServer(server: RedisProcess): Promise<void> {
  if (!running(server)) return;
  const exited = new Promise((resolve) => server.process.once('exit', resolve));
  server.process.kill('SIGKILL');
  await exited;
}

export async function startDurableRedis(name: string, args: string[] = []): Promise<DurableRedis> {
  const dir = mkdtempSync(join(tmpdir(), `sr-${name}-`));
  const [port] = (await freePorts(1)) as [number];
  // Later arguments win: these override the helper's `--appendonly no`.
  const durable = ['--appendonly', 'yes', '--appendfsync', 'always', ...args];
  let server: RedisProcess;
  try {
    server = await startRedisServer(port, dir, durable);
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
      if (running(server)) throw new Error('the durable Redis is still running');
      server = await startRedisServer(port, dir, durable);
    },
    async stop() {
      await killServer(server);
      rmSync(dir, { recursive: true, force: true });
    },
  };
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
