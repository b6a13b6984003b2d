import type { Logger } from '@nestjs/common';
import type { Worker } from 'bullmq';

/**
 * How long a BullMQ worker waits before it tries Redis again after a connection error (BullMQ's
 * default is 15 s): with it, a worker stayed idle up to 15 s after Redis was back, and a shutdown
 * right after an outage waited out the whole grace period. ioredis reconnects on its own meanwhile.
 */
export const RUN_RETRY_DELAY_MS = 1000;

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
