import { Processor, WorkerHost } from '@nestjs/bullmq';
import { type BeforeApplicationShutdown, Inject, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { type Job, UnrecoverableError } from 'bullmq';
import { APP_CONFIG, type AppConfig } from '#config';
import { RevokerMetrics } from '#metrics';
import { REVOCATION_QUEUE, RevocationCommand } from '#revocation';
import { type ExecutionResult, RevocationExecutor } from './revocation.executor.js';

/** Consumes revocation commands. Concurrency comes from config, set once the worker exists. */
@Processor(REVOCATION_QUEUE)
export class RevocationProcessor
  extends WorkerHost
  implements OnApplicationBootstrap, BeforeApplicationShutdown
{
  private readonly logger = new Logger(RevocationProcessor.name);

  constructor(
    private readonly executor: RevocationExecutor,
    private readonly metrics: RevokerMetrics,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = this.config.worker.concurrency;
    this.worker.on('failed', (job, err) => {
      const final = !job || job.attemptsMade >= (job.opts.attempts ?? 1) || err instanceof UnrecoverableError;
      this.metrics.jobs.inc({ outcome: final ? 'failed' : 'retried' });
      this.logger.warn(`job ${job?.id ?? '?'} ${final ? 'failed' : 'will be retried'}: ${err.message}`);
    });
    this.worker.on('completed', () => this.metrics.jobs.inc({ outcome: 'completed' }));
  }

  async process(job: Job): Promise<ExecutionResult> {
    const parsed = RevocationCommand.safeParse(job.data);
    if (!parsed.success) {
      // Retrying cannot fix a malformed command: fail it now, and keep it (failed jobs are never removed).
      const where = parsed.error.issues
        .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
        .join('; ');
      throw new UnrecoverableError(`invalid revocation command: ${where}`);
    }
    return this.executor.execute(parsed.data);
  }

  /**
   * SIGTERM: stop taking jobs and let active ones finish within the grace period; past it, close
   * anyway (an unfinished job is then picked up again by another worker as stalled).
   */
  async beforeApplicationShutdown(): Promise<void> {
    const closing = this.worker.close();
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), this.config.worker.shutdownGraceMs);
    });
    if (await Promise.race([closing.then(() => false), graceOver])) {
      this.logger.warn('shutdown grace period over; closing the worker with jobs still active');
      await this.worker.close(true);
    }
    clearTimeout(timer);
  }
}
