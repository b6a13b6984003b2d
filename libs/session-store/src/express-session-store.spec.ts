import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import express from 'express';
import session from 'express-session';
import type { SessionData } from 'express-session';
import { Redis, type Cluster } from 'ioredis';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import {
  freePorts,
  startCluster,
  startRedisServer,
  testRedis,
  uniquePrefix,
  waitForRedisPast,
  type TestCluster,
} from '../../../test/support/redis.js';
import { SessionRevokedError } from './errors.js';
import { ExpressSessionStore, type ExpressSessionStoreOptions } from './express-session-store.js';
import { secretHash } from './keys.js';
import { scanKeys } from './scan.js';
import { SessionStore } from './session-store.js';

const TAG_SECRET = 'express-tag-secret-0123456789';
const COOKIE_SECRET = 'express-cookie-secret';

type Agent = ReturnType<typeof request.agent>;
type Fields = Record<string, unknown>;

/** Where a test app keeps its user in the session; it must match the store's `userField`. */
interface UserSlot {
  put(s: Fields, userId: string): void;
  take(s: Fields): unknown;
}
const plainSlot: UserSlot = {
  put: (s, id) => void (s['userId'] = id),
  take: (s) => s['userId'],
};

/** A request held open between reading its session and answering, to race it against a revocation. */
interface Gate {
  entered: Promise<void>;
  release(): void;
}
function gate(): Gate & { enter(): Promise<void> } {
  let entered!: () => void;
  let release!: () => void;
  const enteredP = new Promise<void>((r) => (entered = r));
  const released = new Promise<void>((r) => (release = r));
  return {
    entered: enteredP,
    release,
    enter: () => {
      entered();
      return released;
    },
  };
}

function makeApp(
  store: ExpressSessionStore,
  options: {
    slot?: UserSlot;
    maxAge?: number;
    gates?: ReturnType<typeof gate>[];
    /** Where errors handed to `next` go (express-session's automatic save reports after answering). */
    errors?: unknown[];
  } = {},
) {
  const slot = options.slot ?? plainSlot;
  const app = express();
  // No keep-alive: supertest's per-request servers then close at once, leaving nothing open.
  app.use((_req, res, next) => {
    res.set('Connection', 'close');
    next();
  });
  app.use(express.json());
  app.use(
    session({
      store,
      secret: COOKIE_SECRET,
      resave: false,
      saveUninitialized: false,
      cookie: options.maxAge ? { maxAge: options.maxAge } : {},
    }),
  );
  app.post('/login', (req, res) => {
    const body = req.body as { userId?: string; idp?: string } | undefined;
    const userId = body?.userId ?? req.query['userId'];
    if (typeof userId !== 'string' || !userId) return void res.status(400).end();
    slot.put(req.session as unknown as Fields, userId);
    // The IdP session the login came from (an ID token's `sid`), where the store looks by default.
    if (body?.idp) (req.session as unknown as Fields)['idpSessionId'] = body.idp;
    res.status(204).end();
  });
  // As passport does: the login is saved before the answer, and a refusal answered.
  app.post('/login-and-save', (req, res) => {
    slot.put(req.session as unknown as Fields, (req.body as { userId: string }).userId);
    req.session.save((err?: { code?: string }) =>
      err ? void res.status(503).json({ error: err.code }) : void res.status(204).end(),
    );
  });
  app.get('/me', (req, res) => {
    const userId = slot.take(req.session as unknown as Fields);
    if (userId === undefined || userId === null) return void res.status(401).end();
    res.json({ userId });
  });
  app.post('/cart', (req, res) => {
    (req.session as unknown as Fields)['cart'] = ['apple'];
    res.status(204).end();
  });
  app.post('/forget', (req, res) => {
    delete (req.session as unknown as Fields)['userId'];
    res.status(204).end();
  });
  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.status(204).end()));
  });
  // Reads the session, waits for the test, then answers: `?write=1` modifies the session (a save),
  // otherwise express-session only touches it.
  app.get('/slow', async (req, res) => {
    const g = options.gates?.shift();
    if (g) await g.enter();
    if (req.query['write']) (req.session as unknown as Fields)['hits'] = 1;
    res.json({ userId: slot.take(req.session as unknown as Fields) ?? null });
  });
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    options.errors?.push(err);
    if (!res.headersSent) res.status(500).end();
  });
  return app;
}

/** express-session's own id: the `connect.sid` cookie value between `s:` and the signature. */
function sidOf(res: request.Response): string {
  const cookies = ([] as string[]).concat(res.get('Set-Cookie') ?? []);
  const cookie = cookies.find((c) => c.startsWith('connect.sid='));
  if (!cookie) throw new Error('no session cookie was set');
  const value = decodeURIComponent(cookie.slice('connect.sid='.length).split(';')[0]!);
  expect(value.startsWith('s:')).toBe(true);
  return value.slice(2, value.lastIndexOf('.'));
}

async function login(agent: Agent, userId: string): Promise<string> {
  const res = await agent.post('/login').send({ userId }).expect(204);
  return sidOf(res);
}

/** Large SCAN batches: the shared test Redis may hold millions of other keys. */
const mine = (redis: Redis | Cluster, prefix: string) => scanKeys(redis, `${prefix}:*`, { count: 100_000 });

/** Deletes this file's keys, and only those. */
async function deleteMine(redis: Redis | Cluster, prefix: string): Promise<void> {
  for await (const { node, keys } of mine(redis, prefix)) await Promise.all(keys.map((k) => node.unlink(k)));
}

/** Every key matching the pattern, with its value (zsets with scores). */
async function dump(redis: Redis | Cluster, pattern: string): Promise<string> {
  const out: string[] = [];
  for await (const { node, keys } of scanKeys(redis, pattern)) {
    for (const key of keys) {
      const type = await node.type(key);
      const value =
        type === 'hash'
          ? await node.hgetall(key)
          : type === 'zset'
            ? await node.zrange(key, '0', '-1', 'WITHSCORES')
            : await node.get(key);
      out.push(key, JSON.stringify(value));
    }
  }
  return out.join('\n');
}

/** Calls a callback-style store method and resolves with its result. */
function call<T = void>(fn: (cb: (err?: unknown, result?: T) => void) => void): Promise<T | undefined> {
  return new Promise((resolve, reject) => fn((err, result) => (err ? reject(err) : resolve(result))));
}

interface Env {
  redis: Redis | Cluster;
  store: SessionStore;
  prefix: string;
  adapter(options?: Omit<ExpressSessionStoreOptions, 'store'>): ExpressSessionStore;
  /** The express-session members of a user's index. */
  indexed(userId: string): Promise<string[]>;
  /** Waits until the Redis clock is past a not-before, so a login issued now is not covered by it. */
  pastStamp(notBefore: number): Promise<void>;
}

function environment(
  name: string,
  connect: () => Promise<{ redis: Redis | Cluster; done: () => Promise<void> }>,
): Env {
  const env = { prefix: uniquePrefix(`express-${name}`) } as Env;
  let done: () => Promise<void>;
  beforeAll(async () => {
    ({ redis: env.redis, done } = await connect());
    env.store = new SessionStore({ redis: env.redis, prefix: env.prefix, tagSecret: TAG_SECRET });
  });
  afterAll(async () => {
    await deleteMine(env.redis, env.prefix);
    await done();
  });
  env.adapter = (options = {}) => new ExpressSessionStore({ store: env.store, ...options });
  env.indexed = async (userId) =>
    (await env.redis.zrange(env.store.keys.userIndex(env.store.keys.userTag(userId)), '0', '-1')).filter(
      (m) => m.startsWith('e:'),
    );
  env.pastStamp = (notBefore) => waitForRedisPast(env.redis, notBefore);
  return env;
}

let users = 0;
const user = (name: string) => `${name}-${++users}@example.com`;

/**
 * The tests that SCAN the keyspace (all, length, ids, clear, and reading back everything written) run
 * on a Redis of their own: on the shared one their cost is that of every other test's keys. They come
 * first, so the timers of its start-up probe are long gone when the file ends.
 */
describe('ExpressSessionStore on a Redis of its own', () => {
  const env = environment('direct', async () => {
    const [port] = await freePorts(1);
    const dir = mkdtempSync(join(tmpdir(), 'sr-express-'));
    const server = await startRedisServer(port!, dir);
    const redis = new Redis({ port, maxRetriesPerRequest: 1 });
    return {
      redis,
      done: async () => {
        redis.disconnect();
        await new Promise<void>((resolve) => {
          if (server.process.exitCode !== null) return resolve();
          server.process.once('exit', () => resolve());
          server.process.kill('SIGKILL');
        });
        rmSync(dir, { recursive: true, force: true });
      },
    };
  });

  it('never writes the raw express-session id to Redis', async () => {
    const adapter = env.adapter();
    const app = makeApp(adapter, { maxAge: 600_000 });
    const alice = user('alice');
    const a = request.agent(app);
    const res = await a.post('/login').send({ userId: alice }).expect(204);
    const sid = sidOf(res);
    const cookie = decodeURIComponent(([] as string[]).concat(res.get('Set-Cookie')!)[0]!.split(';')[0]!);
    await a.get('/me').expect(200);
    await a.get('/slow?write=1').expect(200);
    const anonymous = sidOf(await request(app).post('/cart').expect(204));
    const stored = (await call<SessionData | null>((cb) => adapter.get(sid, cb)))!;
    await call((cb) => adapter.touch(sid, stored, cb));

    // Everything this Redis holds: it serves this file alone.
    const everything = await dump(env.redis, '*');
    // The records are there, under the hashes.
    expect(everything).toContain(env.store.keys.expressSession(secretHash(sid)));
    expect(everything).toContain(env.store.keys.expressSession(secretHash(anonymous)));
    for (const secret of [sid, anonymous, cookie.slice(cookie.indexOf('=') + 1)]) {
      expect(everything).not.toContain(secret);
    }
  });

  it('answers all, length, ids, clear and touch', async () => {
    // A prefix of its own: these count every express-session record under it.
    const prefix = `${env.prefix}-direct`;
    const store = new SessionStore({ redis: env.redis, prefix, tagSecret: TAG_SECRET });
    const adapter = new ExpressSessionStore({ store });
    try {
      const [alice, bob] = [user('alice'), user('bob')];
      const expires = Date.now() + 60_000;
      const data = (fields: Fields, at = expires): SessionData =>
        ({
          cookie: { originalMaxAge: 60_000, expires: new Date(at).toISOString(), httpOnly: true, path: '/' },
          ...fields,
        }) as unknown as SessionData;
      await call((cb) => adapter.set('sid-alice', data({ userId: alice }), cb));
      await call((cb) => adapter.set('sid-bob', data({ userId: bob }), cb));
      await call((cb) => adapter.set('sid-anon', data({ cart: [1] }), cb));

      expect(await call<number>((cb) => adapter.length(cb))).toBe(3);
      expect((await call<string[]>((cb) => adapter.ids(cb)))!.sort()).toEqual(
        ['sid-alice', 'sid-bob', 'sid-anon'].map(secretHash).sort(),
      );
      const all = (await call<SessionData[]>((cb) => adapter.all(cb))) as unknown as Fields[];
      expect(
        all
          .map((s) => s['userId'] ?? s['cart'])
          .map(String)
          .sort(),
      ).toEqual([alice, bob, '1'].sort());
      expect(await call<SessionData | null>((cb) => adapter.get('sid-unknown', cb))).toBeNull();

      // A revoked user's sessions drop out of the listing.
      await store.revokeUser(alice);
      expect((await call<string[]>((cb) => adapter.ids(cb)))!.sort()).toEqual(
        ['sid-bob', 'sid-anon'].map(secretHash).sort(),
      );

      // touch slides the record and its index entry to the cookie's new expiry.
      const later = expires + 120_000;
      await call((cb) => adapter.touch('sid-bob', data({ userId: bob }, later), cb));
      const bobRecord = store.keys.expressSession(secretHash('sid-bob'));
      expect(await env.redis.pexpiretime(bobRecord)).toBe(later);
      const [bobEntry] = await store.listUserSessions(bob);
      expect(bobEntry).toMatchObject({ handle: secretHash('sid-bob'), expiresAt: later });
      const bobData = (await call<SessionData | null>((cb) => adapter.get('sid-bob', cb)))!;
      expect(new Date(bobData.cookie.expires!).getTime()).toBe(later);

      // touch never creates a session: not an unknown one, not a destroyed one.
      await call((cb) => adapter.touch('sid-never-set', data({ userId: bob }), cb));
      expect(await env.redis.exists(store.keys.expressSession(secretHash('sid-never-set')))).toBe(0);
      await call((cb) => adapter.destroy('sid-anon', cb));
      await call((cb) => adapter.touch('sid-anon', data({ cart: [1] }), cb));
      expect(await call<SessionData | null>((cb) => adapter.get('sid-anon', cb))).toBeNull();
      await call((cb) => adapter.destroy('sid-unknown', cb));

      // clear deletes every express-session record and its index entry, and nothing else.
      const native = await store.createSession({ userId: bob, ttlSeconds: 600 });
      await call((cb) => adapter.clear(cb));
      expect(await call<number>((cb) => adapter.length(cb))).toBe(0);
      expect(await env.redis.exists(bobRecord)).toBe(0);
      expect((await store.listUserSessions(bob)).map((s) => s.handle)).toEqual([native.handle]);
      expect(await store.getSession(native.sessionId)).not.toBeNull();
    } finally {
      await deleteMine(env.redis, prefix);
    }
  });
});

/** The core guarantee, on a standalone Redis and on a cluster. */
function revocation(name: string, connect: Parameters<typeof environment>[1]) {
  describe(`ExpressSessionStore revocation (${name})`, () => {
    const env = environment(name, connect);

    it('revokeUser logs that user out of express-session at once, and nobody else', async () => {
      const app = makeApp(env.adapter());
      const [alice, bob] = [user('alice'), user('bob')];
      const a = request.agent(app);
      const b = request.agent(app);
      const aliceSid = await login(a, alice);
      await b.post('/login').query({ userId: bob }).expect(204);
      await a.get('/me').expect(200, { userId: alice });
      await b.get('/me').expect(200, { userId: bob });
      const record = env.store.keys.expressSession(secretHash(aliceSid));
      expect(await env.redis.hget(record, 'uid')).toBe(alice);
      expect(await env.indexed(alice)).toHaveLength(1);

      const result = await env.store.revokeUser(alice);
      expect(result.revoked).toBe(1);
      await a.get('/me').expect(401);
      expect(await env.redis.exists(record)).toBe(0);
      expect(await env.indexed(alice)).toEqual([]);
      expect(await env.store.listUserSessions(alice)).toEqual([]);
      // The anonymous request that followed did not write the session back.
      await a.get('/me').expect(401);
      expect(await env.redis.exists(record)).toBe(0);
      await b.get('/me').expect(200, { userId: bob });

      // A login after the revocation lives, with a new express-session id.
      await env.pastStamp(result.notBefore);
      const again = await login(a, alice);
      expect(again).not.toBe(aliceSid);
      await a.get('/me').expect(200, { userId: alice });
    });

    it('revokeIdpSession (a back-channel logout by sid alone) ends the sessions of that IdP session only', async () => {
      const app = makeApp(env.adapter());
      const alice = user('alice');
      const [idpA, idpB] = [`idp-a-${users}`, `idp-b-${users}`];
      const a1 = request.agent(app);
      const a2 = request.agent(app);
      const sid1 = sidOf(await a1.post('/login').send({ userId: alice, idp: idpA }).expect(204));
      await a2.post('/login').send({ userId: alice, idp: idpB }).expect(204);
      await a1.get('/me').expect(200, { userId: alice });
      const record = env.store.keys.expressSession(secretHash(sid1));
      // Keys and index members name the IdP session by its hash; its id is only in the session's own
      // data, which is what the application put there.
      expect(await env.redis.hget(record, 'ih')).toBe(secretHash(idpA));
      const names: string[] = [];
      for await (const { keys } of mine(env.redis, env.prefix)) names.push(...keys);
      expect(names.filter((k) => k.includes(idpA))).toEqual([]);
      expect(await env.redis.zrange(env.store.keys.idpIndex(secretHash(idpA)), '0', '-1')).toEqual([
        env.store.keys.idpExpressMember(env.store.keys.userTag(alice), secretHash(sid1)),
      ]);

      // No user id: the IdP session's own index leads to the user.
      const result = await env.store.revokeIdpSession(idpA);
      expect(result.revoked).toBe(1);
      await a1.get('/me').expect(401);
      expect(await env.redis.exists(record)).toBe(0);
      expect(await env.indexed(alice)).toHaveLength(1);
      await a2.get('/me').expect(200, { userId: alice });
    });

    it('keeps the IdP-session entry as long as the record, and follows a change of user', async () => {
      const alice = user('alice');
      const dave = user('dave');
      const idp = `idp-rolling-${users}`;
      const short = makeApp(env.adapter({ ttlSeconds: 60 }));
      const long = makeApp(env.adapter({ ttlSeconds: 3600 }));
      const a = request.agent(short);
      const loggedIn = await a.post('/login').send({ userId: alice, idp }).expect(204);
      const sid = sidOf(loggedIn);
      const record = env.store.keys.expressSession(secretHash(sid));
      const index = env.store.keys.idpIndex(secretHash(idp));
      const entry = (tag: string) => env.store.keys.idpExpressMember(tag, secretHash(sid));
      // Used again where sessions last longer: express-session touches it, and the record lives on.
      const cookie = ([] as string[]).concat(loggedIn.get('Set-Cookie') ?? []).map((c) => c.split(';')[0]!);
      await request(long).get('/me').set('Cookie', cookie).expect(200, { userId: alice });
      const expiresAt = Number(await env.redis.call('PEXPIRETIME', record));
      expect(expiresAt).toBeGreaterThan(Date.now() + 600_000);
      expect(
        Number(await env.redis.zscore(index, entry(env.store.keys.userTag(alice)))),
      ).toBeGreaterThanOrEqual(expiresAt);

      // The same browser signs in as another user through the same IdP session (no regenerate).
      await a.post('/login').send({ userId: dave, idp }).expect(204);
      await a.get('/me').expect(200, { userId: dave });
      expect(await env.redis.zscore(index, entry(env.store.keys.userTag(dave)))).not.toBeNull();
      await env.store.revokeIdpSession(idp);
      await a.get('/me').expect(401);
    });

    it('a process that remembers where a session lived still reads the stamps of where it lives now', async () => {
      // Two application processes share the sessions: `here` reads each session (and remembers its
      // owner), `there` then moves it to another user or IdP session. Stamps of the new owner that the
      // clean-up could not act on (nothing deleted) must still be seen by `here`.
      const [here, there] = [makeApp(env.adapter()), makeApp(env.adapter())];
      const signIn = async (body: { userId: string; idp?: string }) => {
        const res = await request(there).post('/login').send(body).expect(204);
        const cookie = ([] as string[]).concat(res.get('Set-Cookie') ?? []).map((c) => c.split(';')[0]!);
        return { cookie, record: env.store.keys.expressSession(secretHash(sidOf(res))) };
      };
      const [alice, erin, frank] = [user('alice'), user('erin'), user('frank')];
      const [idpA, idpB] = [`idp-moved-a-${users}`, `idp-moved-b-${users}`];

      // Another user.
      const one = await signIn({ userId: alice });
      await request(here).get('/me').set('Cookie', one.cookie).expect(200, { userId: alice });
      await request(there).post('/login').set('Cookie', one.cookie).send({ userId: erin }).expect(204);
      await env.store.stampUser(erin, { notBefore: Date.now() + 60_000 });
      await request(here).get('/me').set('Cookie', one.cookie).expect(401);
      expect(await env.redis.exists(one.record)).toBe(1);

      // Another IdP session of the same user, whose logout named the user but whose index was lost.
      const two = await signIn({ userId: frank, idp: idpA });
      await request(here).get('/me').set('Cookie', two.cookie).expect(200, { userId: frank });
      await request(there)
        .post('/login')
        .set('Cookie', two.cookie)
        .send({ userId: frank, idp: idpB })
        .expect(204);
      await env.redis.del(env.store.keys.idpIndex(secretHash(idpB)));
      expect((await env.store.revokeIdpSession(idpB, { userId: frank })).revoked).toBe(0);
      await request(here).get('/me').set('Cookie', two.cookie).expect(401);
      expect(await env.redis.exists(two.record)).toBe(1);
    });

    it('refuses a session of a logged-out IdP session that the clean-up missed', async () => {
      const adapter = env.adapter();
      const app = makeApp(adapter);
      const alice = user('alice');
      const idp = `idp-missed-${users}`;
      const a = request.agent(app);
      const sid = sidOf(await a.post('/login').send({ userId: alice, idp }).expect(204));
      // Lose the IdP session's index, so only the user's own stamp (the logout token named her) is left.
      await env.redis.del(env.store.keys.idpIndex(secretHash(idp)));
      expect((await env.store.revokeIdpSession(idp, { userId: alice })).revoked).toBe(0);
      expect(await env.redis.exists(env.store.keys.expressSession(secretHash(sid)))).toBe(1);
      await a.get('/me').expect(401);
      expect(await call<SessionData | null>((cb) => adapter.get(sid, cb))).toBeNull();
      const listed = (await call<SessionData[]>((cb) => adapter.all(cb)))!;
      expect(listed.filter((x) => (x as unknown as Fields)['userId'] === alice)).toEqual([]);
    });

    it('does not keep a login whose IdP session was logged out just before it was saved', async () => {
      const app = makeApp(env.adapter());
      const alice = user('alice');
      const idp = `idp-late-${users}`;
      // As the worker calls it for a back-channel logout: the event's time, so the stamp reaches a
      // little past it (the clock skew) and covers a login of that IdP session racing it.
      await env.store.revokeIdpSession(idp, { notBefore: Date.now() });
      const a = request.agent(app);
      const sid = sidOf(await a.post('/login').send({ userId: alice, idp }).expect(204));
      await a.get('/me').expect(401);
      expect(await env.redis.exists(env.store.keys.expressSession(secretHash(sid)))).toBe(0);
      expect(await env.indexed(alice)).toEqual([]);
      // The same user signed in through another IdP session is kept.
      await a
        .post('/login')
        .send({ userId: alice, idp: `${idp}-other` })
        .expect(204);
      await a.get('/me').expect(200, { userId: alice });
    });

    it('refuses a session the clean-up missed (its index entry was lost)', async () => {
      const adapter = env.adapter();
      const app = makeApp(adapter);
      const alice = user('alice');
      const a = request.agent(app);
      const sid = await login(a, alice);
      const record = env.store.keys.expressSession(secretHash(sid));
      // Lose the index entry, so revokeUser cannot find the record to delete it.
      const tag = env.store.keys.userTag(alice);
      await env.redis.del(env.store.keys.userIndex(tag));

      expect((await env.store.revokeUser(alice)).revoked).toBe(0);
      expect(await env.redis.exists(record)).toBe(1);
      await a.get('/me').expect(401);
      expect(await call<SessionData | null>((cb) => adapter.get(sid, cb))).toBeNull();
    });
  });
}

revocation('standalone', async () => {
  const redis = testRedis();
  return { redis, done: async () => void redis.disconnect() };
});

let cluster: TestCluster;
revocation('cluster', async () => {
  cluster = await startCluster(3);
  return { redis: cluster.client(), done: () => cluster.stop() };
});

describe('ExpressSessionStore with express-session', () => {
  const env = environment('app', async () => {
    const redis = testRedis();
    return { redis, done: async () => void redis.disconnect() };
  });

  it('a revocation older than the login leaves the session alive, and a replay never revives one', async () => {
    const app = makeApp(env.adapter());
    const alice = user('alice');
    const a = request.agent(app);
    const before = Date.now() - 60_000;
    await login(a, alice);

    const stale = await env.store.revokeUser(alice, { notBefore: before });
    expect(stale.revoked).toBe(0);
    await a.get('/me').expect(200, { userId: alice });
    expect(await env.indexed(alice)).toHaveLength(1);

    const now = await env.store.revokeUser(alice);
    expect(now.revoked).toBe(1);
    await a.get('/me').expect(401);

    // A new login, then the old event replayed: the stamp does not move back, the new session stays.
    await env.pastStamp(now.notBefore);
    await login(a, alice);
    const replay = await env.store.revokeUser(alice, { notBefore: before });
    expect(replay).toMatchObject({ revoked: 0, notBefore: now.notBefore });
    await a.get('/me').expect(200, { userId: alice });
  });

  it('a login covered by a not-before (inside the skew window of a revocation) fails with SessionRevokedError, and is not kept', async () => {
    const adapter = env.adapter();
    const save = (sid: string, data: Fields) =>
      call((cb) => adapter.set(sid, { cookie: {}, ...data } as unknown as SessionData, cb));
    const record = (sid: string) => env.store.keys.expressSession(secretHash(sid));
    // The worker stamps an event's time plus the clock skew: a login right after the event may have
    // authenticated before it (invariant 1), so it is refused, and the application is told.
    const alice = user('alice');
    await env.store.revokeUser(alice, { notBefore: Date.now() });
    await expect(save('alice-browser', { userId: alice })).rejects.toBeInstanceOf(SessionRevokedError);
    expect(await env.redis.exists(record('alice-browser'))).toBe(0);
    expect(await env.indexed(alice)).toEqual([]);
    // So is a login of an IdP session logged out just before, and a browser's change to such a user.
    const bob = user('bob');
    const idp = `idp-refused-${users}`;
    await env.store.revokeIdpSession(idp, { notBefore: Date.now() });
    await expect(save('bob-browser', { userId: bob, idpSessionId: idp })).rejects.toBeInstanceOf(
      SessionRevokedError,
    );
    expect(await env.redis.exists(record('bob-browser'))).toBe(0);
    const carol = user('carol');
    await save('shared-browser', { userId: carol });
    await expect(save('shared-browser', { userId: alice })).rejects.toBeInstanceOf(SessionRevokedError);
    expect(await env.redis.exists(record('shared-browser'))).toBe(0);

    // A session read, then logged out elsewhere, then saved by the request that read it: no error,
    // and nothing written.
    const erin = user('erin');
    await save('erin-browser', { userId: erin });
    const read = await call<SessionData | null>((cb) => adapter.get('erin-browser', cb));
    await call((cb) => adapter.destroy('erin-browser', cb));
    await expect(call((cb) => adapter.set('erin-browser', read!, cb))).resolves.toBeUndefined();
    expect(await env.redis.exists(record('erin-browser'))).toBe(0);

    // A session of before the revocation, saved again as a new object (no record of it having been
    // read), is not a login: it ends without an error, and nothing brings it back.
    const dave = user('dave');
    await save('dave-browser', { userId: dave });
    // The store's skew is 5 s: a stamp a few ms ahead, which the save then comes after.
    await env.pastStamp(await env.store.stampUser(dave, { notBefore: Date.now() - 4_990 }));
    await expect(save('dave-browser', { userId: dave, cart: ['apple'] })).resolves.toBeUndefined();
    expect(await call<SessionData | null>((cb) => adapter.get('dave-browser', cb))).toBeNull();
    expect(await env.redis.exists(record('dave-browser'))).toBe(0);
  });

  it('an application that saves the login itself is told it was refused', async () => {
    const app = makeApp(env.adapter());
    const alice = user('alice');
    await env.store.revokeUser(alice, { notBefore: Date.now() });
    const res = await request(app).post('/login-and-save').send({ userId: alice }).expect(503);
    expect(res.body).toEqual({ error: 'REVOKED' });
  });

  it('logout deletes the record and its index entry; an admin can list and revoke one browser', async () => {
    const app = makeApp(env.adapter(), { maxAge: 600_000 });
    const alice = user('alice');
    const [laptop, phone] = [request.agent(app), request.agent(app)];
    const laptopSid = await login(laptop, alice);
    const phoneSid = await login(phone, alice);
    const [laptopHandle, phoneHandle] = [secretHash(laptopSid), secretHash(phoneSid)];

    const listed = await env.store.listUserSessions(alice);
    expect(listed.map((s) => s.handle).sort()).toEqual([laptopHandle, phoneHandle].sort());
    for (const s of listed) {
      expect(s.groups).toEqual([]);
      expect(s.expiresAt).toBeGreaterThan(Date.now() + 500_000);
      expect(s.expiresAt).toBeLessThanOrEqual(Date.now() + 600_000);
      const iat = await env.redis.hget(env.store.keys.expressSession(s.handle), 'iat');
      expect(s.issuedAt).toBe(Number(iat));
    }
    expect(JSON.stringify(listed)).not.toContain(laptopSid);

    // The admin revokes the phone only.
    expect(await env.store.revokeSessionHandle(alice, phoneHandle)).toBe(true);
    expect(await env.store.revokeSessionHandle(alice, phoneHandle)).toBe(false);
    await phone.get('/me').expect(401);
    expect(await env.redis.exists(env.store.keys.expressSession(phoneHandle))).toBe(0);
    await laptop.get('/me').expect(200, { userId: alice });
    expect((await env.store.listUserSessions(alice)).map((s) => s.handle)).toEqual([laptopHandle]);

    // The laptop logs out.
    await laptop.post('/logout').expect(204);
    await laptop.get('/me').expect(401);
    expect(await env.redis.exists(env.store.keys.expressSession(laptopHandle))).toBe(0);
    expect(await env.indexed(alice)).toEqual([]);
    expect(await env.store.listUserSessions(alice)).toEqual([]);
  });

  it('reads the user from a dotted path', async () => {
    const slot: UserSlot = {
      put: (s, id) => void (s['passport'] = { user: id }),
      take: (s) => (s['passport'] as { user?: string } | undefined)?.user,
    };
    const app = makeApp(env.adapter({ userField: 'passport.user' }), { slot });
    const alice = user('alice');
    const a = request.agent(app);
    const sid = await login(a, alice);
    await a.get('/me').expect(200, { userId: alice });
    expect(await env.redis.hget(env.store.keys.expressSession(secretHash(sid)), 'uid')).toBe(alice);
    expect((await env.store.listUserSessions(alice)).map((s) => s.handle)).toEqual([secretHash(sid)]);

    // A session without the field is anonymous: stored, indexed under no user.
    const anon = request.agent(app);
    const anonSid = sidOf(await anon.post('/cart').expect(204));
    const anonRecord = env.store.keys.expressSession(secretHash(anonSid));
    expect(await env.redis.hmget(anonRecord, 'uid', 'tag')).toEqual(['', '']);

    expect((await env.store.revokeUser(alice)).revoked).toBe(1);
    await a.get('/me').expect(401);
    expect(await env.redis.exists(anonRecord)).toBe(1);
  });

  it('reads the user through a function', async () => {
    const slot: UserSlot = {
      put: (s, id) => void (s['account'] = { id: id.toUpperCase() }),
      take: (s) => (s['account'] as { id?: string } | undefined)?.id,
    };
    const adapter = env.adapter({
      userField: (s) =>
        ((s as unknown as Fields)['account'] as { id?: string } | undefined)?.id?.toLowerCase(),
    });
    const app = makeApp(adapter, { slot });
    const alice = user('alice');
    const a = request.agent(app);
    const sid = await login(a, alice);
    await a.get('/me').expect(200, { userId: alice.toUpperCase() });

    expect((await env.store.listUserSessions(alice)).map((s) => s.handle)).toEqual([secretHash(sid)]);
    expect(await env.store.listUserSessions(alice.toUpperCase())).toEqual([]);
    await env.store.revokeUser(alice);
    await a.get('/me').expect(401);
  });

  it.each([
    ['touches', '/slow'],
    ['saves', '/slow?write=1'],
  ])(
    'a request in flight during a revocation that then %s the session does not bring it back',
    async (_, path) => {
      const held = gate();
      const errors: unknown[] = [];
      const app = makeApp(env.adapter(), { gates: [held], maxAge: 600_000, errors });
      const alice = user('alice');
      const a = request.agent(app);
      const sid = await login(a, alice);
      const record = env.store.keys.expressSession(secretHash(sid));

      const inFlight = a.get(path).then((r) => r);
      await held.entered;
      try {
        await env.store.revokeUser(alice);
        expect(await env.redis.exists(record)).toBe(0);
      } finally {
        held.release();
      }
      // It read the session before the revocation, so it still answers as alice.
      expect((await inFlight).body).toEqual({ userId: alice });

      await a.get('/me').expect(401);
      expect(await env.redis.exists(record)).toBe(0);
      expect(await env.store.listUserSessions(alice)).toEqual([]);
      // Its save of a session gone is no login: nothing was reported as an error.
      expect(errors).toEqual([]);
    },
  );

  it('a request in flight during a logout does not bring the session back', async () => {
    const held = gate();
    const errors: unknown[] = [];
    const app = makeApp(env.adapter(), { gates: [held], maxAge: 600_000, errors });
    const alice = user('alice');
    const a = request.agent(app);
    const sid = await login(a, alice);
    const record = env.store.keys.expressSession(secretHash(sid));

    const inFlight = a.get('/slow').then((r) => r);
    await held.entered;
    try {
      await a.post('/logout').expect(204);
      expect(await env.redis.exists(record)).toBe(0);
    } finally {
      held.release();
    }
    await inFlight;

    expect(await env.redis.exists(record)).toBe(0);
    expect(await env.store.listUserSessions(alice)).toEqual([]);
    await a.get('/me').expect(401);
    expect(errors).toEqual([]);
  });

  it('reads a session it has seen in one round trip (stamps asked for with the record), and one turned anonymous without stamps', async () => {
    const alice = user('alice');
    const data = { cookie: {}, userId: alice, idpSessionId: `idp-seen-${users}` } as unknown as SessionData;
    await call((cb) => env.adapter().set('seen-browser', data, cb));
    const redis = env.redis as Redis;
    // Observed, not replaced: every command still goes to Redis.
    const spy = jest.spyOn(redis, 'sendCommand');
    /** The commands a read sends before any reply can have come back (the read's synchronous part). */
    const sentAtOnce = async (adapter: ExpressSessionStore) => {
      spy.mockClear();
      const read = call<SessionData | null>((cb) => adapter.get('seen-browser', cb));
      const names = spy.mock.calls.map(([command]) => command.name);
      return { names, session: await read };
    };
    try {
      // A process meeting the session first: the record, then (a round trip later) its stamps.
      const fresh = env.adapter();
      const met = await sentAtOnce(fresh);
      expect(met.names).toEqual(['hmget']);
      expect((met.session as unknown as Fields)['userId']).toBe(alice);
      // Seen before: all three at once.
      const seen = await sentAtOnce(fresh);
      expect(seen.names).toEqual(['hmget', 'get', 'hget']);
      expect((seen.session as unknown as Fields)['userId']).toBe(alice);
      // It forgets its user: the next reads ask for no stamps.
      await call((cb) => fresh.set('seen-browser', { cookie: {} } as unknown as SessionData, cb));
      expect((await sentAtOnce(fresh)).names).toEqual(['hmget']);
    } finally {
      spy.mockRestore();
    }
  });

  it('drops the index entry when the session changes user or forgets it', async () => {
    const app = makeApp(env.adapter());
    const [alice, bob] = [user('alice'), user('bob')];
    const a = request.agent(app);
    const sid = await login(a, alice);
    const handle = secretHash(sid);

    // The same browser logs in as someone else without a new session id.
    await a.post('/login').send({ userId: bob }).expect(204);
    expect(await env.store.listUserSessions(alice)).toEqual([]);
    expect((await env.store.listUserSessions(bob)).map((s) => s.handle)).toEqual([handle]);
    await env.store.revokeUser(alice);
    await a.get('/me').expect(200, { userId: bob });

    // And then forgets its user, keeping the session.
    await a.post('/forget').expect(204);
    expect(await env.store.listUserSessions(bob)).toEqual([]);
    expect(await env.indexed(bob)).toEqual([]);
    expect(await env.redis.hget(env.store.keys.expressSession(handle), 'tag')).toBe('');
  });
});
