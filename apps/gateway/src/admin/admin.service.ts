import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, NotFoundException, ServiceUnavailableException } from '@nestjs/common';
import type { Job, Queue } from 'bullmq';
import { randomUUID } from 'node:crypto';
import { APP_CONFIG, type AppConfig } from '#config';
import { parsePingOneBody } from '#identity-events';
import {
  AuditLog,
  commandId,
  isIssuedCommandId,
  Quarantine,
  REVOCATION_PRIORITY_QUEUE,
  REVOCATION_QUEUE,
  type RevocationCommand,
  type RevocationTarget,
} from '#revocation';
import { SessionStore, type SessionSummary } from '#session-store';
import { IngestService } from '../enqueue/ingest.service.js';
import type { CommandStatus } from './admin.dto.js';

/** Manual revocation, inspection and replay. Revocations go through the same queue as webhooks. */
@Injectable()
export class AdminService {
  private readonly queues: Queue[];

  constructor(
    @Inject(SessionStore) private readonly store: SessionStore | null,
    @InjectQueue(REVOCATION_QUEUE) private readonly queue: Queue,
    @InjectQueue(REVOCATION_PRIORITY_QUEUE) private readonly urgentQueue: Queue,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly ingest: IngestService,
    private readonly quarantine: Quarantine,
    readonly audit: AuditLog,
  ) {
    this.queues = [urgentQueue, queue];
  }

  private sessions(): SessionStore {
    if (!this.store)
      throw new ServiceUnavailableException(
        'the gateway has no SESSION_TAG_SECRET: it cannot read the session store',
      );
    return this.store;
  }

  listSessions(userId: string): Promise<SessionSummary[]> {
    return this.sessions().listUserSessions(userId);
  }

  revokeHandle(userId: string, handle: string): Promise<boolean> {
    return this.sessions().revokeSessionHandle(userId, handle);
  }

  /** Queues an admin revocation on the priority queue, ahead of webhook traffic. */
  async revoke(target: RevocationTarget, reason: string, actor: string): Promise<string> {
    const eventId = randomUUID();
    const now = Date.now();
    const command: RevocationCommand = {
      id: commandId('admin', eventId),
      target,
      source: 'admin',
      eventType: target.type === 'group' ? 'admin.revoke_group' : 'admin.revoke_user',
      eventId,
      notBefore: now,
      receivedAt: now,
      reason,
      actor,
    };
    await this.ingest.accept([command], [], { urgent: true, receivedAt: now });
    return command.id;
  }

  /** Waits (bounded) for a command to finish; null when it has not by the deadline. */
  async waitFor(id: string): Promise<CommandStatus | null> {
    const deadline = Date.now() + this.config.admin.waitTimeoutMs;
    for (;;) {
      const status = await this.status(id);
      if (status && (status.state === 'done' || status.state === 'failed')) return status;
      if (Date.now() > deadline) return null;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async status(id: string): Promise<CommandStatus | null> {
    const job = await this.findJob(id);
    if (!job) return null;
    const state = await job.getState();
    const mapped: CommandStatus['state'] =
      state === 'completed'
        ? 'done'
        : state === 'failed'
          ? 'failed'
          : state === 'active'
            ? 'active'
            : 'queued';
    return {
      commandId: id,
      state: mapped,
      ...(job.returnvalue !== undefined && job.returnvalue !== null ? { result: job.returnvalue } : {}),
      ...(job.failedReason ? { failedReason: job.failedReason } : {}),
      attempts: job.attemptsMade,
      timings: {
        queuedAt: job.timestamp,
        ...(job.processedOn ? { startedAt: job.processedOn } : {}),
        ...(job.finishedOn ? { finishedAt: job.finishedOn } : {}),
      },
    };
  }

  /** Only ids this service issues are looked up: others may name BullMQ's own keys in the queue. */
  private async findJob(id: string): Promise<Job | undefined> {
    if (!isIssuedCommandId(id)) return undefined;
    for (const queue of this.queues) {
      const job = await queue.getJob(id);
      if (job) return job;
    }
    return undefined;
  }

  listQuarantine(limit: number) {
    return this.quarantine.list(limit);
  }

  /**
   * Parses a quarantined delivery again (e.g. after the mapping was fixed) and queues what it now
   * yields, bypassing duplicate suppression: a deliberate replay must act. The entry is removed once
   * it parses.
   */
  async replayQuarantined(id: string): Promise<{ enqueued: number; ignored: number; quarantined: number }> {
    const entry = await this.quarantine.get(id);
    if (!entry) throw new NotFoundException('no such quarantine entry');
    // When it first arrived: an event dated in the future takes effect then, not at the replay.
    const receivedAt = entry.receivedAt || Date.now();
    const parsed = parsePingOneBody(entry.raw, {
      mapping: this.config.pingone.mapping,
      ...(this.config.pingone.environmentIds ? { environmentIds: this.config.pingone.environmentIds } : {}),
      receivedAt,
    });
    const { enqueued } = await this.ingest.accept(parsed.commands, [], { bypassDedup: true, receivedAt });
    if (parsed.quarantined.length === 0) await this.quarantine.remove(id);
    return {
      enqueued: enqueued.length,
      ignored: parsed.ignored.length,
      quarantined: parsed.quarantinedEvents,
    };
  }

  async listFailed(limit: number) {
    const jobs = (await Promise.all(this.queues.map((q) => q.getJobs(['failed'], 0, limit - 1)))).flat();
    return jobs.slice(0, limit).map((job) => ({
      id: job.id!,
      queue: job.queueName,
      command: job.data as unknown,
      failedReason: job.failedReason,
      attempts: job.attemptsMade,
      failedAt: job.finishedOn,
    }));
  }

  /** Retries a failed job as it is (it keeps its id, so it is not deduplicated away). */
  async retryFailed(id: string): Promise<void> {
    const job = await this.findJob(id);
    if (!job || (await job.getState()) !== 'failed') throw new NotFoundException('no such failed job');
    await job.retry('failed');
  }
}
