import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { type Job, UnrecoverableError, Worker, type WorkerOptions } from 'bullmq';
import { APP_CONFIG, type AppConfig } from '#config';
import { logRedisErrors, QUEUE_REDIS, type RedisClient } from '#redis';
import { RevokerMetrics } from '#metrics';
import { REVOCATION_PRIORITY_QUEUE, REVOCATION_QUEUE, RevocationCommand } from '#revocation';
import { closeWorkerWithin, RUN_RETRY_DELAY_MS } from './close-worker.js';
import { type ExecutionResult, RevocationExecutor } from './revocation.executor.js';

/** The options of a revocation queue's BullMQ worker, from config (the warm-up's worker takes them too). */
export function revocationWorkerOptions(config: AppConfig, connection: RedisClient): WorkerOptions {
  return {
    connection,
    prefix: config.redis.queuePrefix,
    concurrency: config.worker.concurrency,
    lockDuration: config.worker.lockDurationMs,
    stalledInterval: config.worker.stalledIntervalMs,
    runRetryDelay: RUN_RETRY_DELAY_MS,
  };
}

/** One revocation job: its command checked, then carried out by `executor`. */
export async function processRevocation(job: Job, executor: RevocationExecutor): Promise<ExecutionResult> {
  const parsed = RevocationCommand.safeParse(job.data);
  if (!parsed.success) {
    // Retrying cannot fix a malformed command: fail it now, and keep it (failed jobs are never removed).
    const where = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new UnrecoverableError(`invalid revocation command: ${where}`);
  }
  return executor.execute(parsed.data);
}

/**
 * Consumes revocation commands. The BullMQ worker is built here rather than by @Processor because
 * its concurrency, lock duration and stalled-check interval come from configuration, and BullMQ
 * fixes the latter two when a worker is constructed.
 */
@Injectable()
export class RevocationProcessor
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  private readonly logger = new Logger(RevocationProcessor.name);
  /** One worker per queue: admin revocations have their own, so webhook backlog never delays them. */
  workers: Worker[] = [];

  constructor(
    private readonly executor: RevocationExecutor,
    private readonly metrics: RevokerMetrics,
    @Inject(QUEUE_REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.workers = [REVOCATION_PRIORITY_QUEUE, REVOCATION_QUEUE].map((queue) => this.startWorker(queue));
  }

  private startWorker(queue: string): Worker {
    const worker = new Worker(
      queue,
      (job) => this.process(job),
      revocationWorkerOptions(this.config, this.redis),
    );
    worker.on('failed', (job, err) => {
      const final = !job || job.attemptsMade >= (job.opts.attempts ?? 1) || err instanceof UnrecoverableError;
      this.metrics.jobs.inc({ outcome: final ? 'failed' : 'retried' });
      this.logger.warn(`job ${job?.id ?? '?'} ${final ? 'failed' : 'will be retried'}: ${err.message}`);
    });
    worker.on('completed', () => this.metrics.jobs.inc({ outcome: 'completed' }));
    logRedisErrors(worker, `worker of ${queue}`, this.redis, this.logger);
    return worker;
  }

  process(job: Job): Promise<ExecutionResult> {
    return processRevocation(job, this.executor);
  }

  /**
   * SIGTERM: stop taking jobs and let active ones finish within the grace period; past it, close
   * anyway (an unfinished job is then taken back by another worker as stalled). Workers close before
   * queues, and queues before connections (Nest runs this hook before the shutdown hooks).
   */
  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all(
      this.workers.map((w) => closeWorkerWithin(w, this.config.worker.shutdownGraceMs, this.logger)),
    );
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
