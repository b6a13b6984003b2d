import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type Cluster, Redis } from 'ioredis';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  deletePrefix,
  freePorts,
  startCluster,
  startRedisServer,
  testRedis,
  uniquePrefix,
  waitFor,
  type TestCluster,
} from '../../../test/support/redis.js';
import { InvalidArgumentError, SessionRevokedError, SessionStore } from './index.js';

const TAG_SECRET = 'contract-tag-secret-0123456789';

/** Every key under the prefix, with its value, so tests can assert what Redis holds. */
async function dump(redis: Redis | Cluster, prefix: string): Promise<string> {
  const nodes = 'nodes' in redis ? (redis as Cluster).nodes('master') : [redis as Redis];
  const out: string[] = [];
  for (const node of nodes) {
    const keys = await node.keys(`${prefix}:*`);
    for (const key of keys) {
      const type = await node.type(key);
      const value =
        type === 'hash'
          ? await node.hgetall(key)
          : type === 'zset'
            ? await node.zrange(key, '0', '-1')
            : await node.get(key);
      out.push(key, JSON.stringify(value));
    }
  }
  return out.join('\n');
}

function contract(
  name: string,
  connect: () => Promise<{ redis: Redis | Cluster; done: () => Promise<void> }>,
) {
  describe(`SessionStore contract (${name})`, () => {
    let redis: Redis | Cluster;
    let done: () => Promise<void>;
    const prefix = uniquePrefix('store');
    let store: SessionStore;
    let n = 0;
    const user = () => `user-${++n}@example.com`;

    beforeAll(async () => {
      ({ redis, done } = await connect());
      store = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET, clockSkewMs: 5000 });
    });
    afterAll(async () => {
      await deletePrefix(redis, prefix);
      await done();
    });

    it('reads back ids and claims of any characters exactly as written (sessions and cached tokens)', async () => {
      // The reads answer one JSON text built in Lua: quotes, backslashes, NUL and other control
      // characters, slashes, U+2028, astral characters, digits-only and JSON-looking ids must survive it.
      const odd = ['a"b\\c', 'nul\u0000x\u001f', '/x/\u2028y', 'emoji-\u{1F600}-é', '123', 'null', '[1]'];
      for (const [i, weird] of odd.entries()) {
        const userId = `${weird}-${user()}`;
        const claims = { name: weird, nested: { [weird]: [weird, 1.5, null, true] } };
        const created = await store.createSession({
          userId,
          ttlSeconds: 600,
          idpSessionId: `${weird}-idp-${i}`,
          groups: [weird, `${weird}-2`],
          claims,
        });
        await expect(store.getSession(created.sessionId)).resolves.toEqual({
          userId,
          handle: created.handle,
          issuedAt: created.issuedAt,
          expiresAt: created.expiresAt,
          idpSessionId: `${weird}-idp-${i}`,
          groups: [weird, `${weird}-2`],
          claims,
        });
        const token = `odd-token-${i}-${n}`;
        await store.cacheToken(token, { userId, expiresAt: Date.now() + 60_000, claims });
        const cached = await store.getCachedToken(token);
        expect(cached).toMatchObject({ userId, claims });
      }
    });

    it('creates a session and reads it back in one call', async () => {
      const userId = user();
      const before = Date.now();
      const created = await store.createSession({
        userId,
        ttlSeconds: 3600,
        idpSessionId: 'idp-1',
        groups: ['g1', 'g2', 'g1'],
        claims: { name: 'Alice', amr: ['pwd'] },
      });
      expect(created.sessionId).toMatch(/^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
      expect(created.sessionId).not.toContain(userId);
      expect(created.handle).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(created.expiresAt).toBeGreaterThanOrEqual(before + 3600_000 - 1000);
      expect(created.expiresAt).toBeLessThanOrEqual(Date.now() + 3600_000 + 1000);
      await expect(store.getSession(created.sessionId)).resolves.toEqual({
        userId,
        handle: created.handle,
        issuedAt: created.issuedAt,
        expiresAt: created.expiresAt,
        idpSessionId: 'idp-1',
        groups: ['g1', 'g2'],
        claims: { name: 'Alice', amr: ['pwd'] },
      });
    });

    it('keeps every key of a user in one hash slot and holds only hashes of secrets', async () => {
      const userId = user();
      const { sessionId } = await store.createSession({ userId, ttlSeconds: 60 });
      await store.cacheToken('raw-access-token-value', { userId, expiresAt: Date.now() + 60_000 });
      await store.revokeUser(userId, { notBefore: Date.now() - 60_000 });
      const tag = store.keys.userTag(userId);
      const userKeys = [store.keys.notBefore(tag), store.keys.userIndex(tag), store.keys.session(tag, 'x')];
      const slots = await Promise.all(userKeys.map((k) => redis.cluster('KEYSLOT', k).catch(() => null)));
      if (name === 'cluster') expect(new Set(slots).size).toBe(1);
      const everything = await dump(redis, prefix);
      expect(everything).not.toContain(sessionId);
      expect(everything).not.toContain(sessionId.split('.')[1]);
      expect(everything).not.toContain('raw-access-token-value');
    });

    it('caps the lifetime by notAfter', async () => {
      const notAfter = Date.now() + 10_000;
      const created = await store.createSession({ userId: user(), ttlSeconds: 3600, notAfter });
      expect(created.expiresAt).toBe(notAfter);
      const tag = created.sessionId.split('.')[0]!;
      const pttl = await redis.pttl(store.keys.session(tag, created.handle));
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(10_000);
      const touched = await store.touchSession(created.sessionId, 7200);
      expect(touched?.expiresAt).toBe(notAfter);
    });

    it('returns null once a session expires', async () => {
      const { sessionId } = await store.createSession({
        userId: user(),
        ttlSeconds: 3600,
        notAfter: Date.now() + 300,
      });
      expect(await store.getSession(sessionId)).not.toBeNull();
      await waitFor(async () => (await store.getSession(sessionId)) === null, 'the session to expire', 5000);
    });

    it('returns null for an unknown session id of the right format', async () => {
      const { sessionId } = await store.createSession({ userId: user(), ttlSeconds: 60 });
      const forged = `${sessionId.split('.')[0]}.${'A'.repeat(43)}`;
      expect(await store.getSession(forged)).toBeNull();
    });

    it('touches a session forward and destroys it', async () => {
      const { sessionId, expiresAt } = await store.createSession({ userId: user(), ttlSeconds: 60 });
      const touched = await store.touchSession(sessionId, 600);
      expect(touched!.expiresAt).toBeGreaterThan(expiresAt);
      expect((await store.getSession(sessionId))!.expiresAt).toBe(touched!.expiresAt);
      expect(await store.destroySession(sessionId)).toBe(true);
      expect(await store.destroySession(sessionId)).toBe(false);
      expect(await store.getSession(sessionId)).toBeNull();
      expect(await store.touchSession(sessionId)).toBeNull();
    });

    it('revokes every session and cached token of a user at once, and nobody else', async () => {
      const [alice, bob] = [user(), user()];
      const a = await Promise.all(
        [1, 2, 3].map(() => store.createSession({ userId: alice, ttlSeconds: 600 })),
      );
      const b = await store.createSession({ userId: bob, ttlSeconds: 600 });
      await store.cacheToken('alice-token', {
        userId: alice,
        expiresAt: Date.now() + 60_000,
        claims: { scope: 'x' },
      });
      expect((await store.getCachedToken('alice-token'))?.claims).toEqual({ scope: 'x' });

      const result = await store.revokeUser(alice, { reason: 'test' });
      expect(result).toMatchObject({ revoked: 3, tokens: 1 });
      for (const s of a) expect(await store.getSession(s.sessionId)).toBeNull();
      expect(await store.getCachedToken('alice-token')).toBeNull();
      expect(await store.getSession(b.sessionId)).not.toBeNull();
      expect(await store.listUserSessions(alice)).toEqual([]);
      const tag = store.keys.userTag(alice);
      expect(
        await redis.exists(store.keys.userIndex(tag), ...a.map((s) => store.keys.session(tag, s.handle))),
      ).toBe(0);
      // A second revocation finds nothing left to delete.
      expect((await store.revokeUser(alice)).revoked).toBe(0);
    });

    it('revokes at notBefore + skew: later sessions stay, and the stamp only moves forward', async () => {
      const userId = user();
      const t0 = Date.now() - 60_000;
      const old = await store.createSession({ userId, ttlSeconds: 600, issuedAt: t0 });
      const withinSkew = await store.createSession({
        userId,
        ttlSeconds: 600,
        issuedAt: t0 + 10_000 + 4_000,
      });
      const fresh = await store.createSession({ userId, ttlSeconds: 600, issuedAt: t0 + 10_000 + 6_000 });

      const r = await store.revokeUser(userId, { notBefore: t0 + 10_000 });
      expect(r.revoked).toBe(2);
      expect(r.notBefore).toBe(t0 + 10_000 + 5_000 + 1);
      expect(await store.getSession(old.sessionId)).toBeNull();
      expect(await store.getSession(withinSkew.sessionId)).toBeNull();
      expect(await store.getSession(fresh.sessionId)).not.toBeNull();

      // An old event replayed later does not lower the stamp and kills nothing new.
      const replay = await store.revokeUser(userId, { notBefore: t0 });
      expect(replay).toMatchObject({ revoked: 0, notBefore: r.notBefore });
      expect(await store.getSession(fresh.sessionId)).not.toBeNull();
      // A login that claims to predate the stamp is refused and writes nothing.
      await expect(store.createSession({ userId, ttlSeconds: 60, issuedAt: t0 })).rejects.toBeInstanceOf(
        SessionRevokedError,
      );
      expect(await store.listUserSessions(userId)).toHaveLength(1);
    });

    it('stampUser puts the revocation in force and deletes nothing; revokeUser of that instant then cleans up', async () => {
      const userId = user();
      const t0 = Date.now() - 60_000;
      const old = await store.createSession({ userId, ttlSeconds: 600, issuedAt: t0 });
      await store.cacheToken('stamped-user-token', {
        userId,
        expiresAt: Date.now() + 60_000,
        issuedAt: t0,
      });
      const fresh = await store.createSession({ userId, ttlSeconds: 600, issuedAt: t0 + 20_000 });

      const nb = await store.stampUser(userId, { notBefore: t0 + 10_000 });
      expect(nb).toBe(t0 + 10_000 + 5_000 + 1);
      expect(await store.getSession(old.sessionId)).toBeNull();
      expect(await store.getCachedToken('stamped-user-token')).toBeNull();
      expect(await store.getSession(fresh.sessionId)).not.toBeNull();
      // Nothing was deleted: the covered session's record and index entry are still there.
      const tag = store.keys.userTag(userId);
      expect(await redis.exists(store.keys.session(tag, old.handle))).toBe(1);
      expect(await redis.zcard(store.keys.userIndex(tag))).toBe(3); // two sessions and the token
      // A replay of an older instant lowers nothing.
      expect(await store.stampUser(userId, { notBefore: t0 })).toBe(nb);

      // The later revokeUser of the same instant finds the stamp in place and deletes what it covers.
      const r = await store.revokeUser(userId, { notBefore: t0 + 10_000 });
      expect(r).toMatchObject({ revoked: 1, tokens: 1, notBefore: nb });
      expect(await redis.exists(store.keys.session(tag, old.handle))).toBe(0);
      expect(await store.getSession(fresh.sessionId)).not.toBeNull();

      await expect(store.stampUser(userId, { notBefore: Number.NaN })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
      await expect(store.stampUser('', { notBefore: t0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    });

    it('stampUsers stamps each user of a batch, and a bad entry fails alone', async () => {
      // More than one script's worth (100) on a single Redis.
      const users = Array.from({ length: 150 }, user);
      const t0 = Date.now() - 60_000;
      const sessions = await Promise.all(
        users.map((userId) => store.createSession({ userId, ttlSeconds: 600, issuedAt: t0 })),
      );
      const other = await store.createSession({ userId: user(), ttlSeconds: 600, issuedAt: t0 });
      const stamped = users.map((userId) => ({ userId, notBefore: t0 + 10_000 }));
      const outcomes = await store.stampUsers([
        ...stamped.slice(0, 70),
        { userId: '', notBefore: t0 },
        ...stamped.slice(70),
      ]);
      expect(outcomes.filter((_, i) => i !== 70)).toEqual(
        users.map(() => ({ status: 'fulfilled', value: t0 + 10_000 + 5_000 + 1 })),
      );
      expect(outcomes[70]).toMatchObject({ status: 'rejected', reason: expect.any(InvalidArgumentError) });
      for (const s of sessions) expect(await store.getSession(s.sessionId)).toBeNull();
      expect(await store.getSession(other.sessionId)).not.toBeNull();
      expect(await store.stampUsers([])).toEqual([]);
    });

    it('stampUsers: a stamp Redis refuses fails alone, the others of its batch go', async () => {
      const [a, b, c] = [user(), user(), user()];
      // b's stamp key holds a hash: its GET fails with WRONGTYPE.
      await redis.hset(store.keys.notBefore(store.keys.userTag(b)), 'not', 'a stamp');
      const outcomes = await store.stampUsers([a, b, c].map((userId) => ({ userId, notBefore: Date.now() })));
      expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      const session = await store
        .createSession({ userId: a, ttlSeconds: 60, issuedAt: Date.now() - 60_000 })
        .catch((e: unknown) => e);
      expect(session).toBeInstanceOf(SessionRevokedError);
    });

    it('revokes a user who holds a few sessions in one round trip', async () => {
      const userId = user();
      const created = await Promise.all(
        [1, 2, 3].map(() => store.createSession({ userId, ttlSeconds: 600 })),
      );
      await store.revokeUser(user()); // loads the script, so the call below is one EVALSHA
      const sent: string[] = [];
      const original = redis.sendCommand.bind(redis);
      redis.sendCommand = ((command: { name: string }, ...rest: unknown[]) => {
        sent.push(command.name);
        return (original as (...args: unknown[]) => unknown)(command, ...rest);
      }) as typeof redis.sendCommand;
      try {
        expect(await store.revokeUser(userId, { notBefore: Date.now() })).toMatchObject({ revoked: 3 });
      } finally {
        redis.sendCommand = original;
      }
      expect(sent).toEqual(['evalsha']);
      for (const s of created) expect(await store.getSession(s.sessionId)).toBeNull();
      expect(await redis.zcard(store.keys.userIndex(store.keys.userTag(userId)))).toBe(0);
      for (const s of created)
        expect(await redis.exists(store.keys.session(store.keys.userTag(userId), s.handle))).toBe(0);
    });

    it('deletes thousands of sessions in bounded batches', async () => {
      const small = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET, batchSize: 64 });
      const userId = user();
      const created = await Promise.all(
        Array.from({ length: 1000 }, () => small.createSession({ userId, ttlSeconds: 600 })),
      );
      const keeper = await small.createSession({ userId, ttlSeconds: 600, issuedAt: Date.now() + 4000 });
      const r = await small.revokeUser(userId, { notBefore: Date.now() - 5000 + 2000 });
      expect(r.revoked).toBe(1000);
      expect(await small.getSession(created[500]!.sessionId)).toBeNull();
      expect((await small.listUserSessions(userId)).map((s) => s.handle)).toEqual([keeper.handle]);
    });

    it('revokes only the sessions born of one IdP session', async () => {
      const userId = user();
      const fromIdp = await store.createSession({ userId, ttlSeconds: 600, idpSessionId: 'ping-sess-1' });
      const fromIdp2 = await store.createSession({ userId, ttlSeconds: 600, idpSessionId: 'ping-sess-1' });
      const other = await store.createSession({ userId, ttlSeconds: 600, idpSessionId: 'ping-sess-2' });
      const plain = await store.createSession({ userId, ttlSeconds: 600 });

      const r = await store.revokeIdpSession('ping-sess-1', { userId });
      expect(r.revoked).toBe(2);
      expect(await store.getSession(fromIdp.sessionId)).toBeNull();
      expect(await store.getSession(fromIdp2.sessionId)).toBeNull();
      expect(await store.getSession(other.sessionId)).not.toBeNull();
      expect(await store.getSession(plain.sessionId)).not.toBeNull();

      // Without the user id (a back-channel logout with only `sid`), found through the IdP-session index.
      expect((await store.revokeIdpSession('ping-sess-2')).revoked).toBe(1);
      expect(await store.getSession(other.sessionId)).toBeNull();
      // A login from the logged-out IdP session that claims an earlier instant is refused.
      await expect(
        store.createSession({
          userId,
          ttlSeconds: 60,
          idpSessionId: 'ping-sess-2',
          issuedAt: Date.now() - 1000,
        }),
      ).rejects.toBeInstanceOf(SessionRevokedError);
      // A new login after the logout (past the skew) from the same IdP session id lives.
      const later = await store.createSession({
        userId,
        ttlSeconds: 60,
        idpSessionId: 'ping-sess-2',
        issuedAt: Date.now() + 4_000,
      });
      expect(await store.getSession(later.sessionId)).not.toBeNull();
    });

    it('lists a user’s live sessions without secrets and revokes one by handle', async () => {
      const userId = user();
      const s1 = await store.createSession({
        userId,
        ttlSeconds: 600,
        groups: ['admins'],
        idpSessionId: 'idp-x',
      });
      const s2 = await store.createSession({ userId, ttlSeconds: 900 });
      const list = await store.listUserSessions(userId);
      expect(list).toHaveLength(2);
      expect(list).toEqual(
        expect.arrayContaining([
          {
            handle: s1.handle,
            issuedAt: s1.issuedAt,
            expiresAt: s1.expiresAt,
            idpSessionId: 'idp-x',
            groups: ['admins'],
          },
          { handle: s2.handle, issuedAt: s2.issuedAt, expiresAt: s2.expiresAt, groups: [] },
        ]),
      );
      expect(JSON.stringify(list)).not.toContain(s1.sessionId);
      expect(await store.revokeSessionHandle(userId, s1.handle)).toBe(true);
      expect(await store.revokeSessionHandle(userId, s1.handle)).toBe(false);
      expect(await store.revokeSessionHandle(user(), s2.handle)).toBe(false);
      expect(await store.getSession(s1.sessionId)).toBeNull();
      expect(await store.getSession(s2.sessionId)).not.toBeNull();
    });

    it('finds the users holding a live session with a group', async () => {
      const [a, b, c] = [user(), user(), user()];
      await store.createSession({ userId: a, ttlSeconds: 600, groups: ['finance'] });
      await store.createSession({ userId: b, ttlSeconds: 600, groups: ['finance', 'ops'] });
      await store.createSession({ userId: c, ttlSeconds: 600, groups: ['ops'] });
      await store.createSession({
        userId: c,
        ttlSeconds: 600,
        groups: ['finance'],
        notAfter: Date.now() + 200,
      });
      await waitFor(
        async () => (await store.usersInGroup('finance')).length === 2,
        'c’s finance session to expire',
      );
      expect((await store.usersInGroup('finance')).sort()).toEqual([a, b].sort());
      expect((await store.usersInGroup('ops')).sort()).toEqual([b, c].sort());
      expect(await store.usersInGroup('nobody')).toEqual([]);
    });

    it('replaces a live session’s claims, and never revives a revoked one', async () => {
      const userId = user();
      const { sessionId } = await store.createSession({ userId, ttlSeconds: 60, claims: { v: 1 } });
      expect(await store.setSessionClaims(sessionId, { v: 2 })).toBe(true);
      expect((await store.getSession(sessionId))?.claims).toEqual({ v: 2 });
      await store.revokeUser(userId);
      expect(await store.setSessionClaims(sessionId, { v: 3 })).toBe(false);
      expect(await store.getSession(sessionId)).toBeNull();
      await expect(store.setSessionClaims(sessionId, [] as never)).rejects.toThrow(
        'claims must be a plain object',
      );
    });

    it('caches tokens until they expire, refusing one issued before the user’s not-before', async () => {
      const userId = user();
      await store.cacheToken('short-token', { userId, expiresAt: Date.now() + 300, claims: { sub: userId } });
      expect(await store.getCachedToken('short-token')).toMatchObject({ userId, claims: { sub: userId } });
      await waitFor(
        async () => (await store.getCachedToken('short-token')) === null,
        'the token to expire',
        5000,
      );
      expect(await store.getCachedToken('never-cached')).toBeNull();

      await store.revokeUser(userId);
      const iat = Math.floor((Date.now() - 60_000) / 1000);
      await expect(
        store.cacheToken('old-token', { userId, expiresAt: Date.now() + 60_000, claims: { iat } }),
      ).rejects.toBeInstanceOf(SessionRevokedError);
      expect(await store.getCachedToken('old-token')).toBeNull();
    });

    it('trims expired entries from an index whenever it writes it', async () => {
      const userId = user();
      // Long enough for the three logins to be written first on a busy machine.
      const soon = Date.now() + 2000;
      // One that lives on, so the index key does (its TTL follows its latest member), and two that do not.
      await store.createSession({ userId, ttlSeconds: 600 });
      await Promise.all([1, 2].map(() => store.createSession({ userId, ttlSeconds: 600, notAfter: soon })));
      const index = store.keys.userIndex(store.keys.userTag(userId));
      await waitFor(async () => (await store.listUserSessions(userId)).length === 1, 'two to expire');
      // Expired, but nothing has written the index since.
      expect(await redis.zcard(index)).toBe(3);
      await store.createSession({ userId, ttlSeconds: 600 });
      expect(await redis.zcard(index)).toBe(2);
    });

    it('sweeps expired entries from indexes no write touches again', async () => {
      const userId = user();
      await store.createSession({ userId, ttlSeconds: 600, groups: ['sweep-g'], idpSessionId: 'sweep-idp' });
      await Promise.all(
        [1, 2, 3].map(() =>
          store.createSession({
            userId,
            ttlSeconds: 600,
            groups: ['sweep-g'],
            idpSessionId: 'sweep-idp',
            notAfter: Date.now() + 1000,
          }),
        ),
      );
      const tag = store.keys.userTag(userId);
      expect(await redis.zcard(store.keys.userIndex(tag))).toBe(4);
      await waitFor(
        async () => (await store.listUserSessions(userId)).length === 1,
        'three sessions to expire',
      );
      const swept = await store.sweep({ count: 100 });
      expect(swept.trimmed).toBeGreaterThanOrEqual(3);
      expect(await redis.zcard(store.keys.userIndex(tag))).toBe(1);
      // The index key itself lives exactly as long as its latest member.
      const [pttl, latest] = await Promise.all([
        redis.pexpiretime(store.keys.userIndex(tag)),
        redis.zrange(store.keys.userIndex(tag), '-1', '-1', 'WITHSCORES'),
      ]);
      expect(pttl).toBe(Number(latest[1]));
    });

    /** `n` users, each with a live session and one that expired but is still in the index. */
    async function usersWithAnExpiredEntry(n: number) {
      const users = Array.from({ length: n }, () => user());
      await Promise.all(
        users.flatMap((userId) => [
          store.createSession({ userId, ttlSeconds: 600 }),
          store.createSession({ userId, ttlSeconds: 600, notAfter: Date.now() + 1000 }),
        ]),
      );
      await waitFor(
        async () =>
          (await Promise.all(users.map((u) => store.listUserSessions(u)))).every((l) => l.length === 1),
        'one session of each user to expire',
      );
      const indexes = users.map((u) => store.keys.userIndex(store.keys.userTag(u)));
      return { users, sizes: () => Promise.all(indexes.map((k) => redis.zcard(k))) };
    }

    it('sweeps every index when it trims a few at a time', async () => {
      const { users, sizes } = await usersWithAnExpiredEntry(40);
      expect(await sizes()).toEqual(users.map(() => 2));
      const swept = await store.sweep({ count: 7, inFlight: 3 });
      expect(swept.trimmed).toBeGreaterThanOrEqual(users.length);
      expect(await sizes()).toEqual(users.map(() => 1));
    });

    it('sweeps a slice at a time, resuming where the last slice stopped', async () => {
      const { users, sizes } = await usersWithAnExpiredEntry(30);
      let slice = await store.sweep({ count: 10, maxScans: 1 });
      expect(slice.scans).toBe(1);
      expect(slice.next).toBeDefined();
      let slices = 1;
      while (slice.next) {
        slice = await store.sweep({ count: 10, maxScans: 2, from: slice.next });
        expect(slice.scans).toBeLessThanOrEqual(2);
        slices++;
      }
      expect(slices).toBeGreaterThan(2);
      expect(await sizes()).toEqual(users.map(() => 1));
    });

    it('rejects bad input with a typed error and writes nothing', async () => {
      const before = await dump(redis, prefix);
      const bad: Promise<unknown>[] = [
        store.createSession({ userId: '', ttlSeconds: 60 }),
        store.createSession({ userId: 'x'.repeat(257), ttlSeconds: 60 }),
        store.createSession({ userId: 'u', ttlSeconds: 0 }),
        store.createSession({ userId: 'u', ttlSeconds: -5 }),
        store.createSession({ userId: 'u', ttlSeconds: 1.5 }),
        store.createSession({ userId: 'u', ttlSeconds: 60, notAfter: Date.now() - 1 }),
        store.createSession({ userId: 'u', ttlSeconds: 60, issuedAt: Date.now() + 3600_000 }),
        store.createSession({ userId: 'u', ttlSeconds: 60, groups: [''] }),
        store.createSession({
          userId: 'u',
          ttlSeconds: 60,
          claims: [] as unknown as Record<string, unknown>,
        }),
        store.getSession('not-a-session-id'),
        store.getSession(''),
        store.touchSession('nope'),
        store.destroySession('nope.nope'),
        store.revokeUser(''),
        store.revokeSessionHandle('u', 'bad handle'),
        store.cacheToken('', { userId: 'u', expiresAt: Date.now() + 1000 }),
      ];
      for (const call of bad) {
        const err = await call.then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(InvalidArgumentError);
      }
      expect(await dump(redis, prefix)).toBe(before);
      const err = (await store.getSession('secret-looking-value').catch((e: Error) => e)) as Error;
      expect(err.message).not.toContain('secret-looking-value');
    });
  });
}

describe('revokeUser clean-up, every script call watched with MONITOR (invariant 5)', () => {
  it('deletes a big index in scripts of at most batchSize sessions each', async () => {
    const redis = testRedis();
    // A connection of its own (ioredis duplicates the client for it).
    const monitor = await redis.monitor();
    const prefix = uniquePrefix('store-batches');
    const store = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET, batchSize: 64 });
    const userId = 'batched@example.com';
    try {
      await Promise.all(Array.from({ length: 1000 }, () => store.createSession({ userId, ttlSeconds: 600 })));
      /** The number of keys of each script call on this store's keys, in the order Redis ran them. */
      const keysPerScript: number[] = [];
      const [begin, finish] = [`begin-${prefix}`, `end-${prefix}`];
      let watching = false;
      let ended = false;
      monitor.on('monitor', (_time: string, args: string[]) => {
        const [command, ...rest] = args as [string, ...string[]];
        if (/^echo$/i.test(command)) {
          if (rest[0] === begin) watching = true;
          if (rest[0] === finish) ended = true;
        } else if (
          watching &&
          /^eval(sha)?$/i.test(command) &&
          rest.slice(2).some((a) => a.startsWith(prefix))
        )
          keysPerScript.push(Number(rest[1]));
      });
      // MONITOR shows one connection's commands in order, so the markers frame the revocation's calls
      // (the script's first run may be an EVAL after a NOSCRIPT).
      await redis.echo(begin);
      const r = await store.revokeUser(userId, { notBefore: Date.now() });
      expect(r.revoked).toBe(1000);
      await redis.echo(finish);
      await waitFor(() => ended, 'MONITOR to show the end marker');
      // The stamp, then the deletes: 1,000 sessions take at least 16 calls of at most 64 (+ the index).
      expect(keysPerScript.length).toBeGreaterThanOrEqual(1 + Math.ceil(1000 / 64));
      expect(Math.max(...keysPerScript)).toBeLessThanOrEqual(1 + 64);
    } finally {
      monitor.disconnect();
      await deletePrefix(redis, prefix);
      redis.disconnect();
    }
  });
});

describe('stampUsers on a cluster-mode server reached as a single Redis (a proxy, one shard)', () => {
  it('falls back to one call per user when the server refuses a script over many slots', async () => {
    const [port] = await freePorts(1);
    const dir = mkdtempSync(join(tmpdir(), 'stamp-one-shard-'));
    const server = await startRedisServer(port!, dir, [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      `nodes-${port}.conf`,
    ]);
    const redis = new Redis({ port: port!, maxRetriesPerRequest: 1 });
    try {
      await redis.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
      await waitFor(async () => (await redis.cluster('INFO')).includes('cluster_state:ok'), 'the one shard');
      const store = new SessionStore({ redis, tagSecret: TAG_SECRET, clockSkewMs: 0 });
      const users = ['shard-a', 'shard-b', 'shard-c'];
      const t0 = Date.now() - 60_000;
      const outcomes = await store.stampUsers(users.map((userId) => ({ userId, notBefore: t0 })));
      expect(outcomes).toEqual(users.map(() => ({ status: 'fulfilled', value: t0 + 1 })));
    } finally {
      redis.disconnect();
      server.process.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

contract('standalone', async () => {
  const redis = testRedis();
  return { redis, done: async () => void redis.disconnect() };
});

let cluster: TestCluster;
contract('cluster', async () => {
  cluster = await startCluster(3);
  return { redis: cluster.client(), done: () => cluster.stop() };
});
