import type { Queue } from 'bullmq';

/**
 * Resolves when none of the queues has a job waiting, delayed, prioritized or active; throws after
 * `timeoutMs`. Tests wait on this instead of sleeping.
 */
export async function waitForQueuesIdle(queues: Queue[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await Promise.all(
      queues.map((q) => q.getJobCounts('waiting', 'delayed', 'prioritized', 'active', 'waiting-children')),
    );
    const busy = counts.reduce((n, c) => n + Object.values(c).reduce((a, b) => a + b, 0), 0);
    if (busy === 0) return;
    if (Date.now() > deadline)
      throw new Error(`queues not idle after ${timeoutMs} ms: ${JSON.stringify(counts)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
