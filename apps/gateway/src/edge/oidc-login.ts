import { hash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as oidc from 'openid-client';
import type { AppConfig } from '#config';
import type { RedisClient } from '#redis';
import { type SessionStore } from '#session-store';
import { readCookie } from './forward-auth.js';
import {
  parseSessionCookie,
  safeReturnPath,
  seal,
  sessionCookieValue,
  setCookieHeader,
  unseal,
} from './session-cookie.js';

/** How long a login may take at the OP before its state is forgotten (one use either way). */
const LOGIN_TTL_MS = 10 * 60_000;

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
): void {
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
  const refuse = (reply: FastifyReply, status: number, error: string, description: string) =>
    reply.status(status).header('Cache-Control', 'no-store').send({ error, error_description: description });

  fastify.get('/auth/login', async (request: FastifyRequest<{ Querystring: { rd?: string } }>, reply) => {
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
  });

  fastify.get(
    '/auth/callback',
    async (request: FastifyRequest<{ Querystring: Record<string, string> }>, reply) => {
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
        request.log.warn(
          { login: { reason: (err as { code?: string }).code ?? (err as Error).name } },
          'login refused',
        );
        return refuse(reply, 400, 'access_denied', 'the OpenID Provider did not complete the login');
      }
      const claims = tokens.claims();
      if (!claims || typeof claims.sub !== 'string' || claims.sub === '' || claims.sub.length > 256)
        return refuse(reply, 400, 'access_denied', 'the ID token names no user');
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
      for (const name of ['email', 'preferred_username', 'name'])
        if (typeof claims[name] === 'string' && (claims[name] as string).length <= 512)
          kept[name] = claims[name];
      const expiresIn = tokens.expiresIn();
      // Without a refresh token nothing can renew the login: it ends with what the OP granted.
      const notAfter = !tokens.refresh_token && expiresIn ? Date.now() + expiresIn * 1000 : undefined;
      const session = await store.createSession({
        userId: claims.sub,
        ttlSeconds: config.edge.sessionTtlSeconds,
        ...(notAfter ? { notAfter } : {}),
        ...(typeof claims['sid'] === 'string' && claims['sid'] ? { idpSessionId: claims['sid'] } : {}),
        groups,
        claims: kept,
      });
      const cookie = setCookieHeader(cookieName, sessionCookieValue(session.sessionId, key), {
        secure,
        maxAgeSeconds: (session.expiresAt - Date.now()) / 1000,
      });
      return reply.header('Set-Cookie', cookie).header('Cache-Control', 'no-store').redirect(pending.rd, 302);
    },
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
    await reply.status(503).header('Retry-After', '5').header('Cache-Control', 'no-store').send({
      error: 'temporarily_unavailable',
      error_description: 'the OpenID Provider could not be reached',
    });
    return undefined;
  }
}
