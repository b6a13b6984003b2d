import { InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import { type BeforeApplicationShutdown, Inject, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import type { Job, Queue } from 'bullmq';
import { APP_CONFIG, type AppConfig } from '#config';
import type { MemoryReading } from '#metrics';
import { logRedisErrors, QUEUE_REDIS, readRedisMemory, type RedisClient, SESSION_REDIS } from '#redis';
import { MAINTENANCE_QUEUE, QueueKeys } from '#revocation';
import { type ScanPosition, SessionStore, type SweepResult } from '#session-store';
import { closeWorkerWithin, RUN_RETRY_DELAY_MS } from './close-worker.js';

export type RedisMemory = MemoryReading;

/** What the memory watch says about a role: its memory is fine, near its limit, or (sessions) unlimited. */
export type MemoryCondition = 'ok' | 'near-limit' | 'no-limit';

export function memoryCondition(reading: RedisMemory): MemoryCondition {
  if (reading.degraded) return 'near-limit';
  // The queue Redis has no limit by default and BullMQ needs noeviction anyway: only the sessions'.
  if (reading.role === 'sessions' && reading.maxmemory === 0) return 'no-limit';
  return 'ok';
}

/**
 * Scheduled jobs, run by BullMQ job schedulers so that each runs once per period however many
 * workers there are: the index sweep and the Redis memory watch. The memory readings go to Redis,
 * where any process's readiness check can read them.
 */
@Processor(MAINTENANCE_QUEUE, { runRetryDelay: RUN_RETRY_DELAY_MS })
export class MaintenanceProcessor
  extends WorkerHost
  implements OnApplicationBootstrap, BeforeApplicationShutdown
{
  private readonly logger = new Logger('Maintenance');
  /** What the last memory check found for each role, so a condition is said when it changes only. */
  private readonly memoryConditions = new Map<RedisMemory['role'], MemoryCondition>();

  constructor(
    @InjectQueue(MAINTENANCE_QUEUE) private readonly queue: Queue,
    private readonly store: SessionStore,
    @Inject(SESSION_REDIS) private readonly sessionRedis: RedisClient,
    @Inject(QUEUE_REDIS) private readonly queueRedis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly keys: QueueKeys,
  ) {
    super();
  }

  async onApplicationBootstrap(): Promise<void> {
    logRedisErrors(this.worker, 'maintenance worker', this.queueRedis, this.logger);
    const keep = { removeOnComplete: { count: 10 }, removeOnFail: { count: 100 } };
    // The first sweep one period after the scheduler is made, not at once: a service that has just
    // said it is ready must not spend its first seconds walking the session keyspace (in `npm start`
    // the sweep runs in the gateway's process, and held webhook answers for a quarter of a second).
    await this.queue.upsertJobScheduler(
      'sweep',
      { every: this.config.worker.sweepEveryMs, startDate: Date.now() + this.config.worker.sweepEveryMs },
      { name: 'sweep', opts: keep },
    );
    await this.queue.upsertJobScheduler(
      'memory-watch',
      { every: this.config.worker.memoryWatchEveryMs },
      { name: 'memory-watch', opts: keep },
    );
  }

  /**
   * Closed before the shutdown hooks close the Redis clients: a scheduled job picked up in between
   * would otherwise lose its next run ("Connection is closed" when adding it).
   */
  async beforeApplicationShutdown(): Promise<void> {
    await closeWorkerWithin(this.worker, this.config.worker.shutdownGraceMs, this.logger);
  }

  async process(job: Job): Promise<SweepResult | RedisMemory[]> {
    if (job.name === 'sweep') return this.sweep();
    return this.watchMemory();
  }

  /**
   * One slice of the index sweep: at most SWEEP_KEYS_PER_RUN keys' worth of SCAN (0: the whole
   * keyspace), resumed where the previous run stopped (the position is kept in the queue Redis, so
   * whichever worker runs the next slice goes on from there). The keyspace holds far more than indexes
   * (not-before stamps live for days), and a whole walk every period would compete with revocations
   * for the Redis core.
   */
  async sweep(): Promise<SweepResult> {
    const PAGE = 500;
    const budget = this.config.worker.sweepKeysPerRun;
    const saved = await this.queueRedis.get(this.keys.sweepPosition);
    const from = saved ? (JSON.parse(saved) as ScanPosition) : undefined;
    const result = await this.store.sweep({
      count: PAGE,
      ...(budget > 0 ? { maxScans: Math.ceil(budget / PAGE) } : {}),
      ...(from ? { from } : {}),
    });
    if (result.next)
      await this.queueRedis.set(this.keys.sweepPosition, JSON.stringify(result.next), 'EX', 86_400);
    else await this.queueRedis.del(this.keys.sweepPosition);
    if (result.trimmed > 0)
      this.logger.log(`index sweep trimmed ${result.trimmed} entries from ${result.indexes} indexes`);
    return result;
  }

  /**
   * Reads both Redis roles' memory, records the readings, and says when a role's condition changes:
   * a warning when one goes near its limit or (the session Redis) has none, a line when it is back
   * under. A condition that holds is said once by each worker process, not at every check (the readings,
   * /health/ready and the metrics show it all along).
   */
  async watchMemory(): Promise<RedisMemory[]> {
    const readings = await Promise.all([
      readRedisMemory(this.sessionRedis, 'sessions', this.config.worker.memoryWarnFraction),
      readRedisMemory(this.queueRedis, 'queue', this.config.worker.memoryWarnFraction),
    ]);
    for (const r of readings) {
      const condition = memoryCondition(r);
      const before = this.memoryConditions.get(r.role);
      if (condition === before) continue;
      this.memoryConditions.set(r.role, condition);
      if (condition === 'near-limit')
        this.logger.warn(
          `${r.role} Redis uses ${r.usedMemory} of ${r.maxmemory} bytes (over ${this.config.worker.memoryWarnFraction * 100}%)`,
        );
      else if (condition === 'no-limit')
        this.logger.warn('the session Redis has no maxmemory set: it can grow until the machine runs out');
      else if (before === 'near-limit')
        this.logger.log(
          `${r.role} Redis is back under ${this.config.worker.memoryWarnFraction * 100}% of its maxmemory (${r.usedMemory} of ${r.maxmemory} bytes)`,
        );
      else if (before === 'no-limit')
        this.logger.log(`the session Redis has a maxmemory now (${r.maxmemory} bytes)`);
    }
    await this.queueRedis.set(
      this.keys.memory,
      JSON.stringify(readings),
      'PX',
      this.config.worker.memoryWatchEveryMs * 3,
    );
    return readings;
  }
}
