import type { RedisClient } from '#redis';
import type { RevocationCommand } from './revocation-command.js';

/**
 * One entry of the audit stream: an executed revocation (automatic or asked by an admin), or an admin
 * API call (who, what, when, result).
 */
export interface AuditRecord {
  commandId?: string;
  source: string;
  eventType: string;
  eventId?: string;
  target?: RevocationCommand['target'] | { userId?: string; groupId?: string; handle?: string };
  /** Sessions revoked (for a group: users fanned out to). */
  revoked?: number;
  result: 'done' | 'failed' | 'fanned_out' | number;
  receivedAt: number;
  doneAt: number;
  actor?: string;
  reason?: string;
}

/** The audit trail: a capped Redis stream, newest last; it never holds a secret. */
export class AuditLog {
  constructor(
    private readonly redis: RedisClient,
    readonly key: string,
    private readonly maxEntries: number,
  ) {}

  async append(record: AuditRecord): Promise<void> {
    await this.redis.xadd(this.key, 'MAXLEN', '~', String(this.maxEntries), '*', 'r', JSON.stringify(record));
  }

  /** Newest first, optionally only those naming a user. */
  async read(options: { limit: number; userId?: string }): Promise<(AuditRecord & { id: string })[]> {
    const out: (AuditRecord & { id: string })[] = [];
    let end = '+';
    while (out.length < options.limit) {
      const page = await this.redis.xrevrange(
        this.key,
        end,
        '-',
        'COUNT',
        String(Math.max(options.limit, 100)),
      );
      if (page.length === 0) break;
      for (const [id, fields] of page) {
        const record = JSON.parse(fields[1] ?? '{}') as AuditRecord;
        const target = record.target as { userId?: string };
        if (!options.userId || target?.userId === options.userId) out.push({ id, ...record });
        if (out.length >= options.limit) break;
      }
      end = `(${page[page.length - 1]![0]}`;
      if (!options.userId) break;
    }
    return out;
  }
}
