import type { JobsOptions, Queue } from 'bullmq';
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from '#redis';
import type { QueueKeys } from './queue-keys.js';
import { REVOKE_JOB } from './queue-names.js';
import type { RevocationCommand } from './revocation-command.js';

export interface ProducerOptions {
  /** How long a command id is remembered after it was enqueued, so a redelivery adds nothing. */
  dedupWindowMs: number;
  /** Where the dedup marks live: under the queue's prefix, whose hash tag puts them on the queue's node. */
  keys: QueueKeys;
  /** Retries, backoff and retention of each job. */
  jobOptions: JobsOptions;
}

/**
 * Commands stored per round of check, jobs and marks: PingOne's largest delivery. A bigger one (up to
 * the body limit, a few thousand events) goes in several rounds, so no single MULTI holds Redis for
 * thousands of job scripts.
 */
export const ENQUEUE_BATCH = 500;

export interface EnqueueResult {
  enqueued: RevocationCommand[];
  duplicates: RevocationCommand[];
}

/**
 * Puts commands on the revocation queue, each under its deterministic job id, remembering each id for
 * the dedup window so a redelivery enqueues nothing new even after its first job was removed.
 *
 * Order matters for invariant 6 (nothing acknowledged is lost): the dedup marks are written only after
 * the jobs are in Redis, so a failure in between leads to a retry that enqueues again (harmless:
 * revocations are idempotent), never to an event marked seen but not queued.
 */
export class RevocationProducer {
  constructor(
    private readonly queue: Queue,
    /** A client of the queue's Redis, for the dedup marks. */
    private readonly redis: RedisClient,
    private readonly options: ProducerOptions,
  ) {}

  async enqueue(
    commands: RevocationCommand[],
    options: { bypassDedup?: boolean } = {},
  ): Promise<EnqueueResult> {
    const result: EnqueueResult = { enqueued: [], duplicates: [] };
    // One after another: a failure leaves the earlier batches stored and marked, and the sender's
    // retry finds them duplicates.
    for (let at = 0; at < commands.length; at += ENQUEUE_BATCH) {
      const batch = await this.enqueueBatch(commands.slice(at, at + ENQUEUE_BATCH), options);
      result.enqueued.push(...batch.enqueued);
      result.duplicates.push(...batch.duplicates);
    }
    return result;
  }

  private async enqueueBatch(
    commands: RevocationCommand[],
    options: { bypassDedup?: boolean },
  ): Promise<EnqueueResult> {
    if (commands.length === 0) return { enqueued: [], duplicates: [] };
    // One command per delivery for the check and one write for the marks, whatever its size: a command
    // each cost a socket write each, most of a 100-event delivery's CPU. The marks share the queue's hash
    // tag (the queue prefix), so MGET and the pipeline stay on one cluster slot.
    const seen = options.bypassDedup
      ? commands.map(() => null)
      : await this.redis.mget(commands.map((c) => this.options.keys.dedup(c.id)));
    const fresh = commands.filter((_, i) => seen[i] === null);
    const duplicates = commands.filter((_, i) => seen[i] !== null);
    if (fresh.length === 0) return { enqueued: [], duplicates };

    // A deliberate replay is a new command: a new id (so it runs even while the first job is kept,
    // and a group's fan-out derives new member ids from it rather than being deduplicated away).
    const replaySuffix = options.bypassDedup ? `-r${Date.now().toString(36)}` : '';
    const jobs = fresh.map((command) => {
      const id = `${command.id}${replaySuffix}`;
      return { name: REVOKE_JOB, data: { ...command, id }, opts: { ...this.options.jobOptions, jobId: id } };
    });
    // One job (the common PingOne delivery) goes through add: addBulk builds an ioredis pipeline, and
    // each new pipeline copies all of BullMQ's scripts onto itself (about half the enqueue's CPU).
    if (jobs.length === 1) await this.queue.add(jobs[0]!.name, jobs[0]!.data, jobs[0]!.opts);
    else await this.queue.addBulk(jobs);
    // Marks are set only if absent: of two deliveries of one event racing past the check above, both
    // added the same job id (BullMQ keeps one), and the one whose mark loses is told it was a duplicate.
    const marked = await this.mark(fresh, !options.bypassDedup);
    return {
      enqueued: fresh.filter((_, i) => marked[i] === 'OK'),
      duplicates: [...duplicates, ...fresh.filter((_, i) => marked[i] !== 'OK')],
    };
  }

  /** Sets the commands' dedup marks (only where absent, with `onlyIfAbsent`); 'OK' where one was set. */
  private async mark(commands: RevocationCommand[], onlyIfAbsent: boolean): Promise<unknown[]> {
    const set = (target: RedisClient | ChainableCommander, id: string) =>
      onlyIfAbsent
        ? target.set(this.options.keys.dedup(id), '1', 'PX', this.options.dedupWindowMs, 'NX')
        : target.set(this.options.keys.dedup(id), '1', 'PX', this.options.dedupWindowMs);
    if (commands.length === 1) return [await set(this.redis, commands[0]!.id)];
    const pipeline = this.redis.pipeline();
    for (const c of commands) void set(pipeline, c.id);
    const replies = await pipeline.exec();
    if (!replies) throw new Error('the dedup marks were not written');
    return replies.map(([err, reply]) => {
      if (err) throw err;
      return reply;
    });
  }
}
