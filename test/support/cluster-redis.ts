import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { createCluster, freePorts, startRedisServer, waitFor } from './redis.js';

/** One node as CLUSTER NODES describes it. */
export interface ClusterNodeInfo {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** The id of its master (replicas only). */
  masterId?: string;
  /** `fail`, `pfail`, `myself`... */
  flags: string[];
  connected: boolean;
  /** Slot ranges served (masters only), e.g. [[0, 5460]]. */
  slots: [number, number][];
}

/**
 * A Redis Cluster of throw-away redis-server processes on spare ports, with each process reachable,
 * so a test can SIGKILL a master and watch its replica take over. Modelled on startCluster in
 * redis.ts, which does not expose the processes.
 */
export interface FailoverCluster {
  ports: number[];
  /** `redis://127.0.0.1:<port>` of a master: what REDIS_URL names with REDIS_CLUSTER=true. */
  seedUrl: string;
  /** The redis-server process of each port. */
  processes: Map<number, ChildProcess>;
  /** A cluster client of the test (seeded with every node; disconnected by stop()). */
  client(): Cluster;
  /** A plain client of one node (disconnected by stop(), or by kill() of that node). */
  node(port: number): Redis;
  /** CLUSTER NODES, as seen by a live node. */
  topology(): Promise<ClusterNodeInfo[]>;
  /** The port of the master serving `key`'s slot. */
  masterOf(key: string): Promise<number>;
  /** The ports of the replicas of the master on `port`. */
  replicasOf(port: number): Promise<number[]>;
  /**
   * Resolves once every live node reports cluster_state:ok, every slot is served by a live master,
   * and (unless told otherwise) every master has `replicas` connected replicas with their link up.
   */
  waitHealthy(timeoutMs?: number, options?: { replicas?: number }): Promise<void>;
  /** SIGKILLs the node on `port` and waits for the process to exit. */
  kill(port: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startFailoverCluster(
  masters = 3,
  replicas = 1,
  options: { nodeTimeoutMs?: number } = {},
): Promise<FailoverCluster> {
  const ports = await freePorts(masters * (1 + replicas));
  const dir = mkdtempSync(join(tmpdir(), 'sr-cluster-failover-'));
  const processes = new Map<number, ChildProcess>();
  const clients: (Cluster | Redis)[] = [];
  const live = () => ports.filter((p) => isRunning(processes.get(p)));

  const stop = async () => {
    // Not twice: ioredis then waits 2 s for a close event that already happened.
    for (const c of clients) if (c.status !== 'end') c.disconnect();
    await Promise.all([...processes.values()].map((p) => killAndWait(p)));
    rmSync(dir, { recursive: true, force: true });
  };

  const nodeClients = new Map<number, Redis[]>();
  const node = (port: number) => {
    const c = new Redis({ port, maxRetriesPerRequest: 1, retryStrategy: () => 200 });
    c.on('error', () => undefined);
    clients.push(c);
    nodeClients.set(port, [...(nodeClients.get(port) ?? []), c]);
    return c;
  };
  const probes = new Map<number, Redis>();
  const probe = (port: number) => {
    let c = probes.get(port);
    if (!c) {
      c = node(port);
      probes.set(port, c);
    }
    return c;
  };

  const topology = async (): Promise<ClusterNodeInfo[]> => {
    let lastError: unknown;
    for (const port of live()) {
      try {
        return parseClusterNodes((await probe(port).cluster('NODES')) as string);
      } catch (err) {
        lastError = err;
      }
    }
    throw new Error(`no live cluster node answers CLUSTER NODES: ${String(lastError)}`);
  };

  try {
    for (const port of ports) {
      const server = await startRedisServer(port, dir, [
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--cluster-node-timeout',
        String(options.nodeTimeoutMs ?? 2000),
        // Replicas sync at once rather than after the default 5 s wait for more replicas.
        '--repl-diskless-sync-delay',
        '0',
      ]);
      processes.set(port, server.process);
    }
    await createCluster(ports, replicas);
  } catch (err) {
    await stop();
    throw err;
  }

  const cluster: FailoverCluster = {
    ports,
    seedUrl: `redis://127.0.0.1:${ports[0]}`,
    processes,
    client() {
      const c = new Cluster(
        ports.map((port) => ({ host: '127.0.0.1', port })),
        {
          redisOptions: { maxRetriesPerRequest: 2 },
          clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
          retryDelayOnFailover: 200,
          retryDelayOnClusterDown: 300,
        },
      );
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
    node,
    topology,
    async masterOf(key) {
      const slot = Number(await probe(live()[0]!).cluster('KEYSLOT', key));
      const owner = (await topology()).find(
        (n) =>
          n.role === 'master' &&
          !n.flags.includes('fail') &&
          n.slots.some(([a, b]) => slot >= a && slot <= b),
      );
      if (!owner) throw new Error(`no live master serves slot ${slot} (${key})`);
      return owner.port;
    },
    async replicasOf(port) {
      const nodes = await topology();
      const master = nodes.find((n) => n.port === port);
      return nodes.filter((n) => n.role === 'replica' && n.masterId === master?.id).map((n) => n.port);
    },
    async waitHealthy(timeoutMs = 15_000, { replicas: wanted = replicas } = {}) {
      await waitFor(
        async () => {
          const alive = live();
          for (const port of alive) {
            const info = (await probe(port).cluster('INFO')) as string;
            if (!info.includes('cluster_state:ok')) return false;
          }
          const nodes = (await topology()).filter((n) => alive.includes(n.port));
          const liveMasters = nodes.filter((n) => n.role === 'master' && !n.flags.includes('fail'));
          const served = liveMasters.reduce(
            (sum, n) => sum + n.slots.reduce((s, [a, b]) => s + b - a + 1, 0),
            0,
          );
          if (served !== 16384) return false;
          for (const master of liveMasters.filter((m) => m.slots.length)) {
            const attached = nodes.filter((n) => n.role === 'replica' && n.masterId === master.id);
            if (attached.length < wanted) return false;
            for (const r of attached) {
              const repl = await probe(r.port).info('replication');
              if (!/master_link_status:up/.test(repl)) return false;
            }
          }
          return true;
        },
        `the cluster on ports ${ports.join(',')} to be healthy`,
        timeoutMs,
      );
    },
    async kill(port) {
      // The test's own clients of that node first, while it still answers (closing them cleanly).
      for (const c of nodeClients.get(port) ?? []) c.disconnect();
      probes.delete(port);
      const p = processes.get(port);
      if (p) await killAndWait(p);
    },
    stop,
  };
  try {
    await cluster.waitHealthy(20_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return cluster;
}

const isRunning = (p: ChildProcess | undefined) => !!p && p.exitCode === null && p.signalCode === null;

async function killAndWait(p: ChildProcess): Promise<void> {
  if (!isRunning(p)) return;
  const exited = new Promise((resolve) => p.once('exit', resolve));
  p.kill('SIGKILL');
  await exited;
}

/** Parses CLUSTER NODES output (`<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slots...>`). */
export function parseClusterNodes(text: string): ClusterNodeInfo[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, address, flags, master, , , , link, ...slots] = line.trim().split(' ');
      const flagList = flags!.split(',');
      const info: ClusterNodeInfo = {
        id: id!,
        port: Number(/:(\d+)/.exec(address!)![1]),
        role: flagList.includes('master') ? 'master' : 'replica',
        flags: flagList,
        connected: link === 'connected',
        slots: slots
          .filter((s) => !s.startsWith('['))
          .map((s) => {
            const [a, b] = s.split('-');
            return [Number(a), Number(b ?? a)] as [number, number];
          }),
      };
      if (master && master !== '-') info.masterId = master;
      return info;
    });
}
