import express, { type Request, type Response } from 'express';
import session from 'express-session';
import type { Redis } from 'ioredis';
import { SessionStore } from '#session-store';
import { ExpressSessionStore } from '#session-store/express';

declare module 'express-session' {
  interface SessionData {
    /** The PingOne user id: the session store indexes the session under it (`userField`). */
    userId?: string;
    username?: string;
  }
}

/**
 * A toy user directory standing in for a real login (OIDC with PingOne): usernames to PingOne-style
 * user ids, the `sub` a PingOne ID token would carry and the id PingOne events name.
 */
export const USERS: Readonly<Record<string, string>> = {
  alice: '0b7e4d2a-9f31-4c8e-b5a6-1e2d3c4b5a69',
  bob: '5d9a1c3e-2b4f-4a6d-8e0c-7f1a2b3c4d5e',
  carol: '9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4',
};

export interface ExampleAppOptions {
  /** The session Redis: the one the revocation service's worker writes not-before stamps to. */
  redis: Redis;
  /** The session store's key prefix: the service's SESSION_PREFIX. */
  prefix: string;
  /** The session store's tag secret: the service's SESSION_TAG_SECRET. */
  tagSecret: string;
  /** Signs the session cookie. */
  cookieSecret: string;
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const page = (body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>express-session example</title></head><body>${body}</body></html>`;

/** True when the client asked for HTML (a browser form) rather than JSON (curl, tests). */
const wantsHtml = (req: Request) => req.accepts(['json', 'html']) === 'html';

/** Wraps a callback-style session method (save, regenerate, destroy) in a promise. */
const call = (fn: (cb: (err?: unknown) => void) => void) =>
  new Promise<void>((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));

/**
 * An express app whose express-session sessions live in Redis through `ExpressSessionStore`, so the
 * revocation service logs its users out the moment PingOne says so.
 */
export function createApp({ redis, prefix, tagSecret, cookieSecret }: ExampleAppOptions): express.Express {
  const store = new SessionStore({ redis, prefix, tagSecret });
  const app = express();
  app.disable('x-powered-by');
  app.use(express.urlencoded({ extended: false }));
  app.use(express.json());
  app.use(
    session({
      store: new ExpressSessionStore({ store, userField: 'userId' }),
      secret: cookieSecret,
      resave: false,
      saveUninitialized: false,
      name: 'example.sid',
      // In production, behind HTTPS, add `secure: true`.
      cookie: { httpOnly: true, sameSite: 'lax', maxAge: 8 * 3600 * 1000 },
    }),
  );

  app.get('/', (req, res) => {
    const { userId, username } = req.session;
    res
      .type('html')
      .send(
        page(
          userId && username
            ? `<p>Logged in as <strong>${escapeHtml(username)}</strong> (PingOne user ${escapeHtml(userId)}).</p>` +
                `<p><a href="/protected">Protected page</a></p>` +
                `<form method="post" action="/logout"><button type="submit">Log out</button></form>`
            : `<p>Not logged in.</p>` +
                `<form method="post" action="/login">` +
                `<label>Username <input name="username" autocomplete="username"></label> ` +
                `<button type="submit">Log in</button></form>` +
                `<p>Users: ${Object.keys(USERS).join(', ')} (no password: this is a toy directory).</p>`,
        ),
      );
  });

  app.post('/login', async (req: Request, res: Response) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const username = typeof body['username'] === 'string' ? body['username'].trim().toLowerCase() : '';
    const userId = Object.hasOwn(USERS, username) ? USERS[username] : undefined;
    if (!userId) {
      res.status(401);
      if (wantsHtml(req)) res.type('html').send(page('<p>Unknown user.</p><p><a href="/">Back</a></p>'));
      else res.json({ error: 'unknown user' });
      return;
    }
    // A new session id at login (no session fixation); the store issues it now, after any
    // revocation already in force for this user.
    await call((cb) => req.session.regenerate(cb));
    req.session.userId = userId;
    req.session.username = username;
    await call((cb) => req.session.save(cb));
    if (wantsHtml(req)) res.redirect(303, '/');
    else res.json({ username, userId });
  });

  app.get('/protected', (req, res) => {
    const { userId, username } = req.session;
    if (!userId) {
      // No session, logged out, expired, or revoked: the store returns nothing for all of them.
      res.status(401).json({ error: 'not logged in (no session, logged out, or revoked): log in again' });
      return;
    }
    res.json({ message: `hello ${username}`, user: { username, userId } });
  });

  app.post('/logout', async (req: Request, res: Response) => {
    await call((cb) => req.session.destroy(cb));
    res.clearCookie('example.sid');
    if (wantsHtml(req)) res.redirect(303, '/');
    else res.json({ loggedOut: true });
  });

  return app;
}
