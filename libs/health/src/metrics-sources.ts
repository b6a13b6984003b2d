import type { Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { MemoryReading, RevokerMetrics } from '#metrics';

const STATES = ['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'] as const;

/** Points the scrape-time gauges at this process's queues and queue Redis. */
export function connectMetricSources(
  metrics: RevokerMetrics,
  targets: { queue: Redis | Cluster; queuePrefix: string; queues: Queue[] },
): void {
  metrics.setSources({
    queueDepth: async () =>
      (
        await Promise.all(targets.queues.map(async (q) => ({ q, counts: await q.getJobCounts(...STATES) })))
      ).flatMap(({ q, counts }) =>
        Object.entries(counts).map(([state, count]) => ({ queue: q.name, state, count })),
      ),
    quarantine: () => targets.queue.xlen(`${targets.queuePrefix}:quarantine`),
    memory: async () => {
      const raw = await targets.queue.get(`${targets.queuePrefix}:memory`);
      return raw ? (JSON.parse(raw) as MemoryReading[]) : [];
    },
  });
}
