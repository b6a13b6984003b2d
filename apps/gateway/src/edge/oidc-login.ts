import { hash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as oidc from 'openid-client';
import type { AppConfig } from '#config';
import { isRedisUnavailable, type RedisClient } from '#redis';
import { RETRY_AFTER_SECONDS } from '../http/redis-unavailable.js';
import { InvalidArgumentError, type Session, SessionRevokedError, type SessionStore } from '#session-store';
import { readCookie } from './forward-auth.js';
import {
  parseSessionCookie,
  safeReturnPath,
  seal,
  sealWith,
  sessionCookieValue,
  setCookieHeader,
  unseal,
} from './session-cookie.js';

/** How long a login may take at the OP before its state is forgotten (one use either way). */
const LOGIN_TTL_MS = 10 * 60_000;
/** How long one process may hold a session's refresh for everyone. */
const REFRESH_LEASE_MS = 15_000;

/** The tokens a session keeps sealed with its cookie's key (claim `_tok`), and when they expire. */
interface KeptTokens {
  refreshToken: string;
  accessToken: string;
}

/**
 * Renews a session's tokens at the OP when its access token nears expiry: once across every process
 * (a lease in Redis, then the session read again, then skipped if another process already did it);
 * `invalid_grant` ends the session. Used by forward auth, which holds the cookie's key.
 */
export interface EdgeRefresher {
  /** The session's access token (decrypted), refreshed first when due; 'ended' when the OP ended the grant. */
  check(
    sessionId: string,
    session: Session,
    key: string | undefined,
  ): Promise<{ accessToken?: string } | 'ended'>;
}

interface PendingLogin {
  verifier: string;
  nonce: string;
  rd: string;
}

type OidcSettings = NonNullable<AppConfig['edge']['oidc']>;

/**
 * The edge's OpenID Connect relying party (openid-client): authorization code with PKCE (S256),
 * `state` and `nonce` kept server-side for one use; the session is born of the ID token (user = `sub`,
 * IdP session = `sid`, so back-channel logout finds it; groups from OIDC_GROUPS_CLAIM) and lives in
 * the same store every revocation reaches. Discovery happens at the first login and is retried after
 * a failure, so the gateway starts while the OP is down.
 */
export function serveOidcLogin(
  fastify: FastifyInstance,
  config: AppConfig,
  settings: OidcSettings,
  store: SessionStore,
  redis: RedisClient,
): EdgeRefresher {
  let discovered: Promise<oidc.Configuration> | undefined;
  const configuration = (): Promise<oidc.Configuration> => {
    discovered ??= oidc
      .discovery(
        new URL(settings.issuer),
        settings.clientId,
        undefined,
        oidc.ClientSecretBasic(settings.clientSecret),
        settings.insecure ? { execute: [oidc.allowInsecureRequests] } : undefined,
      )
      .catch((err: unknown) => {
        discovered = undefined;
        throw err;
      });
    return discovered;
  };
  const stateKey = (state: string) => store.keys.loginState(hash('sha256', state, 'base64url'));
  const cookieName = config.edge.cookieName;
  const secure = config.edge.cookieSecure;

  fastify.get(
    '/auth/login',
    storeOrUnavailable(async (request: FastifyRequest<{ Querystring: { rd?: string } }>, reply) => {
      const cfg = await opOrUnavailable(configuration, request, reply);
      if (!cfg) return reply;
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const pending: PendingLogin = { verifier, nonce, rd: safeReturnPath(request.query.rd) };
      await redis.set(stateKey(state), JSON.stringify(pending), 'PX', LOGIN_TTL_MS);
      const url = oidc.buildAuthorizationUrl(cfg, {
        redirect_uri: settings.redirectUri,
        scope: settings.scopes,
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      return reply.header('Cache-Control', 'no-store').redirect(url.href, 302);
    }),
  );

  fastify.get(
    '/auth/callback',
    storeOrUnavailable(async (request: FastifyRequest<{ Querystring: Record<string, string> }>, reply) => {
      const state = request.query['state'];
      if (typeof state !== 'string' || state === '')
        return refuse(reply, 400, 'invalid_request', 'the login has no state; start again at /auth/login');
      // One use: a replayed callback, or one whose login expired, finds nothing.
      const raw = await redis.getdel(stateKey(state));
      if (!raw)
        return refuse(reply, 400, 'invalid_request', 'the login expired or was already used; start again');
      const pending = JSON.parse(raw) as PendingLogin;
      const cfg = await opOrUnavailable(configuration, request, reply);
      if (!cfg) return reply;
      const current = new URL(settings.redirectUri);
      current.search = new URL(request.url, 'http://edge.invalid').search;
      let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
      try {
        tokens = await oidc.authorizationCodeGrant(cfg, current, {
          pkceCodeVerifier: pending.verifier,
          expectedState: state,
          expectedNonce: pending.nonce,
          idTokenExpected: true,
        });
      } catch (err) {
        const reason = (err as { code?: string }).code ?? (err as Error).name;
        if (outOfReach(err)) {
          request.log.warn({ login: { reason } }, 'the OpenID Provider could not be reached');
          return unavailable(reply, 'the OpenID Provider could not be reached; start the login again');
        }
        request.log.warn({ login: { reason } }, 'login refused');
        return refuse(reply, 400, 'access_denied', 'the OpenID Provider did not complete the login');
      }
      const claims = tokens.claims();
      if (!claims || typeof claims.sub !== 'string' || claims.sub === '' || claims.sub.length > 256)
        return refuse(reply, 400, 'access_denied', 'the ID token names no user');
      const sid = claims['sid'];
      // The session store's ids are at most 256 characters: a longer sid could never be logged out.
      if (sid !== undefined && (typeof sid !== 'string' || sid === '' || sid.length > 256))
        return refuse(reply, 400, 'access_denied', 'the ID token carries an unusable sid');
      const rawGroups = claims[settings.groupsClaim];
      const groups = Array.isArray(rawGroups)
        ? [
            ...new Set(
              rawGroups.filter((g): g is string => typeof g === 'string' && g !== '' && g.length <= 256),
            ),
          ].slice(0, 256)
        : [];
      const { sealed, key } = seal(tokens.id_token!);
      const kept: Record<string, unknown> = { _idt: sealed };
      const expiresIn = tokens.expiresIn();
      if (tokens.refresh_token) {
        const held: KeptTokens = { refreshToken: tokens.refresh_token, accessToken: tokens.access_token };
        kept['_tok'] = sealWith(JSON.stringify(held), key);
        if (expiresIn) Object.assign(kept, dueTimes(expiresIn));
      }
      for (const name of ['email', 'preferred_username', 'name'])
        if (typeof claims[name] === 'string' && (claims[name] as string).length <= 512)
          kept[name] = claims[name];
      // Without a refresh token nothing can renew the login: it ends with what the OP granted.
      const notAfter = !tokens.refresh_token && expiresIn ? Date.now() + expiresIn * 1000 : undefined;
      let session: Awaited<ReturnType<SessionStore['createSession']>>;
      try {
        session = await store.createSession({
          userId: claims.sub as string,
          ttlSeconds: config.edge.sessionTtlSeconds,
          ...(notAfter ? { notAfter } : {}),
          ...(typeof sid === 'string' ? { idpSessionId: sid } : {}),
          groups,
          claims: kept,
        });
      } catch (err) {
        if (err instanceof SessionRevokedError) {
          // The user was revoked a moment ago: an event's stamp reaches CLOCK_SKEW_MS past its time,
          // and covers this login, whose tokens may have been issued before the event (invariant 1:
          // refused, not waited out). A login started again once the stamp has passed goes through.
          request.log.warn({ login: { reason: 'revoked' } }, 'login refused');
          return unavailable(
            reply,
            'this user was just signed out everywhere; start the login again shortly',
          );
        }
        // What the OP sent does not fit a session (claims over the store's bound): a refusal, not a 500.
        if (!(err instanceof InvalidArgumentError)) throw err;
        request.log.warn({ login: { reason: 'session_rejected' } }, 'login refused');
        return refuse(reply, 400, 'access_denied', 'the ID token does not fit a session');
      }
      const cookie = setCookieHeader(cookieName, sessionCookieValue(session.sessionId, key), {
        secure,
        maxAgeSeconds: (session.expiresAt - Date.now()) / 1000,
      });
      return reply.header('Set-Cookie', cookie).header('Cache-Control', 'no-store').redirect(pending.rd, 302);
    }),
  );

  const logout = async (request: FastifyRequest, reply: FastifyReply) => {
    const cookie = parseSessionCookie(readCookie(request.headers.cookie, cookieName));
    let idToken: string | undefined;
    if (cookie) {
      const session = await store.getSession(cookie.sessionId).catch(() => null);
      idToken = unseal(session?.claims['_idt'], cookie.key);
      await store.destroySession(cookie.sessionId).catch(() => false);
    }
    void reply
      .header('Set-Cookie', setCookieHeader(cookieName, '', { secure, maxAgeSeconds: 0 }))
      .header('Cache-Control', 'no-store');
    const cfg = await configuration().catch(() => undefined);
    if (cfg?.serverMetadata().end_session_endpoint) {
      const url = oidc.buildEndSessionUrl(cfg, {
        ...(idToken ? { id_token_hint: idToken } : { client_id: settings.clientId }),
        ...(settings.postLogoutRedirectUri
          ? { post_logout_redirect_uri: settings.postLogoutRedirectUri }
          : {}),
      });
      return reply.redirect(url.href, 302);
    }
    return reply.redirect(settings.postLogoutRedirectUri ?? '/', 302);
  };
  fastify.get('/auth/logout', logout);
  fastify.post('/auth/logout', logout);

  return {
    check: async (sessionId, session, key) => {
      const held = unsealTokens(session.claims['_tok'], key);
      if (!held || !key) return {};
      const due = Number(session.claims['_due'] ?? Infinity);
      if (Date.now() < due) return { accessToken: held.accessToken };
      const lease = store.keys.refreshLock(session.handle);
      if ((await redis.set(lease, '1', 'PX', REFRESH_LEASE_MS, 'NX')) !== 'OK')
        return { accessToken: held.accessToken };
      try {
        // Another process may have refreshed since this one read the session.
        const current = await store.getSession(sessionId);
        if (!current) return 'ended';
        if (Number(current.claims['_due'] ?? Infinity) !== due)
          return { accessToken: unsealTokens(current.claims['_tok'], key)?.accessToken ?? held.accessToken };
        let tokens: Awaited<ReturnType<typeof oidc.refreshTokenGrant>>;
        try {
          tokens = await oidc.refreshTokenGrant(await configuration(), held.refreshToken);
        } catch (err) {
          if ((err as { error?: string }).error === 'invalid_grant') {
            await store.destroySession(sessionId);
            return 'ended';
          }
          // The OP is down or slow: the session stands, the next request tries again.
          fastify.log.warn({ refresh: { reason: (err as Error).name } }, 'token refresh failed');
          return { accessToken: held.accessToken };
        }
        const renewed: KeptTokens = {
          refreshToken: tokens.refresh_token ?? held.refreshToken,
          accessToken: tokens.access_token,
        };
        const claims: Record<string, unknown> = {
          ...current.claims,
          _tok: sealWith(JSON.stringify(renewed), key),
        };
        if (tokens.id_token) claims['_idt'] = sealWith(tokens.id_token, key);
        const expiresIn = tokens.expiresIn();
        if (expiresIn) Object.assign(claims, dueTimes(expiresIn));
        else delete claims['_due'];
        if (!(await store.setSessionClaims(sessionId, claims))) return 'ended';
        return { accessToken: renewed.accessToken };
      } finally {
        await redis.del(lease).catch(() => 0);
      }
    },
  };
}

/** When a token living `expiresIn` seconds from now is due for renewal: at three quarters of its life, at most a minute early. */
function dueTimes(expiresIn: number): { _due: number } {
  const life = expiresIn * 1000;
  return { _due: Date.now() + life - Math.min(60_000, life / 4) };
}

function unsealTokens(sealed: unknown, key: string | undefined): KeptTokens | undefined {
  const text = unseal(sealed, key);
  if (!text) return undefined;
  try {
    return JSON.parse(text) as KeptTokens;
  } catch {
    return undefined;
  }
}

/** A login refused: its status, OAuth error code and description, never cached. */
function refuse(reply: FastifyReply, status: number, error: string, description: string) {
  return reply
    .status(status)
    .header('Cache-Control', 'no-store')
    .send({ error, error_description: description });
}

/** A login that may succeed later (the OP or Redis out of reach): 503 with the service's Retry-After. */
function unavailable(reply: FastifyReply, description: string) {
  void reply.header('Retry-After', String(RETRY_AFTER_SECONDS));
  return refuse(reply, 503, 'temporarily_unavailable', description);
}

/**
 * The handler, answering 503 with Retry-After when the session Redis is out of reach (as forward auth
 * does): these are plain Fastify routes, which no Nest exception filter covers.
 */
function storeOrUnavailable<R extends FastifyRequest>(
  handler: (request: R, reply: FastifyReply) => Promise<unknown>,
): (request: R, reply: FastifyReply) => Promise<unknown> {
  return async (request, reply) => {
    try {
      return await handler(request, reply);
    } catch (err) {
      if (!isRedisUnavailable(err)) throw err;
      request.log.warn({ login: { reason: 'redis_unavailable' } }, 'the login could not reach Redis');
      return unavailable(reply, 'sessions cannot be stored now; retry later');
    }
  };
}

/**
 * Whether openid-client's error is fetch failing to reach the OP (refused, reset, timed out, aborted)
 * rather than the OP answering: the login may succeed when started again, so it is a 503.
 */
function outOfReach(err: unknown): boolean {
  // By name, not instanceof: fetch's errors may come from another realm (a VM context, a test runner).
  let e = err as { name?: unknown; message?: unknown; code?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.code === 'OAUTH_TIMEOUT' || e.code === 'OAUTH_ABORT') return true;
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return true;
    if (e.name === 'TypeError' && e.message === 'fetch failed') return true;
  }
  return false;
}

/** The OP's configuration, or a 503 already sent when discovery failed (retried at the next login). */
async function opOrUnavailable(
  configuration: () => Promise<oidc.Configuration>,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<oidc.Configuration | undefined> {
  try {
    return await configuration();
  } catch (err) {
    request.log.warn({ login: { reason: (err as Error).name } }, 'the OpenID Provider could not be reached');
    await unavailable(reply, 'the OpenID Provider could not be reached');
    return undefined;
  }
}
