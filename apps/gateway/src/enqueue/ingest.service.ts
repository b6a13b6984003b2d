import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { APP_CONFIG, type AppConfig } from '#config';
import { SSF_EVENTS } from '#identity-events';
import { RevokerMetrics } from '#metrics';
import { QUEUE_REDIS, type RedisClient, waitForReplicas } from '#redis';
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
import { RedisUnavailableException } from '../http/redis-unavailable.js';

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

  constructor(
    @InjectQueue(REVOCATION_QUEUE) queue: Queue,
    @InjectQueue(REVOCATION_PRIORITY_QUEUE) urgentQueue: Queue,
    @Inject(QUEUE_REDIS) private readonly redis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly quarantine: Quarantine,
    private readonly keys: QueueKeys,
    private readonly metrics: RevokerMetrics,
  ) {
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
   * that fails over right after a write loses it.
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
      const [result] = await Promise.race([
        Promise.all([
          (options.urgent ? this.urgentProducer : this.producer).enqueue(commands, options),
          quarantined.length > 0 ? this.quarantine.add(quarantined, options.receivedAt ?? Date.now()) : null,
        ]).then(async (stored) => {
          await this.waitForReplicas();
          return stored;
        }),
        deadline,
      ]);
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
