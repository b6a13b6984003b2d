import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { APP_CONFIG, type AppConfig } from '#config';
import { SSF_EVENTS } from '#identity-events';
import { RevokerMetrics } from '#metrics';
import { QUEUE_REDIS, type RedisClient, SESSION_REDIS, waitForReplicas } from '#redis';
import {
  producerOptions,
  Quarantine,
  type QuarantineEntry,
  QueueKeys,
  REVOCATION_PRIORITY_QUEUE,
  REVOCATION_QUEUE,
  RevocationProducer,
  type EnqueueResult,
  type RevocationCommand,
} from '#revocation';
import { SessionStore } from '#session-store';
import { RedisUnavailableException } from '../http/redis-unavailable.js';

type StampOutcome = 'in_force' | 'failed' | 'late';
const STAMP_WARNING_EVERY_MS = 60_000;

/**
 * The one way into the queue for every source: store what must be kept (commands, quarantined
 * events) in Redis, within a deadline, or fail with 503 so that nothing is acknowledged unstored.
 */
@Injectable()
export class IngestService {
  private readonly producer: RevocationProducer;
  private readonly urgentProducer: RevocationProducer;
  /** The event types that are label values in the metrics. */
  private readonly knownTypes: ReadonlySet<string>;
  /** Where user revocations are put in force on receipt (REVOKE_ON_RECEIPT), or null. */
  private readonly stamper: SessionStore | null;
  private readonly log = new Logger('Ingest');
  /** When the last warning of missed receipt stamps was said, and how many missed since. */
  private lastStampWarning = -Infinity;
  private missedSinceWarning = 0;

  constructor(
    @InjectQueue(REVOCATION_QUEUE) queue: Queue,
    @InjectQueue(REVOCATION_PRIORITY_QUEUE) urgentQueue: Queue,
    @Inject(QUEUE_REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly quarantine: Quarantine,
    private readonly keys: QueueKeys,
    private readonly metrics: RevokerMetrics,
    @Inject(SessionStore) store: SessionStore | null,
    @Inject(SESSION_REDIS) private readonly sessionRedis: RedisClient | null,
  ) {
    this.stamper = config.revokeOnReceipt ? store : null;
    if (config.revokeOnReceipt && !store)
      this.log.warn(
        'REVOKE_ON_RECEIPT is on, but this gateway has no SESSION_TAG_SECRET: revocations wait for the worker',
      );
    this.producer = new RevocationProducer(queue, redis, producerOptions(config));
    this.urgentProducer = new RevocationProducer(urgentQueue, redis, producerOptions(config));
    this.knownTypes = new Set([
      ...Object.keys(config.pingone.mapping),
      ...SSF_EVENTS,
      'backchannel-logout',
      'admin.revoke_user',
      'admin.revoke_group',
      'unknown',
    ]);
  }

  /**
   * With ENQUEUE_WAIT_REPLICAS, a delivery is acknowledged only once that many of the queue master's
   * replicas (as many as it has, up to that) hold it: Redis replication is asynchronous, and a master
   * that fails over right after a write loses it. The WAIT follows a write of our own marker (the
   * same key), so it also covers what other connections wrote: a duplicate's job was stored by its
   * first delivery, perhaps through another gateway.
   */
  private async waitForReplicas(): Promise<void> {
    const wanted = this.config.enqueueWaitReplicas;
    if (wanted === 0) return;
    // Half the delivery's deadline: WAIT's own answer, not the deadline, should decide.
    const timeout = Math.floor(this.config.enqueueTimeoutMs / 2);
    const { wanted: present, acknowledged } = await waitForReplicas(
      this.redis,
      this.keys.replicaWait,
      wanted,
      timeout,
      { marker: this.keys.replicaWait },
    );
    if (acknowledged < present)
      throw new Error(`only ${acknowledged} of ${present} replicas acknowledged the delivery`);
  }

  /**
   * Counts an event by source, type and outcome (enqueued, duplicate, ignored, quarantined, rejected,
   * unavailable). Only types we know are label values: a sender's made-up types are counted as
   * `other`, so they cannot grow /metrics without bound.
   */
  count(source: string, type: string, outcome: string, n = 1): void {
    const known = this.knownTypes.has(type) ? type : 'other';
    this.metrics.eventsReceived.inc({ source, type: known, outcome }, n);
  }

  /** `count` for each command, one increment per source and type (a delivery is mostly of one type). */
  private countCommands(commands: RevocationCommand[], outcome: string): void {
    if (commands.length === 1) return this.count(commands[0]!.source, commands[0]!.eventType, outcome);
    const counts = new Map<string, { source: string; type: string; n: number }>();
    for (const c of commands) {
      const key = `${c.source}\n${c.eventType}`;
      const entry = counts.get(key);
      if (entry) entry.n++;
      else counts.set(key, { source: c.source, type: c.eventType, n: 1 });
    }
    for (const { source, type, n } of counts.values()) this.count(source, type, outcome, n);
  }

  /**
   * With REVOKE_ON_RECEIPT, each user revocation is put in force here, beside its enqueue: the user's
   * not-before stamp raised to the command's instant (the stamp the worker's revokeUser raises too,
   * so this adds nothing the job would not do, and a duplicate or a replay changes nothing: the stamp
   * only moves forward). The worker still deletes, audits and fans out. Resolves with each stamp's
   * outcome once all are written, or once they have had `waitMs` (then all 'late'); never rejects. A
   * stamp that fails or is late is left to the job: a session Redis out of reach does not keep a
   * delivery from being queued.
   */
  private stampOnReceipt(commands: RevocationCommand[], waitMs: number): Promise<StampOutcome[]> | null {
    const store = this.stamper;
    if (!store) return null;
    const users = commands.filter((c) => c.target.type === 'user');
    if (users.length === 0) return null;
    // A client that is not connected would hold the stamps in its offline queue (a Cluster's, for
    // as long as the outage lasts) and every delivery would wait for `waitMs`: they are left to the
    // jobs at once instead.
    if (this.sessionRedis?.status !== 'ready') return Promise.resolve(users.map(() => 'failed'));
    // On a single Redis one script a hundred users (stampUsers): a 100-event delivery is one command.
    const stamps = store
      .stampUsers(
        users.map((c) => ({ userId: (c.target as { userId: string }).userId, notBefore: c.notBefore })),
      )
      .then(
        (outcomes) => outcomes.map((o): StampOutcome => (o.status === 'fulfilled' ? 'in_force' : 'failed')),
        () => users.map((): StampOutcome => 'failed'),
      );
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<StampOutcome[]>((resolve) => {
      timer = setTimeout(() => resolve(users.map(() => 'late')), waitMs);
    });
    return Promise.race([stamps, late]).finally(() => clearTimeout(timer));
  }

  /**
   * Counts an acknowledged delivery's stamps, and warns (at most once a minute, however the misses
   * come: an outage, or one master of a Cluster out) that some were not in force on receipt: their
   * jobs put them in force instead, as without REVOKE_ON_RECEIPT.
   */
  private noteStamps(outcomes: StampOutcome[] | null): void {
    if (!outcomes) return;
    const missed = outcomes.filter((outcome) => outcome !== 'in_force').length;
    if (missed < outcomes.length)
      this.metrics.receiptStamps.inc({ outcome: 'in_force' }, outcomes.length - missed);
    if (missed === 0) return;
    // Late is all of them or none (one race for the delivery); else the missed ones failed.
    this.metrics.receiptStamps.inc({ outcome: outcomes[0] === 'late' ? 'late' : 'failed' }, missed);
    this.missedSinceWarning += missed;
    const now = Date.now();
    if (now - this.lastStampWarning < STAMP_WARNING_EVERY_MS) return;
    this.lastStampWarning = now;
    this.log.warn(
      `receipt stamps: ${this.missedSinceWarning} user revocations of acknowledged deliveries were not in force on receipt (session Redis unreachable or slow); their jobs put them in force instead`,
    );
    this.missedSinceWarning = 0;
  }

  async accept(
    commands: RevocationCommand[],
    quarantined: QuarantineEntry[] = [],
    options: { bypassDedup?: boolean; urgent?: boolean; receivedAt?: number } = {},
  ): Promise<EnqueueResult> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('enqueue deadline passed')), this.config.enqueueTimeoutMs);
    });
    try {
      const [[result], stamps] = await Promise.race([
        Promise.all([
          Promise.all([
            (options.urgent ? this.urgentProducer : this.producer).enqueue(commands, options),
            quarantined.length > 0
              ? this.quarantine.add(quarantined, options.receivedAt ?? Date.now())
              : null,
          ]).then(async (stored) => {
            await this.waitForReplicas();
            return stored;
          }),
          // Beside the queue's writes and their WAIT, not before it; within half the delivery's
          // deadline, so that a slow session Redis cannot make the delivery miss its own.
          this.stampOnReceipt(commands, Math.floor(this.config.enqueueTimeoutMs / 2)),
        ]),
        deadline,
      ]);
      this.noteStamps(stamps);
      this.countCommands(result.enqueued, 'enqueued');
      this.countCommands(result.duplicates, 'duplicate');
      for (const q of quarantined) this.count(q.source, 'unknown', 'quarantined', q.events ?? 1);
      return result;
    } catch {
      this.countCommands(commands, 'unavailable');
      for (const q of quarantined) this.count(q.source, 'unknown', 'unavailable', q.events ?? 1);
      throw new RedisUnavailableException();
    } finally {
      clearTimeout(timer);
    }
  }
}
