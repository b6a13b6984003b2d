import type { MemoryReading, RevokerMetrics } from '#metrics';
import type { HealthTargets } from './health-targets.js';

const STATES = ['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'] as const;

/** Points the scrape-time gauges at this process's queues and queue Redis. */
export function connectMetricSources(
  metrics: RevokerMetrics,
  targets: Required<Pick<HealthTargets, 'queue' | 'keys' | 'queues'>>,
): void {
  metrics.setSources({
    queueDepth: async () =>
      (
        await Promise.all(targets.queues.map(async (q) => ({ q, counts: await q.getJobCounts(...STATES) })))
      ).flatMap(({ q, counts }) =>
        Object.entries(counts).map(([state, count]) => ({ queue: q.name, state, count })),
      ),
    quarantine: () => targets.queue.xlen(targets.keys.quarantine),
    memory: async () => {
      const raw = await targets.queue.get(targets.keys.memory);
      return raw ? (JSON.parse(raw) as MemoryReading[]) : [];
    },
  });
}
