import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '#config';
import { QUEUE_REDIS } from '../queue-redis.provider.js';

export interface QuarantineEntry {
  source: string;
  reason: string;
  raw: string;
  eventId?: string;
  /** How many events it holds when more than one (counted, not stored). */
  events?: number;
}

/**
 * Deliveries we authenticated but could not understand, kept (raw text, reason, time) in a capped
 * Redis stream for inspection and replay, so one bad event never blocks the sender's stream.
 */
@Injectable()
export class QuarantineService {
  readonly key: string;

  constructor(
    @Inject(QUEUE_REDIS) private readonly redis: Redis,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.key = `${config.redis.queuePrefix}:quarantine`;
  }

  /** Newest first. */
  async list(limit: number): Promise<(QuarantineEntry & { id: string; receivedAt: number })[]> {
    const entries = await this.redis.xrevrange(this.key, '+', '-', 'COUNT', String(limit));
    return entries.map(([id, fields]) => toEntry(id, fields));
  }

  async get(id: string): Promise<(QuarantineEntry & { id: string; receivedAt: number }) | null> {
    const [entry] = await this.redis.xrange(this.key, id, id);
    return entry ? toEntry(entry[0], entry[1]) : null;
  }

  async remove(id: string): Promise<void> {
    await this.redis.xdel(this.key, id);
  }

  /** Stores entries; resolves only once Redis has them (they are acknowledged to the sender after). */
  async add(entries: QuarantineEntry[], receivedAt: number): Promise<void> {
    await Promise.all(
      entries.map((e) =>
        this.redis.xadd(
          this.key,
          'MAXLEN',
          '~',
          String(this.config.quarantineMaxEntries),
          '*',
          'source',
          e.source,
          'reason',
          e.reason,
          'receivedAt',
          String(receivedAt),
          'eventId',
          e.eventId ?? '',
          'raw',
          e.raw,
        ),
      ),
    );
  }
}

function toEntry(id: string, fields: string[]): QuarantineEntry & { id: string; receivedAt: number } {
  const f: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1] ?? '';
  return {
    id,
    source: f['source'] ?? '',
    reason: f['reason'] ?? '',
    raw: f['raw'] ?? '',
    receivedAt: Number(f['receivedAt'] ?? 0),
    ...(f['eventId'] ? { eventId: f['eventId'] } : {}),
  };
}
