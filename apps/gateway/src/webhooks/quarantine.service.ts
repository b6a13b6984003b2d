import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '#config';
import { QUEUE_REDIS } from '../queue-redis.provider.js';

export interface QuarantineEntry {
  source: string;
  reason: string;
  raw: string;
  eventId?: string;
}

/** Lua: the bytes of an entry's raw text, from its field list. */
const SIZE_OF = `
local function sizeOf(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'raw' then return #fields[i + 1] end
  end
  return 0
end
`;

/**
 * Adds an entry and trims the oldest until both bounds hold (the newest entry is always kept).
 * KEYS: the stream, its byte count. ARGV: max entries, max bytes, source, reason, receivedAt, eventId, raw.
 * The count starts afresh whenever the stream is empty or trimmed down to the newest entry, so one
 * that drifted (entries deleted by hand, or kept from before the count existed) comes right again.
 */
const ADD = `${SIZE_OF}
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('SET', KEYS[2], 0) end
local raw = ARGV[7]
local id = redis.call('XADD', KEYS[1], '*', 'source', ARGV[3], 'reason', ARGV[4], 'receivedAt', ARGV[5],
  'eventId', ARGV[6], 'raw', raw)
local bytes = redis.call('INCRBY', KEYS[2], #raw)
local maxEntries, maxBytes = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = redis.call('XLEN', KEYS[1])
while n > 1 and (n > maxEntries or bytes > maxBytes) do
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  redis.call('XDEL', KEYS[1], oldest[1])
  bytes = redis.call('DECRBY', KEYS[2], sizeOf(oldest[2]))
  n = n - 1
  if n == 1 then
    bytes = #raw
    redis.call('SET', KEYS[2], bytes)
  end
end
return id
`;

/** Removes one entry and its bytes from the count. KEYS: the stream, its byte count. ARGV: the id. */
const REMOVE = `${SIZE_OF}
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])[1]
if not entry then return 0 end
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('DECRBY', KEYS[2], sizeOf(entry[2]))
return 1
`;

type QuarantineRedis = Redis & {
  quarantineAdd(stream: string, bytes: string, ...args: string[]): Promise<string>;
  quarantineRemove(stream: string, bytes: string, id: string): Promise<number>;
};

/**
 * Deliveries we authenticated but could not understand, kept (raw text, reason, time) in a Redis
 * stream for inspection and replay, so one bad event never blocks the sender's stream. Bounded in
 * entries and in bytes (QUARANTINE_MAX_ENTRIES, QUARANTINE_MAX_BYTES), oldest out first: each entry
 * can be as big as a whole delivery, and the queue Redis must not fill up with them (it refuses
 * writes when full, and then every delivery would get 503).
 */
@Injectable()
export class QuarantineService {
  readonly key: string;
  private readonly bytesKey: string;
  private readonly redis: QuarantineRedis;

  constructor(
    @Inject(QUEUE_REDIS) redis: Redis,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.key = `${config.redis.queuePrefix}:quarantine`;
    this.bytesKey = `${this.key}:bytes`;
    // EVALSHA, with the script sent again if Redis lost it (ioredis' defined commands).
    if (!('quarantineAdd' in redis)) {
      redis.defineCommand('quarantineAdd', { numberOfKeys: 2, lua: ADD });
      redis.defineCommand('quarantineRemove', { numberOfKeys: 2, lua: REMOVE });
    }
    this.redis = redis as QuarantineRedis;
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
    await this.redis.quarantineRemove(this.key, this.bytesKey, id);
  }

  /** Stores entries; resolves only once Redis has them (they are acknowledged to the sender after). */
  async add(entries: QuarantineEntry[], receivedAt: number): Promise<void> {
    await Promise.all(
      entries.map((e) =>
        this.redis.quarantineAdd(
          this.key,
          this.bytesKey,
          String(this.config.quarantineMaxEntries),
          String(this.config.quarantineMaxBytes),
          e.source,
          e.reason,
          String(receivedAt),
          e.eventId ?? '',
          e.raw,
        ),
      ),
    );
  }

  /** The bytes of raw text the quarantine holds, as counted for QUARANTINE_MAX_BYTES. */
  async bytes(): Promise<number> {
    return Number((await this.redis.get(this.bytesKey)) ?? 0);
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
