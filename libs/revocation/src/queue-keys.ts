/**
 * Every key of ours on the queue Redis, next to BullMQ's own (which BullMQ names under the same
 * prefix: `<prefix>:<queue>:...`). One place builds them, as `KeySpace` does for the session Redis:
 * nothing else spells a queue key. The prefix carries the hash tag on a cluster, so all of them
 * share one slot with the queues.
 */
export class QueueKeys {
  constructor(readonly prefix: string) {}

  /** The audit trail (stream). */
  get audit(): string {
    return `${this.prefix}:audit`;
  }

  /** A warm-up's own audit stream (deleted when it ends): `nonce` names the warm-up. */
  warmUpAudit(nonce: string): string {
    return `${this.prefix}:warm-up-${nonce}:audit`;
  }

  /** Deliveries authenticated but not understood (stream). */
  get quarantine(): string {
    return `${this.prefix}:quarantine`;
  }

  /** The bytes of raw text the quarantine holds (integer). */
  get quarantineBytes(): string {
    return `${this.prefix}:quarantine:bytes`;
  }

  /** The memory watch's latest readings of both Redis roles (JSON). */
  get memory(): string {
    return `${this.prefix}:memory`;
  }

  /** Where the index sweep's walk of the session keyspace resumes (JSON). */
  get sweepPosition(): string {
    return `${this.prefix}:sweep:next`;
  }

  /**
   * The key whose node a delivery's WAIT for replicas is sent to, and the marker written (briefly) right
   * before it, so the WAIT covers what other connections wrote there too.
   */
  get replicaWait(): string {
    return `${this.prefix}:wait`;
  }

  /** The dedup mark of one command id, kept for the dedup window. */
  dedup(commandId: string): string {
    return `${this.prefix}:dedup:${commandId}`;
  }
}
