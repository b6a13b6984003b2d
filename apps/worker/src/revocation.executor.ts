import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { createHash } from 'node:crypto';
import { APP_CONFIG, type AppConfig } from '#config';
import { RevokerMetrics } from '#metrics';
import {
  QUEUE_REDIS,
  type RedisClient,
  SESSION_REDIS,
  waitForReplicas,
  waitForReplicasEverywhere,
} from '#redis';
import {
  AuditLog,
  producerOptions,
  REVOCATION_QUEUE,
  RevocationProducer,
  type RevocationCommand,
} from '#revocation';
import { SessionStore } from '#session-store';

/** A revocation not yet on enough replicas: the job attempt fails and is retried. */
export class ReplicaWaitError extends Error {}

export interface ExecutionResult {
  revoked: number;
  /** For a group: the user jobs it fanned out to. */
  fannedOut?: number;
}

/** Carries out one command against the session store, then audits and measures it. */
@Injectable()
export class RevocationExecutor {
  private readonly producer: RevocationProducer;

  constructor(
    private readonly store: SessionStore,
    private readonly metrics: RevokerMetrics,
    @InjectQueue(REVOCATION_QUEUE) queue: Queue,
    @Inject(QUEUE_REDIS) redis: RedisClient,
    @Inject(SESSION_REDIS) private readonly sessionRedis: RedisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly audit: AuditLog,
  ) {
    this.producer = new RevocationProducer(queue, redis, producerOptions(config));
  }

  async execute(command: RevocationCommand): Promise<ExecutionResult> {
    const result = await this.revoke(command);
    // Counted as soon as they are gone: an attempt that then fails the replica wait deleted them, and
    // its retry finds nothing left to count.
    this.metrics.sessionsRevoked.inc({ target: command.target.type }, result.revoked);
    await this.waitForSessionReplicas(command);
    const doneAt = Date.now();
    if (result.fannedOut === undefined) {
      this.metrics.eventToDone.observe(
        { source: command.source },
        Math.max(0, doneAt - command.notBefore) / 1000,
      );
      this.metrics.receivedToDone.observe(
        { source: command.source },
        Math.max(0, doneAt - command.receivedAt) / 1000,
      );
    }
    // A group's members are audited as the one fan-out entry (with its count), not one entry each.
    if (command.fanOutOf === undefined)
      await this.audit.append({
        commandId: command.id,
        source: command.source,
        eventType: command.eventType,
        eventId: command.eventId,
        target: command.target,
        revoked: result.fannedOut ?? result.revoked,
        result: result.fannedOut === undefined ? 'done' : 'fanned_out',
        receivedAt: command.receivedAt,
        doneAt,
        ...(command.actor ? { actor: command.actor } : {}),
        ...(command.reason ? { reason: command.reason } : {}),
      });
    return result;
  }

  /**
   * With SESSION_WAIT_REPLICAS, a job completes only once the session masters' replicas have what it
   * wrote: replication is asynchronous, and a master that fails over right after a revocation would
   * otherwise come back without its stamp, the job already done. Short of that, the attempt fails and
   * the retry applies the revocation again (idempotent), on whichever master then holds the user.
   * A user's (or one session's) revocation waits only on the master of that user's slot, so a lagging
   * replica elsewhere holds up nobody else's; IdP-session and group revocations write to several
   * slots and wait on every master.
   */
  private async waitForSessionReplicas(command: RevocationCommand): Promise<void> {
    const { sessionWaitReplicas: wanted, sessionWaitTimeoutMs: timeout } = this.config.worker;
    if (wanted === 0) return;
    const { target } = command;
    const { wanted: present, acknowledged } =
      target.type === 'user' || target.type === 'session'
        ? await waitForReplicas(
            this.sessionRedis,
            this.store.keys.notBefore(this.store.keys.userTag(target.userId)),
            wanted,
            timeout,
          )
        : await waitForReplicasEverywhere(this.sessionRedis, wanted, timeout);
    if (acknowledged < present)
      throw new ReplicaWaitError(
        `only ${acknowledged} of ${present} session Redis replicas acknowledged the revocation`,
      );
  }

  private async revoke(command: RevocationCommand): Promise<ExecutionResult> {
    const { target, notBefore } = command;
    switch (target.type) {
      case 'user':
        return {
          revoked: (await this.store.revokeUser(target.userId, { notBefore, reason: command.reason }))
            .revoked,
        };
      case 'idp_session': {
        const r = await this.store.revokeIdpSession(target.idpSessionId, {
          notBefore,
          ...(target.userId ? { userId: target.userId } : {}),
        });
        return { revoked: r.revoked };
      }
      case 'session':
        return { revoked: (await this.store.revokeSessionHandle(target.userId, target.handle)) ? 1 : 0 };
      case 'group':
        return this.fanOut(command, target.groupId);
    }
  }

  /**
   * One user job per member, each keeping the command's notBefore, so a big group spreads over
   * workers (and cluster slots). Child ids are derived from the parent's, so a retried fan-out adds
   * nothing twice.
   */
  private async fanOut(command: RevocationCommand, groupId: string): Promise<ExecutionResult> {
    const { users } = await this.store.revokeGroup(groupId, { notBefore: command.notBefore });
    for (let i = 0; i < users.length; i += 500) {
      const children = users.slice(i, i + 500).map((userId): RevocationCommand => ({
        ...command,
        id: `${command.id}-u${createHash('sha256').update(userId).digest('base64url').slice(0, 22)}`,
        target: { type: 'user', userId },
        fanOutOf: command.id,
      }));
      await this.producer.enqueue(children);
    }
    return { revoked: 0, fannedOut: users.length };
  }
}
