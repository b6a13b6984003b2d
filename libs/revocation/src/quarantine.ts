import { isStreamId, type RedisClient } from '#redis/core';
import { LuaFolder, type ScriptCall } from '#session-store/lua';
import type { QueueKeys } from './queue-keys.js';

/** One quarantined delivery or event: where it came from, why it was kept, and its raw text. */
export interface QuarantineEntry {
  source: string;
  reason: string;
  raw: string;
  eventId?: string;
  /** How many events it holds (one unless a delivery's undecodable events were kept together). */
  events?: number;
}

/** A stored entry: its stream id and when its delivery arrived. */
export type StoredQuarantineEntry = QuarantineEntry & { id: string; receivedAt: number };

export interface QuarantineBounds {
  maxEntries: number;
  maxBytes: number;
}

const lua = new LuaFolder(new URL('./lua/', import.meta.url));
const SCRIPTS = { quarantineAdd: 2, quarantineRemove: 2 } as const;

/**
 * Deliveries we authenticated but could not understand, kept (raw text, reason, time) in a Redis
 * stream for inspection and replay, so one bad event never blocks the sender's stream. Bounded in
 * entries and in bytes, oldest out first: each entry can be as big as a whole delivery, and the queue
 * Redis must not fill up with them (it refuses writes when full, and then every delivery would get 503).
 */
export class Quarantine {
  readonly key: string;
  private readonly bytesKey: string;
  private readonly scripts: Record<keyof typeof SCRIPTS, ScriptCall>;

  constructor(
    private readonly redis: RedisClient,
    keys: QueueKeys,
    private readonly bounds: QuarantineBounds,
  ) {
    this.key = keys.quarantine;
    this.bytesKey = keys.quarantineBytes;
    this.scripts = lua.define(redis, 'revoker_', SCRIPTS);
  }

  /** Newest first. */
  async list(limit: number): Promise<StoredQuarantineEntry[]> {
    const entries = await this.redis.xrevrange(this.key, '+', '-', 'COUNT', String(limit));
    return entries.map(([id, fields]) => toEntry(id, fields));
  }

  /** The entry, or null when there is none (an id no stream entry can have included). */
  async get(id: string): Promise<StoredQuarantineEntry | null> {
    if (!isStreamId(id)) return null;
    const [entry] = await this.redis.xrange(this.key, id, id);
    return entry ? toEntry(entry[0], entry[1]) : null;
  }

  async remove(id: string): Promise<void> {
    if (!isStreamId(id)) return;
    await this.scripts.quarantineRemove(this.key, this.bytesKey, id);
  }

  /** Stores entries; resolves only once Redis has them (they are acknowledged to the sender after). */
  async add(entries: QuarantineEntry[], receivedAt: number): Promise<void> {
    await Promise.all(
      entries.map((e) =>
        this.scripts.quarantineAdd(
          this.key,
          this.bytesKey,
          String(this.bounds.maxEntries),
          String(this.bounds.maxBytes),
          e.source,
          e.reason,
          String(receivedAt),
          e.eventId ?? '',
          e.raw,
          String(e.events ?? 1),
        ),
      ),
    );
  }

  /** The bytes of raw text the quarantine holds, as counted for its byte bound. */
  async bytes(): Promise<number> {
    return Number((await this.redis.get(this.bytesKey)) ?? 0);
  }
}

function toEntry(id: string, fields: string[]): StoredQuarantineEntry {
  const f: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1] ?? '';
  return {
    id,
    source: f['source'] ?? '',
    reason: f['reason'] ?? '',
    raw: f['raw'] ?? '',
    receivedAt: Number(f['receivedAt'] ?? 0),
    events: Number(f['events'] ?? 1) || 1,
    ...(f['eventId'] ? { eventId: f['eventId'] } : {}),
  };
}
