import { commandId, RevocationCommand } from '#revocation';
import { EventRejectedError } from './event-rejected.error.js';
import type { JwtVerifier } from './jwt-verifier.js';
import { isPlainObject } from './safe-json.js';
import { latestInstantOf } from './numeric-date.js';

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

export interface LogoutTokenOptions {
  clockToleranceSec: number;
  maxTokenAgeSec: number;
  receivedAt: number;
}

/**
 * Verifies an OIDC Back-Channel Logout token (OpenID Connect Back-Channel Logout 1.0, section 2.6)
 * and turns it into one command: `sid` -> that IdP session, only `sub` -> the user.
 * The event id is issuer + `jti`, so a replayed token maps to the same command and is deduplicated.
 */
export async function parseLogoutToken(
  token: string | undefined,
  verifier: JwtVerifier,
  options: LogoutTokenOptions,
): Promise<RevocationCommand> {
  if (!token) throw new EventRejectedError('invalid_request', 'logout_token is missing');
  const { payload } = await verifier.verify(token, {
    clockToleranceSec: options.clockToleranceSec,
    maxTokenAgeSec: options.maxTokenAgeSec,
    requiredClaims: ['iss', 'aud', 'iat', 'exp', 'jti'],
    typ: 'logout+jwt',
  });
  const events = payload['events'];
  if (!isPlainObject(events) || !isPlainObject(events[BACKCHANNEL_LOGOUT_EVENT]))
    throw new EventRejectedError(
      'invalid_request',
      'the events claim does not hold a back-channel logout event',
    );
  if ('nonce' in payload)
    throw new EventRejectedError('invalid_request', 'a logout token must not contain a nonce');
  const sub = typeof payload.sub === 'string' && payload.sub ? payload.sub : undefined;
  const sid = typeof payload['sid'] === 'string' && payload['sid'] ? payload['sid'] : undefined;
  if (!sub && !sid) throw new EventRejectedError('invalid_request', 'a logout token needs sub or sid');

  const eventId = `${payload.iss}#${payload.jti}`;
  const parsed = RevocationCommand.safeParse({
    id: commandId('oidc_bcl', eventId),
    target: sid
      ? { type: 'idp_session', idpSessionId: sid, ...(sub ? { userId: sub } : {}) }
      : { type: 'user', userId: sub },
    source: 'oidc_bcl',
    eventType: 'backchannel-logout',
    eventId,
    notBefore: latestInstantOf(payload.iat!),
    receivedAt: options.receivedAt,
  });
  if (!parsed.success)
    throw new EventRejectedError('invalid_request', 'the logout token claims are out of range');
  return parsed.data;
}
