import express, { type Request, type Response } from 'express';
import session from 'express-session';
import type { Redis } from 'ioredis';
import * as oidc from 'openid-client';
import { SessionRevokedError, SessionStore } from '#session-store';
import { ExpressSessionStore } from '#session-store/express';

/** A login under way: what `/login` keeps in the session for its `/callback` (one use). */
interface PendingLogin {
  /** PKCE code verifier (its S256 challenge went to the OP). */
  verifier: string;
  nonce: string;
  /** Where to send the browser after login: a path on this site. */
  rd: string;
  /** When this login was started (ms): it is forgotten after LOGIN_TTL_MS. */
  startedAt: number;
}

declare module 'express-session' {
  interface SessionData {
    /**
     * The PingOne user id (the ID token's `sub`): the session store indexes the session under it
     * (`userField`), and the revocation service revokes by it.
     */
    userId?: string;
    name?: string;
    email?: string;
    preferredUsername?: string;
    /**
     * The IdP session the login was born of (the ID token's `sid`): the session store indexes the
     * session under it too (`idpSessionField`), so a back-channel logout of that IdP session ends this
     * session and leaves the user's others.
     */
    idpSessionId?: string;
    /**
     * The ID token, kept only for RP-initiated logout's `id_token_hint` (when the OP has an
     * end_session_endpoint). A credential: it lives in the session's record in Redis, never in a key.
     */
    idToken?: string;
    /** Logins under way, by their `state` (a few at most: one per tab that started a login). */
    pendingLogins?: Record<string, PendingLogin>;
  }
}

export interface ExampleOidcOptions {
  /**
   * The OpenID Provider's issuer: PingOne's `https://auth.pingone.com/<environment id>/as`, or
   * PingFederate's base URL. https, or http on loopback only (localhost, 127.0.0.1, [::1]).
   */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** This app's `/callback`, as registered at the OP (e.g. `http://localhost:3002/callback`). */
  redirectUri: string;
  /** Where the OP sends the browser after logout, as registered at the OP. */
  postLogoutRedirectUri?: string;
  /** Default `openid profile email`. */
  scopes?: string;
}

export interface ExampleAppOptions {
  /** The session Redis: the one the revocation service's worker writes not-before stamps to. */
  redis: Redis;
  /** The session store's key prefix: the service's SESSION_PREFIX. */
  prefix: string;
  /** The session store's tag secret: the service's SESSION_TAG_SECRET. */
  tagSecret: string;
  /** Signs the session cookie. */
  cookieSecret: string;
  /** The OpenID Provider users sign in at (PingOne, PingFederate). */
  oidc: ExampleOidcOptions;
}

/** How long a login may take at the OP before its state is forgotten. */
const LOGIN_TTL_MS = 10 * 60_000;
/** Logins one session may have under way at once (tabs); the oldest is dropped beyond it. */
const MAX_PENDING_LOGINS = 3;
const COOKIE_NAME = 'example.sid';
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const page = (body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>express-session example</title></head><body>${body}</body></html>`;

/** True when the client asked for HTML (a browser form) rather than JSON (curl, tests). */
const wantsHtml = (req: Request) => req.accepts(['json', 'html']) === 'html';

/** Wraps a callback-style session method (save, regenerate, destroy) in a promise. */
const call = (fn: (cb: (err?: unknown) => void) => void) =>
  new Promise<void>((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));

/** Backslashes (which browsers read as slashes) and control characters (header splitting). */
// eslint-disable-next-line no-control-regex
const UNSAFE_IN_PATH = /[\\\x00-\x1f\x7f]/;

/**
 * Where to send the browser after login: only ever a path on this site. Absolute URLs, `//host`,
 * backslashes, control characters and their percent-encoded forms all give `/`.
 */
export function safeReturnPath(rd: unknown): string {
  if (typeof rd !== 'string' || rd.length === 0 || rd.length > 2048) return '/';
  let decoded: string;
  try {
    decoded = decodeURIComponent(rd);
  } catch {
    return '/';
  }
  for (const candidate of [rd, decoded])
    if (!candidate.startsWith('/') || candidate.startsWith('//') || UNSAFE_IN_PATH.test(candidate))
      return '/';
  const base = 'http://example-app.invalid';
  const url = new URL(rd, base);
  const path = `${url.pathname}${url.search}${url.hash}`;
  // The URL parser resolves dot segments (`/.//host`, `/a/..//host`, `/%2e//host`): the result is
  // checked again, as a browser would read it in a Location header.
  return url.origin === base && !path.startsWith('//') && !path.startsWith('/\\') ? path : '/';
}

/** Checks the OIDC options up front, so a bad issuer fails at start rather than at the first login. */
function checkOidcOptions(options: ExampleOidcOptions): { issuer: URL; insecure: boolean } {
  for (const name of ['issuer', 'clientId', 'clientSecret', 'redirectUri'] as const)
    if (typeof options[name] !== 'string' || options[name] === '')
      throw new Error(`oidc.${name} is required`);
  let issuer: URL;
  try {
    issuer = new URL(options.issuer);
  } catch {
    throw new Error(`oidc.issuer is not a URL: ${options.issuer}`);
  }
  const insecure = issuer.protocol === 'http:';
  if (issuer.protocol !== 'https:' && !insecure) throw new Error('oidc.issuer must be an https URL');
  if (insecure && !LOOPBACK.has(issuer.hostname))
    throw new Error('oidc.issuer must be https (http is allowed on localhost, 127.0.0.1 and [::1] only)');
  for (const name of ['redirectUri', 'postLogoutRedirectUri'] as const) {
    const value = options[name];
    if (value === undefined) continue;
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new Error(`oidc.${name} is not a URL: ${value}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new Error(`oidc.${name} must be an http(s) URL`);
  }
  return { issuer, insecure };
}

/** A claim of the ID token when it is a short string, else undefined. */
const stringClaim = (claims: Record<string, unknown>, name: string) => {
  const value = claims[name];
  return typeof value === 'string' && value !== '' && value.length <= 512 ? value : undefined;
};

/**
 * An express app that signs users in with OpenID Connect (openid-client: authorization code with
 * PKCE) and whose express-session sessions live in Redis through `ExpressSessionStore`, so the
 * revocation service logs its users out the moment PingOne says so.
 *
 * The OP is discovered at the first request that needs it (and again after a failure), so the app
 * starts while the OP is unreachable; those requests get 503 until it answers.
 */
export function createApp({
  redis,
  prefix,
  tagSecret,
  cookieSecret,
  oidc: op,
}: ExampleAppOptions): express.Express {
  const { issuer, insecure } = checkOidcOptions(op);
  const scopes = op.scopes ?? 'openid profile email';
  const store = new SessionStore({ redis, prefix, tagSecret });

  let discovered: Promise<oidc.Configuration> | undefined;
  const configuration = (): Promise<oidc.Configuration> => {
    discovered ??= oidc
      .discovery(
        issuer,
        op.clientId,
        undefined,
        oidc.ClientSecretBasic(op.clientSecret),
        insecure ? { execute: [oidc.allowInsecureRequests] } : undefined,
      )
      .catch((err: unknown) => {
        discovered = undefined;
        throw err;
      });
    return discovered;
  };
  /** The OP's configuration, or undefined with a 503 sent when it cannot be reached. */
  const opOr503 = async (req: Request, res: Response): Promise<oidc.Configuration | undefined> => {
    try {
      return await configuration();
    } catch (err) {
      console.warn(`the OpenID Provider could not be reached: ${(err as Error).name}`);
      res.setHeader('Retry-After', '5');
      refuse(req, res, 503, 'temporarily_unavailable', 'the OpenID Provider could not be reached');
      return undefined;
    }
  };
  const refuse = (req: Request, res: Response, status: number, error: string, description: string) => {
    res.status(status).setHeader('Cache-Control', 'no-store');
    if (wantsHtml(req))
      res
        .type('html')
        .send(
          page(`<p>${escapeHtml(description)}.</p><p><a href="/login">Log in</a> · <a href="/">Home</a></p>`),
        );
    else res.json({ error, error_description: description });
  };

  const app = express();
  app.disable('x-powered-by');
  app.use(
    session({
      store: new ExpressSessionStore({ store, userField: 'userId', idpSessionField: 'idpSessionId' }),
      secret: cookieSecret,
      resave: false,
      saveUninitialized: false,
      name: COOKIE_NAME,
      // In production, behind HTTPS, add `secure: true`. `lax` (not `strict`): the OP's redirect back
      // to /callback is a cross-site top-level navigation, which must carry the cookie.
      cookie: { httpOnly: true, sameSite: 'lax', maxAge: 8 * 3600 * 1000 },
    }),
  );

  app.get('/', (req, res) => {
    const { userId, name, email, preferredUsername } = req.session;
    const who = name ?? preferredUsername ?? email ?? userId ?? '';
    res
      .type('html')
      .send(
        page(
          userId
            ? `<p>Logged in as <strong>${escapeHtml(who)}</strong>` +
                (email ? ` &lt;${escapeHtml(email)}&gt;` : '') +
                ` (PingOne user ${escapeHtml(userId)}).</p>` +
                `<p><a href="/protected">Protected page</a></p>` +
                `<form method="post" action="/logout"><button type="submit">Log out</button></form>`
            : `<p>Not logged in.</p><p><a href="/login">Log in</a></p>`,
        ),
      );
  });

  app.get('/login', async (req: Request, res: Response) => {
    const cfg = await opOr503(req, res);
    if (!cfg) return;
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const now = Date.now();
    // Kept server side (the session's record in Redis; the cookie only names it), for one use.
    const pending = Object.entries(req.session.pendingLogins ?? {})
      .filter(([, p]) => now - p.startedAt < LOGIN_TTL_MS)
      .slice(-(MAX_PENDING_LOGINS - 1));
    req.session.pendingLogins = Object.fromEntries([
      ...pending,
      [state, { verifier, nonce, rd: safeReturnPath(req.query['rd']), startedAt: now }],
    ]);
    await call((cb) => req.session.save(cb));
    const url = oidc.buildAuthorizationUrl(cfg, {
      redirect_uri: op.redirectUri,
      scope: scopes,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    res.setHeader('Cache-Control', 'no-store');
    res.redirect(302, url.href);
  });

  app.get('/callback', async (req: Request, res: Response) => {
    const state = req.query['state'];
    if (typeof state !== 'string' || state === '') {
      refuse(req, res, 400, 'invalid_request', 'the login has no state: start again at /login');
      return;
    }
    const logins = req.session.pendingLogins ?? {};
    const pending = Object.hasOwn(logins, state) ? logins[state] : undefined;
    if (!pending || Date.now() - pending.startedAt >= LOGIN_TTL_MS) {
      // Replayed, expired, or started in another browser (login CSRF): nothing is created or changed.
      refuse(req, res, 400, 'invalid_request', 'the login expired or was already used: start again');
      return;
    }
    // One use: the state is gone from the session before the code is redeemed.
    delete logins[state];
    await call((cb) => req.session.save(cb));
    const cfg = await opOr503(req, res);
    if (!cfg) return;
    // The URL the OP sent the browser to, from configuration rather than the request's Host header.
    const current = new URL(op.redirectUri);
    current.search = new URL(req.originalUrl, 'http://example-app.invalid').search;
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(cfg, current, {
        pkceCodeVerifier: pending.verifier,
        expectedState: state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      // Never log the error's response: it may carry tokens. Its code or name says enough.
      const { error, code } = err as { error?: string; code?: string };
      console.warn(`login refused: ${error ?? code ?? (err as Error).name}`);
      refuse(req, res, 401, 'access_denied', 'the OpenID Provider did not complete the login');
      return;
    }
    const claims = tokens.claims() as Record<string, unknown> | undefined;
    const sub = claims?.['sub'];
    if (!claims || typeof sub !== 'string' || sub === '' || sub.length > 256) {
      refuse(req, res, 401, 'access_denied', 'the ID token names no user');
      return;
    }
    // A new session id at login (no session fixation): the old record, pending logins and all, is
    // destroyed. The store issues the new one now, after any revocation already in force for the user.
    await call((cb) => req.session.regenerate(cb));
    req.session.userId = sub;
    const name = stringClaim(claims, 'name');
    const email = stringClaim(claims, 'email');
    const preferredUsername = stringClaim(claims, 'preferred_username');
    if (name) req.session.name = name;
    if (email) req.session.email = email;
    if (preferredUsername) req.session.preferredUsername = preferredUsername;
    // The IdP session (`sid`), when the OP names one: a back-channel logout of it ends this session.
    const sid = stringClaim(claims, 'sid');
    if (sid) req.session.idpSessionId = sid;
    if (tokens.id_token && cfg.serverMetadata().end_session_endpoint) req.session.idToken = tokens.id_token;
    try {
      await call((cb) => req.session.save(cb));
    } catch (err) {
      if (!(err instanceof SessionRevokedError)) throw err;
      // A revocation of this user a moment ago covers the login (its tokens may predate it): refused,
      // and this browser left without a session. Logging in again once it has passed works.
      await call((cb) => req.session.regenerate(cb));
      res.setHeader('Retry-After', '5');
      refuse(
        req,
        res,
        503,
        'temporarily_unavailable',
        'you were just signed out everywhere: log in again in a few seconds',
      );
      return;
    }
    res.setHeader('Cache-Control', 'no-store');
    res.redirect(302, pending.rd);
  });

  app.get('/protected', (req, res) => {
    const { userId, name, email, preferredUsername } = req.session;
    if (!userId) {
      // No session, logged out, expired, or revoked: the store returns nothing for all of them.
      res.status(401).json({ error: 'not logged in (no session, logged out, or revoked): log in again' });
      return;
    }
    res.json({
      message: `hello ${name ?? preferredUsername ?? userId}`,
      user: { userId, name, email, preferredUsername },
    });
  });

  app.post('/logout', async (req: Request, res: Response) => {
    const { idToken } = req.session;
    await call((cb) => req.session.destroy(cb));
    res.clearCookie(COOKIE_NAME);
    res.setHeader('Cache-Control', 'no-store');
    // RP-initiated logout: end the user's session at the OP too, when it offers that.
    const cfg = await configuration().catch(() => undefined);
    let endSessionUrl: string | undefined;
    if (cfg?.serverMetadata().end_session_endpoint) {
      endSessionUrl = oidc.buildEndSessionUrl(cfg, {
        ...(idToken ? { id_token_hint: idToken } : { client_id: op.clientId }),
        ...(op.postLogoutRedirectUri ? { post_logout_redirect_uri: op.postLogoutRedirectUri } : {}),
      }).href;
    }
    if (wantsHtml(req)) res.redirect(303, endSessionUrl ?? '/');
    else res.json({ loggedOut: true, ...(endSessionUrl ? { endSessionUrl } : {}) });
  });

  return app;
}
