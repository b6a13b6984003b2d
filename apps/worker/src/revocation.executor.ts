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
  FAN_OUT_BATCH,
  REVOCATION_QUEUE,
  RevocationProducer,
  type RevocationCommand,
} from '#revocation';
import { SessionStore } from '#session-store';

/** A revocation not yet on enough replicas: the job attempt fails and is retried. */
export class ReplicaWaitError extends Error {}

/** Members of a fan-out batch revoked at once (each is one script call on the session Redis). */
const MEMBERS_IN_FLIGHT = 50;

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
    // A fan-out batch's members count as users, as they did when each was its own job.
    const target = command.target.type === 'users' ? 'user' : command.target.type;
    this.metrics.sessionsRevoked.inc({ target }, result.revoked);
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
    const { keys } = this.store;
    // A user's revocation whose stamp was raised first elsewhere (the gateway's receipt stamp) may
    // write nothing here: the marker makes the WAIT cover that stamp too.
    const tag = target.type === 'user' || target.type === 'session' ? keys.userTag(target.userId) : null;
    const { wanted: present, acknowledged } = tag
      ? await waitForReplicas(this.sessionRedis, keys.notBefore(tag), wanted, timeout, {
          marker: keys.replicaWait(tag),
        })
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
      case 'users':
        return { revoked: await this.revokeUsers(target.userIds, notBefore, command.reason) };
    }
  }

  /** A fan-out batch: each member revoked as a user would be, MEMBERS_IN_FLIGHT at a time. */
  private async revokeUsers(userIds: string[], notBefore: number, reason?: string): Promise<number> {
    let revoked = 0;
    for (let i = 0; i < userIds.length; i += MEMBERS_IN_FLIGHT) {
      const results = await Promise.all(
        userIds
          .slice(i, i + MEMBERS_IN_FLIGHT)
          .map((userId) => this.store.revokeUser(userId, { notBefore, ...(reason ? { reason } : {}) })),
      );
      revoked += results.reduce((n, r) => n + r.revoked, 0);
    }
    return revoked;
  }

  /**
   * One job per FAN_OUT_BATCH members, each keeping the command's notBefore, so a big group spreads
   * over workers (and cluster slots) without a job per member: 50,000 members are 100 jobs. The
   * members are sorted before they are cut into batches and a batch's id is derived from the parent's
   * and its members, so a retried fan-out over the same members adds nothing twice (and over changed
   * members, new batches: revoking a user twice is harmless).
   */
  private async fanOut(command: RevocationCommand, groupId: string): Promise<ExecutionResult> {
    const { users } = await this.store.revokeGroup(groupId, { notBefore: command.notBefore });
    users.sort();
    const children: RevocationCommand[] = [];
    for (let i = 0; i < users.length; i += FAN_OUT_BATCH) {
      const userIds = users.slice(i, i + FAN_OUT_BATCH);
      const hash = createHash('sha256').update(userIds.join('\n')).digest('base64url').slice(0, 22);
      children.push({
        ...command,
        id: `${command.id}-b${hash}`,
        target: { type: 'users', userIds },
        fanOutOf: command.id,
      });
    }
    await this.producer.enqueue(children);
    return { revoked: 0, fannedOut: users.length };
  }
}
