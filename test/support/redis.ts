import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';

export const REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/** A client of the shared test Redis. Each test file uses its own key prefix and deletes only those keys. */
export function testRedis(): Redis {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
}

/** A key prefix no other test file (or parallel run) uses. */
export function uniquePrefix(name: string): string {
  return `t-${name}-${process.pid}-${Date.now().toString(36)}`;
}

/** Deletes every key under `prefix:` on every master of the client. */
export async function deletePrefix(redis: Redis | Cluster, prefix: string): Promise<void> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) await node.unlink(key);
    } while (cursor !== '0');
  }
}

/** Polls `check` until it returns a truthy value or the deadline passes (then throws). */
export async function waitFor<T>(check: () => Promise<T> | T, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until the Redis clock is past `instant` (ms), so a login issued now is not covered by a stamp there. */
export async function waitForRedisPast(redis: Redis | Cluster, instant: number): Promise<void> {
  await waitFor(async () => {
    const [s, us] = await redis.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000) > instant;
  }, 'the Redis clock to pass the not-before');
}

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });

/** `count` consecutive ports, each with its cluster bus port (+10000) free too. */
export async function freePorts(count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 20000);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    const free = await Promise.all(ports.flatMap((p) => [portFree(p), portFree(p + 10000)]));
    if (free.every(Boolean)) return ports;
  }
  throw new Error('no free ports for a test Redis');
}

export interface RedisProcess {
  port: number;
  process: ChildProcess;
}

/** Starts a throw-away redis-server on `port`; extra arguments are passed as they are. */
export async function startRedisServer(
  port: number,
  dir: string,
  args: string[] = [],
): Promise<RedisProcess> {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      ...args,
    ],
    { stdio: 'ignore' },
  );
  const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await waitFor(async () => {
      if (probe.status !== 'ready') await probe.connect().catch(() => probe.disconnect());
      return (await probe.ping()) === 'PONG';
    }, `redis-server on port ${port}`);
  } finally {
    probe.disconnect();
  }
  return { port, process: child };
}

export interface TestCluster {
  ports: number[];
  client(): Cluster;
  stop(): Promise<void>;
}

/** Starts a Redis Cluster of `masters` masters (and `replicas` replicas each) on spare ports. */
export async function startCluster(masters = 3, replicas = 0): Promise<TestCluster> {
  const ports = await freePorts(masters * (1 + replicas));
  const dir = mkdtempSync(join(tmpdir(), 'sr-cluster-'));
  const servers = await Promise.all(
    ports.map((port) =>
      startRedisServer(port, dir, [
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--cluster-node-timeout',
        '2000',
      ]),
    ),
  );
  await createCluster(ports, replicas);
  for (const port of ports) {
    const node = new Redis({ port, maxRetriesPerRequest: 1 });
    await waitFor(
      async () => (await node.cluster('INFO')).includes('cluster_state:ok'),
      `cluster node ${port}`,
    );
    node.disconnect();
  }
  const clients: Cluster[] = [];
  return {
    ports,
    client() {
      const c = new Cluster(
        ports.slice(0, masters).map((port) => ({ host: '127.0.0.1', port })),
        { redisOptions: { maxRetriesPerRequest: 2 } },
      );
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.disconnect();
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              if (s.process.exitCode !== null) return resolve();
              s.process.once('exit', () => resolve());
              s.process.kill('SIGKILL');
            }),
        ),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `redis-cli --cluster create` over cluster-enabled servers on `ports`, `replicas` per master. */
export function createCluster(ports: number[], replicas: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const create = spawn(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      { stdio: 'ignore' },
    );
    create.once('error', reject);
    create.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create: ${code}`)),
    );
  });
}
