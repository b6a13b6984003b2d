import type { Logger } from '@nestjs/common';
import type { Worker } from 'bullmq';

/**
 * Stops a BullMQ worker taking jobs and lets its active ones finish within `graceMs`; past it, closes
 * anyway (an unfinished job is then taken back by another worker as stalled). pause() waits for the
 * active jobs; close() is called once, forced if the grace ran out: BullMQ hands a second close() the
 * first one's promise, so close() then close(true) would still wait for the jobs.
 */
export async function closeWorkerWithin(worker: Worker, graceMs: number, logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), graceMs);
  });
  const late = await Promise.race([worker.pause().then(() => false), graceOver]);
  clearTimeout(timer);
  if (late) logger.warn(`${worker.name}: shutdown grace period over; closing with jobs still active`);
  await worker.close(late);
}
