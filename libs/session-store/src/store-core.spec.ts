import { afterAll, describe, expect, it } from '@jest/globals';
import { deletePrefix, testRedis, uniquePrefix } from '../../../test/support/redis.js';
import { ExpressSessionStore } from './express-session-store.js';
import { InvalidArgumentError, SessionRevokedError, SessionStore } from './index.js';
import { scriptErrorCode as luaErrorCode } from './scripts.js';
import { coreOf } from './session-store.js';

const TAG_SECRET = 'core-tag-secret-0123456789';

describe('StoreCore', () => {
  const redis = testRedis();
  const prefix = uniquePrefix('core');
  const store = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET });
  const core = coreOf(store);
  /** A script replying `redis.error_reply(reply)`. */
  const failing = (reply: string) => redis.eval('return redis.error_reply(ARGV[1])', 0, reply);
  /** What it rejects with. */
  const replyError = (reply: string) =>
    failing(reply).then(
      () => {
        throw new Error('the script did not fail');
      },
      (err: unknown) => err,
    );

  afterAll(async () => {
    await deletePrefix(redis, prefix);
    await redis.quit();
  });

  describe('luaErrorCode', () => {
    it.each([
      ['REVOKED issued before the not-before', 'REVOKED'],
      ['EXPIRED expiresAt is already past', 'EXPIRED'],
    ])('is the first word of a script error with a code: %j', async (reply, code) => {
      const err = await replyError(reply);
      expect((err as Error).name).toBe('ReplyError');
      expect((err as Error).message).toBe(reply);
      expect(luaErrorCode(err)).toBe(code);
    });

    it.each([
      // One word only: Redis puts 'ERR' in front (the message is 'ERR REVOKED').
      'REVOKED',
      'revoked issued before the not-before',
      'REVOKEDX issued before the not-before',
      'ERR REVOKED issued before the not-before',
      'NOTREVOKED EXPIRED',
    ])('is undefined for any other error reply: %j', async (reply) => {
      expect(luaErrorCode(await replyError(reply))).toBeUndefined();
    });

    it('is undefined for what is not a Redis error reply', () => {
      expect(luaErrorCode(new Error('REVOKED issued before the not-before'))).toBeUndefined();
      expect(luaErrorCode('REVOKED issued before the not-before')).toBeUndefined();
      expect(luaErrorCode(undefined)).toBeUndefined();
    });
  });

  describe('mapErrors', () => {
    it("turns the scripts' codes into the store's errors and lets any other error through", async () => {
      await expect(core.mapErrors(failing('REVOKED x'))).rejects.toBeInstanceOf(SessionRevokedError);
      await expect(core.mapErrors(failing('EXPIRED x'))).rejects.toEqual(
        new InvalidArgumentError('the session would expire before it starts'),
      );
      const other = await replyError('ERR REVOKED');
      await expect(core.mapErrors(Promise.reject(other))).rejects.toBe(other);
      await expect(core.mapErrors(Promise.resolve(7))).resolves.toBe(7);
    });

    it('recognises the EXPIRED and REVOKED the scripts themselves reply with', async () => {
      const tag = core.keys.userTag('alice');
      const index = core.keys.userIndex(tag);
      const stamp = core.keys.notBefore(tag);
      const past = Date.now() - 1000;
      await expect(
        core.mapErrors(core.scripts.indexForeign(stamp, index, 't', 'token-hash', '', past)),
      ).rejects.toEqual(new InvalidArgumentError('the session would expire before it starts'));
      await expect(
        core.mapErrors(
          core.scripts.createSession(
            core.keys.session(tag, 'h'),
            stamp,
            index,
            core.keys.idpNotBefore(tag),
            'alice',
            60_000,
            past,
            '',
            '',
            '',
            '',
            '',
            '',
            'h',
          ),
        ),
      ).rejects.toEqual(new InvalidArgumentError('the session would expire before it starts'));
      await redis.set(stamp, String(Date.now() + 60_000));
      await expect(
        core.mapErrors(core.scripts.indexForeign(stamp, index, 't', 'token-hash', '', Date.now() + 60_000)),
      ).rejects.toBeInstanceOf(SessionRevokedError);
      expect(await redis.exists(index, core.keys.session(tag, 'h'))).toBe(0);
    });
  });

  describe('coreOf', () => {
    it('is the core the store was built on: same keys, one core per store', () => {
      expect(core.keys).toBe(store.keys);
      expect(coreOf(store)).toBe(core);
      const other = new SessionStore({ redis, prefix, tagSecret: TAG_SECRET });
      expect(coreOf(other)).not.toBe(core);
      expect(coreOf(other).redis).toBe(redis);
    });

    it('is not reachable through the store itself', () => {
      expect('internals' in store).toBe(false);
      const own = Object.getOwnPropertyNames(store).map(
        (k) => (store as unknown as Record<string, unknown>)[k],
      );
      expect(own).not.toContain(core);
      expect(own).not.toContain(core.scripts);
      expect(own).not.toContain(redis);
    });

    it('refuses what is not a SessionStore, and so does the express adapter', () => {
      const fake = { keys: store.keys } as unknown as SessionStore;
      expect(() => coreOf(fake)).toThrow(new InvalidArgumentError('store must be a SessionStore'));
      expect(() => new ExpressSessionStore({ store: fake })).toThrow(InvalidArgumentError);
      expect(() => new ExpressSessionStore({ store })).not.toThrow();
    });
  });
});
