import { canonicalStreamId, type RedisClient } from '#redis/core';
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

/** One entry as read back, with its stream id. */
export type AuditEntry = AuditRecord & { id: string };

/** The audit trail: a capped Redis stream, newest last; it never holds a secret. */
export class AuditLog {
  /**
   * The most entries one filtered read examines: a read for a user walks the stream newest first and
   * stops at `limit` matches or after this many entries, whichever comes first, and answers where to
   * resume. So a read costs at most this much Redis work and time, whatever the stream holds.
   */
  static readonly SCAN_BUDGET = 5000;
  /** Entries per XREVRANGE of a filtered read: each Redis command stays short. */
  private static readonly PAGE = 1000;

  constructor(
    private readonly redis: RedisClient,
    readonly key: string,
    private readonly maxEntries: number,
  ) {}

  async append(record: AuditRecord): Promise<void> {
    await this.redis.xadd(this.key, 'MAXLEN', '~', String(this.maxEntries), '*', 'r', JSON.stringify(record));
  }

  /** Newest first, optionally only those naming a user (see `page` for the bounds). */
  async read(options: { limit: number; userId?: string; before?: string }): Promise<AuditEntry[]> {
    return (await this.page(options)).entries;
  }

  /**
   * Newest first, from just older than `before` (a stream id) or from the newest. Without a user: one
   * XREVRANGE of `limit` entries. With a user: at most `scanBudget` entries examined. `next` is the
   * id of the last entry examined, to pass as `before` for the rest; absent once the walk reached the
   * oldest entry.
   */
  async page(options: {
    limit: number;
    userId?: string;
    before?: string;
    scanBudget?: number;
  }): Promise<{ entries: AuditEntry[]; next?: string }> {
    const { limit, userId } = options;
    // In canonical form ('00-0' is 0-0 to Redis). Nothing is older than 0-0, and Redis refuses an
    // exclusive range below it.
    const before = options.before === undefined ? undefined : canonicalStreamId(options.before);
    if (options.before !== undefined && before === undefined)
      throw new RangeError('before must be a stream id');
    if (before === '0-0') return { entries: [] };
    let end = before === undefined ? '+' : `(${before}`;
    let budget = userId === undefined ? limit : Math.max(options.scanBudget ?? AuditLog.SCAN_BUDGET, 1);
    // A record names the user as a JSON string: entries without that text are skipped unparsed.
    const needle = userId === undefined ? undefined : JSON.stringify(userId);
    const entries: AuditEntry[] = [];
    let last: string | undefined;
    while (entries.length < limit && budget > 0) {
      const count = userId === undefined ? budget : Math.min(budget, AuditLog.PAGE);
      const page = await this.redis.xrevrange(this.key, end, '-', 'COUNT', String(count));
      for (const [id, fields] of page) {
        last = id;
        budget--;
        const raw = fields[1] ?? '{}';
        if (needle !== undefined && !raw.includes(needle)) continue;
        const record = JSON.parse(raw) as AuditRecord;
        const target = record.target as { userId?: string } | undefined;
        if (userId === undefined || target?.userId === userId) entries.push({ id, ...record });
        if (entries.length >= limit) break;
      }
      // Fewer than asked for: the walk reached the oldest entry.
      if (page.length < count && entries.length < limit) return { entries };
      end = `(${last!}`;
    }
    return last === undefined ? { entries } : { entries, next: last };
  }
}
