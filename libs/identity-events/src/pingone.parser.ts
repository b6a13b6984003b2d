import { commandId, RevocationCommand, type RevocationTarget } from '#revocation';
import type { PingOneMapping } from './pingone-mapping.js';
import { isPlainObject, parseJsonBytes } from './safe-json.js';

export interface PingOneParseOptions {
  mapping: PingOneMapping;
  /** When set, events from other PingOne environments are ignored. */
  environmentIds?: ReadonlySet<string>;
  receivedAt: number;
}

export interface Quarantined {
  /**
   * The bytes (as text) we could not understand: the whole body, one event re-serialised, or the
   * delivery's undecodable events re-serialised as one JSON array (which a replay parses again).
   */
  raw: string;
  reason: string;
  eventId?: string;
  /** How many events it holds. */
  events: number;
}

export interface Ignored {
  eventId?: string;
  eventType?: string;
  reason:
    'not SUCCESS' | 'unmapped action type' | 'no watched attribute modified' | 'environment not allowed';
}

export interface PingOneParseResult {
  received: number;
  commands: RevocationCommand[];
  ignored: Ignored[];
  /** At most one entry per delivery, whatever its shape: the work and storage it costs stay bounded. */
  quarantined: Quarantined[];
  /** The events those entries hold. */
  quarantinedEvents: number;
}

/**
 * Turns one PingOne webhook body (ACTIVITY format) into revocation commands. Pure: no I/O.
 * The body may be a top-level array of events, a single event, or an object wrapping an array.
 * What cannot be understood is returned for quarantine rather than thrown, so one bad event never
 * blocks PingOne's delivery stream: one entry for the delivery, however many of its events are bad
 * (a body of millions of junk items costs one entry, not millions).
 */
export function parsePingOneBody(
  body: Buffer | string | undefined,
  options: PingOneParseOptions,
): PingOneParseResult {
  const result: PingOneParseResult = {
    received: 0,
    commands: [],
    ignored: [],
    quarantined: [],
    quarantinedEvents: 0,
  };
  const parsed = parseJsonBytes(body);
  if (!parsed.ok) {
    return wholeBody(
      parsed.text === undefined
        ? // Bytes that are not text: kept exactly, and the reason says how to read them back.
          { raw: bodyAsText(body), reason: `${parsed.reason} (raw bytes kept as base64)` }
        : { raw: parsed.text, reason: parsed.reason },
    );
  }
  try {
    return parseEvents(parsed.value, parsed.text, options, result);
  } catch (err) {
    // JSON.parse copes with any depth, but walking or re-serialising 100,000 levels overflows the stack.
    if (!(err instanceof RangeError)) throw err;
    return wholeBody({ raw: parsed.text, reason: 'body is nested too deeply' });
  }
}

function parseEvents(
  value: unknown,
  text: string,
  options: PingOneParseOptions,
  result: PingOneParseResult,
): PingOneParseResult {
  const events = findEvents(value);
  if (!events) return wholeBody({ raw: text, reason: 'no PingOne events found in the body' });
  result.received = events.length;
  const bad: { event: unknown; reason: string; eventId?: string }[] = [];
  for (const event of events) {
    const outcome = parseEvent(event, options);
    if ('command' in outcome) result.commands.push(outcome.command);
    else if ('ignored' in outcome) result.ignored.push(outcome.ignored);
    else bad.push({ event, ...outcome.quarantined });
  }
  if (bad.length > 0) result.quarantined.push(oneEntry(bad));
  result.quarantinedEvents = bad.length;
  return result;
}

/** A delivery we could not read as events at all: one entry, the whole body. */
const wholeBody = (entry: { raw: string; reason: string }): PingOneParseResult => ({
  received: 1,
  commands: [],
  ignored: [],
  quarantined: [{ ...entry, events: 1 }],
  quarantinedEvents: 1,
});

/** Reasons named in a combined entry, most frequent first; the rest are counted. */
const REASONS_NAMED = 5;

/**
 * The delivery's undecodable events as one entry: a lone event as itself (with its id), several as
 * one JSON array, whose reason counts them by reason.
 */
function oneEntry(bad: { event: unknown; reason: string; eventId?: string }[]): Quarantined {
  if (bad.length === 1) {
    const [only] = bad as [(typeof bad)[0]];
    return {
      raw: JSON.stringify(only.event) ?? 'null',
      reason: only.reason,
      events: 1,
      ...(only.eventId ? { eventId: only.eventId } : {}),
    };
  }
  const byReason = new Map<string, number>();
  for (const b of bad) byReason.set(b.reason, (byReason.get(b.reason) ?? 0) + 1);
  const named = [...byReason].sort((a, b) => b[1] - a[1]).slice(0, REASONS_NAMED);
  const others = byReason.size - named.length;
  return {
    raw: JSON.stringify(bad.map((b) => b.event)),
    reason:
      `${bad.length} events not understood: ` +
      named.map(([reason, n]) => `${reason} (${n})`).join('; ') +
      (others > 0 ? `; ${others} other reasons` : ''),
    events: bad.length,
  };
}

const bodyAsText = (body: Buffer | string | undefined) =>
  typeof body === 'string' ? body : (body ?? Buffer.alloc(0)).toString('base64');

const looksLikeEvent = (v: unknown) => isPlainObject(v) && ('action' in v || 'resources' in v);

/** Array, single event, or the first array of events found in a wrapping object (one level of nesting). */
function findEvents(value: unknown): unknown[] | null {
  if (Array.isArray(value)) return value;
  if (!isPlainObject(value)) return null;
  if (looksLikeEvent(value)) return [value];
  for (const inner of [value, ...Object.values(value).filter(isPlainObject)]) {
    for (const v of Object.values(inner)) if (Array.isArray(v) && v.some(looksLikeEvent)) return v;
  }
  return null;
}

type EventOutcome =
  | { command: RevocationCommand }
  | { ignored: Ignored }
  | { quarantined: { reason: string; eventId?: string } };

function parseEvent(event: unknown, options: PingOneParseOptions): EventOutcome {
  // The event itself is re-serialised later, once for the whole delivery.
  const quarantine = (reason: string, eventId?: string): EventOutcome => ({
    quarantined: { reason, ...(eventId ? { eventId } : {}) },
  });
  if (!isPlainObject(event)) return quarantine('event is not an object');
  const id = str(event['id']);
  const type = isPlainObject(event['action']) ? str(event['action']['type']) : undefined;
  if (!id || !type) return quarantine('event has no id or action.type', id);

  const resources = Array.isArray(event['resources']) ? event['resources'].filter(isPlainObject) : [];
  const ignore = (reason: Ignored['reason']): EventOutcome => ({
    ignored: { eventId: id, eventType: type, reason },
  });
  if (options.environmentIds) {
    const env = environmentOf(event, resources);
    if (!env || !options.environmentIds.has(env)) return ignore('environment not allowed');
  }
  const status = isPlainObject(event['result']) ? event['result']['status'] : undefined;
  if (status !== 'SUCCESS') return ignore('not SUCCESS');
  const rule = Object.hasOwn(options.mapping, type) ? options.mapping[type] : undefined;
  if (!rule) return ignore('unmapped action type');
  if (rule.modifiedAttributes) {
    const embedded = isPlainObject(event['_embedded']) ? event['_embedded']['modifiedAttributes'] : undefined;
    const modified = Array.isArray(embedded) ? embedded : [];
    if (!rule.modifiedAttributes.some((a) => modified.includes(a)))
      return ignore('no watched attribute modified');
  }

  const when = Date.parse(str(event['recordedAt']) ?? str(event['createdAt']) ?? '');
  if (!Number.isFinite(when) || when < 0) return quarantine('event has no valid recordedAt', id);

  const userId = userOf(resources);
  let target: RevocationTarget;
  if (rule.target === 'user') {
    if (!userId) return quarantine('event names no user', id);
    target = { type: 'user', userId };
  } else if (rule.target === 'idp_session') {
    const session = resources.find((r) => r['type'] === 'SESSION');
    const idpSessionId = session && str(session['id']);
    if (!idpSessionId) return quarantine('event names no session', id);
    target = { type: 'idp_session', idpSessionId, ...(userId ? { userId } : {}) };
  } else {
    const group = resources.find((r) => r['type'] === 'GROUP');
    const groupId = group && str(group['id']);
    if (!groupId) return quarantine('event names no group', id);
    target = { type: 'group', groupId };
  }

  const input = {
    id: commandId('pingone', id),
    target,
    source: 'pingone' as const,
    eventType: type,
    eventId: id,
    notBefore: when,
    receivedAt: options.receivedAt,
  };
  // The schema's own answer whenever it could differ from the input as it stands (and its reason).
  if (fitsCommand(input)) return { command: { ...input, notBefore: Math.min(when, options.receivedAt) } };
  const command = RevocationCommand.safeParse(input);
  if (!command.success)
    return quarantine(`event does not make a valid command: ${command.error.issues[0]?.message}`, id);
  return { command: command.data };
}

/** What RevocationCommand bounds a string id to. */
const fitsId = (v: string | undefined) => v === undefined || (v.length >= 1 && v.length <= 256);
const fitsTime = (v: number) => Number.isSafeInteger(v) && v >= 0;

/**
 * Whether a command built here certainly passes RevocationCommand as it is, but for the schema's one
 * transform (`notBefore` at most `receivedAt`): parsing a schema costs more than the rest of an event's
 * mapping, and nearly every event fits. The id is commandId's, the source a literal, every other string
 * non-empty (`str`), so only lengths and times are left to check. Anything else goes to the schema.
 */
function fitsCommand(c: {
  target: RevocationTarget;
  eventType: string;
  eventId: string;
  notBefore: number;
  receivedAt: number;
}): boolean {
  const t = c.target;
  const targetFits =
    t.type === 'user'
      ? fitsId(t.userId)
      : t.type === 'idp_session'
        ? fitsId(t.idpSessionId) && fitsId(t.userId)
        : t.type === 'group' && fitsId(t.groupId);
  return (
    targetFits &&
    c.eventType.length <= 256 &&
    c.eventId.length <= 512 &&
    fitsTime(c.notBefore) &&
    fitsTime(c.receivedAt)
  );
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

/**
 * The subject: the USER resource, or for MEMBER_OF_GROUP.* the user id inside the resource's href
 * (`.../users/{userId}/memberOfGroups/{groupId}`). Never `actors`: they are who made the change.
 */
function userOf(resources: Record<string, unknown>[]): string | undefined {
  const user = resources.find((r) => r['type'] === 'USER');
  if (user && str(user['id'])) return str(user['id']);
  for (const r of resources) {
    const m = /\/users\/([^/?#]+)\/memberOfGroups\//.exec(str(r['href']) ?? '');
    if (m) return safeDecode(m[1]!);
  }
  return undefined;
}

function environmentOf(
  event: Record<string, unknown>,
  resources: Record<string, unknown>[],
): string | undefined {
  for (const r of resources) {
    const env = isPlainObject(r['environment']) ? str(r['environment']['id']) : undefined;
    if (env) return env;
  }
  const links =
    isPlainObject(event['_links']) && isPlainObject(event['_links']['self']) ? event['_links']['self'] : {};
  return /\/environments\/([^/]+)\//.exec(str(links['href']) ?? '')?.[1];
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
