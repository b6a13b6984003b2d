import { commandId, RevocationCommand, type RevocationTarget } from '#revocation';
import { EventRejectedError } from './event-rejected.error.js';
import type { JwtVerifier } from './jwt-verifier.js';
import { isPlainObject } from './safe-json.js';
import { latestInstantOf } from './numeric-date.js';

const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';

/** The SSF events we act on. session-revoked may name one session; the rest revoke the user. */
export const SSF_EVENTS = new Set([
  `${CAEP}session-revoked`,
  `${CAEP}credential-change`,
  `${CAEP}token-claims-change`,
  `${RISC}account-disabled`,
  `${RISC}account-purged`,
  `${RISC}credential-compromise`,
]);

export interface SetOptions {
  clockToleranceSec: number;
  maxTokenAgeSec: number;
  receivedAt: number;
}

export interface SetParseResult {
  commands: RevocationCommand[];
  /** Event types in the SET that we do not act on (accepted and counted, per RFC 8935). */
  ignored: string[];
}

/**
 * Verifies one Security Event Token (RFC 8417) pushed per RFC 8935 and turns each event we act on
 * into a command. The subject is `sub_id` at the top level (CAEP 1.0) or `subject` inside the event
 * (older drafts); formats iss_sub, email, opaque and complex (user / session) are understood.
 */
export async function parseSecurityEventToken(
  token: string | undefined,
  verifier: JwtVerifier,
  options: SetOptions,
): Promise<SetParseResult> {
  if (!token || !token.trim())
    throw new EventRejectedError('invalid_request', 'the body holds no security event token');
  const { payload } = await verifier.verify(token.trim(), {
    clockToleranceSec: options.clockToleranceSec,
    maxTokenAgeSec: options.maxTokenAgeSec,
    requiredClaims: ['iss', 'aud', 'iat', 'jti'],
    typ: 'secevent+jwt',
  });
  const events = payload['events'];
  if (!isPlainObject(events) || Object.keys(events).length === 0)
    throw new EventRejectedError('invalid_request', 'the SET has no events claim');

  const result: SetParseResult = { commands: [], ignored: [] };
  for (const [eventType, body] of Object.entries(events)) {
    if (!SSF_EVENTS.has(eventType)) {
      result.ignored.push(eventType);
      continue;
    }
    if (!isPlainObject(body))
      throw new EventRejectedError('invalid_request', 'an event in the SET is not an object');
    const subject = body['subject'] ?? payload['sub_id'];
    const target = targetOf(subject, eventType === `${CAEP}session-revoked`);
    const when = typeof body['event_timestamp'] === 'number' ? body['event_timestamp'] : payload.iat!;
    const eventId = `${payload.iss}#${payload.jti}#${eventType}`;
    const parsed = RevocationCommand.safeParse({
      id: commandId('ssf', eventId),
      target,
      source: 'ssf',
      eventType,
      eventId,
      notBefore: latestInstantOf(when),
      receivedAt: options.receivedAt,
      ...(typeof body['reason_admin'] === 'string' ? { reason: body['reason_admin'].slice(0, 512) } : {}),
    });
    if (!parsed.success)
      throw new EventRejectedError('invalid_request', 'an event in the SET is out of range');
    result.commands.push(parsed.data);
  }
  return result;
}

function targetOf(subject: unknown, sessionEvent: boolean): RevocationTarget {
  if (!isPlainObject(subject)) throw new EventRejectedError('invalid_request', 'the event has no subject');
  if (subject['format'] === 'complex') {
    const userId = subject['user'] === undefined ? undefined : simpleId(subject['user']);
    if (sessionEvent && subject['session'] !== undefined) {
      return {
        type: 'idp_session',
        idpSessionId: simpleId(subject['session']),
        ...(userId ? { userId } : {}),
      };
    }
    if (!userId) throw new EventRejectedError('invalid_request', 'the complex subject names no user');
    return { type: 'user', userId };
  }
  return { type: 'user', userId: simpleId(subject) };
}

/** The id a simple subject identifier names (RFC 9493 formats we can map to a user or session id). */
function simpleId(subject: unknown): string {
  if (!isPlainObject(subject))
    throw new EventRejectedError('invalid_request', 'a subject identifier is not an object');
  const field = { iss_sub: 'sub', email: 'email', opaque: 'id' }[String(subject['format'])];
  const value = field ? subject[field] : undefined;
  if (!field) throw new EventRejectedError('invalid_request', 'the subject format is not supported');
  if (typeof value !== 'string' || !value)
    throw new EventRejectedError('invalid_request', 'the subject identifier is incomplete');
  return value;
}
