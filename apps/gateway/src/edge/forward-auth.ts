import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig } from '#config';
import { isRedisUnavailable } from '#redis';
import { InvalidArgumentError, type SessionStore } from '#session-store';
import { type TokenVerifier, TokenVerifierUnavailableError } from '#token-verifier';
import { RETRY_AFTER_SECONDS } from '../http/redis-unavailable.js';
import type { EdgeRefresher } from './oidc-login.js';
import { parseSessionCookie, safeReturnPath } from './session-cookie.js';

export const FORWARD_AUTH_PATH = '/auth/verify';

/** What the proxy passes upstream: oauth2-proxy's header names, which NGINX, Traefik and Envoy users know. */
interface Identity {
  user: string;
  email?: unknown;
  preferredUsername?: unknown;
  groups: readonly string[];
  accessToken?: string;
}

/**
 * Forward auth for reverse proxies (NGINX `auth_request`, Traefik `forwardAuth`, Envoy `ext_authz`):
 * any method, no body. A live session (the `EDGE_COOKIE_NAME` cookie, read with the session store: one
 * round trip) or an active access token (`Authorization: Bearer`, through the token verifier) gets 200
 * with the identity in `X-Auth-Request-*` headers; anything else 401, so the proxy refuses the request
 * (or sends a browser to log in). Redis out of reach is 503, never 200. A plain Fastify route: it
 * answers every request a proxied application receives.
 */
export function serveForwardAuth(
  fastify: FastifyInstance,
  config: AppConfig,
  store: SessionStore,
  verifier: TokenVerifier | undefined,
  refresher?: EdgeRefresher,
): void {
  const cookieName = config.edge.cookieName;
  const pass = config.edge.passAccessToken;
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    void reply.header('Cache-Control', 'no-store');
    try {
      const identity =
        (await fromSession(
          store,
          parseSessionCookie(readCookie(request.headers.cookie, cookieName)),
          refresher,
          pass,
        )) ?? (await fromBearer(verifier, request.headers.authorization, pass));
      if (!identity) return refuse(request, reply, Boolean(config.edge.oidc));
      setIdentity(reply, identity);
      return reply.status(200).send();
    } catch (err) {
      if (!(err instanceof TokenVerifierUnavailableError) && !isRedisUnavailable(err)) throw err;
      request.log.warn({ forwardAuth: { reason: 'unavailable' } }, 'forward auth answered 503');
      return reply
        .status(503)
        .header('Retry-After', String(RETRY_AFTER_SECONDS))
        .send({ statusCode: 503, error: 'Service Unavailable' });
    }
  };
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
  fastify.route({ method: [...methods], url: FORWARD_AUTH_PATH, handler });
  // Envoy's ext_authz appends the original path to its path_prefix: /auth/verify/<original path>.
  fastify.route({ method: [...methods], url: `${FORWARD_AUTH_PATH}/*`, handler });
}

/**
 * 401, or with `?redirect=true` (Traefik, Envoy: they hand a non-2xx answer to the client as it is)
 * and a browser's request, a 302 to the login with the original path as `rd`: X-Forwarded-Uri
 * (Traefik), X-Original-URI (NGINX), or what Envoy appended to the verify path.
 */
function refuse(request: FastifyRequest, reply: FastifyReply, canLogIn: boolean) {
  const query = request.query as Record<string, unknown> | undefined;
  const path = request.url.split('?')[0]!;
  // Envoy cannot add a query to its path prefix: a path after /auth/verify asks for the redirect too.
  const asked = query?.['redirect'] === 'true' || path.length > FORWARD_AUTH_PATH.length;
  const wantsRedirect = asked && /\btext\/html\b/.test(String(request.headers.accept ?? ''));
  if (!canLogIn || !wantsRedirect) return reply.status(401).send({ statusCode: 401, error: 'Unauthorized' });
  const forwarded = request.headers['x-forwarded-uri'] ?? request.headers['x-original-uri'];
  const original =
    typeof forwarded === 'string'
      ? forwarded
      : path.length > FORWARD_AUTH_PATH.length
        ? path.slice(FORWARD_AUTH_PATH.length)
        : '/';
  return reply.redirect(`/auth/login?rd=${encodeURIComponent(safeReturnPath(original))}`, 302);
}

async function fromSession(
  store: SessionStore,
  cookie: { sessionId: string; key?: string } | undefined,
  refresher: EdgeRefresher | undefined,
  passAccessToken: boolean,
): Promise<Identity | null> {
  if (cookie === undefined) return null;
  try {
    const session = await store.getSession(cookie.sessionId);
    if (!session) return null;
    // A session the edge login made keeps its tokens: renewed here when due, ended if the OP says so.
    const tokens = refresher ? await refresher.check(cookie.sessionId, session, cookie.key) : {};
    if (tokens === 'ended') return null;
    return {
      user: session.userId,
      email: session.claims['email'],
      preferredUsername: session.claims['preferred_username'],
      groups: session.groups,
      ...(passAccessToken && tokens.accessToken ? { accessToken: tokens.accessToken } : {}),
    };
  } catch (err) {
    // A cookie that is not a session id of ours (forged, tampered, another app's) is no session.
    if (err instanceof InvalidArgumentError) return null;
    throw err;
  }
}

async function fromBearer(
  verifier: TokenVerifier | undefined,
  authorization: string | undefined,
  passAccessToken: boolean,
): Promise<Identity | null> {
  const m = verifier && authorization ? /^Bearer ([\x21-\x7e]+)$/i.exec(authorization) : null;
  if (!m) return null;
  const result = await verifier!.verify(m[1]);
  if (!result.active) return null;
  return {
    user: result.userId,
    email: result.claims.email,
    preferredUsername: result.claims.preferred_username,
    groups: result.claims.groups ?? [],
    ...(passAccessToken ? { accessToken: m[1] } : {}),
  };
}

/** Header values carry only visible ASCII and spaces: anything else is percent-encoded, never a CR or LF. */
const headerValue = (value: string): string => value.replace(/[^\x20-\x7e]/g, (c) => encodeURIComponent(c));

function setIdentity(reply: FastifyReply, identity: Identity): void {
  void reply.header('X-Auth-Request-User', headerValue(identity.user));
  if (typeof identity.email === 'string')
    void reply.header('X-Auth-Request-Email', headerValue(identity.email));
  if (typeof identity.preferredUsername === 'string')
    void reply.header('X-Auth-Request-Preferred-Username', headerValue(identity.preferredUsername));
  if (identity.groups.length)
    void reply.header(
      'X-Auth-Request-Groups',
      headerValue(identity.groups.map((g) => g.replace(/,/g, '%2C')).join(',')),
    );
  if (identity.accessToken) void reply.header('X-Auth-Request-Access-Token', identity.accessToken);
}

/** The value of one cookie of a `Cookie` header, or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim();
    return value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  }
  return undefined;
}
