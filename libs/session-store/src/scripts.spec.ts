import { afterAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  deletePrefix,
  freePorts,
  startRedisServer,
  testRedis,
  uniquePrefix,
} from '../../../test/support/redis.js';
import { SessionStore } from './session-store.js';
import { scriptSources, withIncludes } from './scripts.js';

const LUA = new URL('./lua/', import.meta.url);
const luaIn = (dir: string) =>
  readdirSync(new URL(dir, LUA))
    .filter((f) => f.endsWith('.lua'))
    .map((f) => `${dir}${f}`);
/** Every Lua file as written, includes not expanded: [path under lua/, source]. */
const luaFiles = (): [string, string][] =>
  [...luaIn(''), ...luaIn('include/')].map((f) => [f, readFileSync(new URL(f, LUA), 'utf8')]);
/** Lua source without its comments. */
const code = (lua: string) => lua.replace(/--.*$/gm, '');
/** The Redis commands a Lua source calls, in order. */
const commands = (lua: string) =>
  [...code(lua).matchAll(/redis\.p?call\(\s*['"]([A-Za-z]+)['"]/g)].map((m) => m[1]!.toUpperCase());
const readsTime = (lua: string) => commands(lua).includes('TIME');

describe('Lua scripts and their includes', () => {
  const redis = testRedis();
  afterAll(async () => {
    await redis.quit();
  });

  it('every script reaches Redis with its includes expanded, and compiles', async () => {
    const sources = scriptSources();
    expect(sources.length).toBeGreaterThan(10);
    for (const [name, lua] of sources) {
      expect({ name, directives: lua.match(/#\s*include/g) ?? [] }).toEqual({ name, directives: [] });
      // SCRIPT LOAD compiles without running: a syntax error is refused here.
      expect(await redis.script('LOAD', lua)).toMatch(/^[0-9a-f]{40}$/);
    }
    const revokeUser = sources.find(([name]) => name === 'revokeUser')![1];
    expect(revokeUser).toContain('local function raiseStamp(');
  });

  it('the direct reads (getSession, getToken) load their script again when Redis has lost it', async () => {
    // A Redis of its own: SCRIPT FLUSH would take every other suite's scripts from the shared one.
    const [port] = await freePorts(1);
    const dir = mkdtempSync(join(tmpdir(), 'scripts-flush-'));
    const server = await startRedisServer(port!, dir);
    const own = new Redis({ port: port!, maxRetriesPerRequest: 1 });
    try {
      const store = new SessionStore({ redis: own, tagSecret: 'scripts-spec-tag-secret-0123' });
      const { sessionId } = await store.createSession({ userId: 'flushed', ttlSeconds: 60 });
      await store.cacheToken('flushed-token', { userId: 'flushed', expiresAt: Date.now() + 60_000 });
      for (let i = 0; i < 2; i++) {
        expect(await own.script('FLUSH')).toBe('OK');
        expect((await store.getSession(sessionId))?.userId).toBe('flushed');
        expect((await store.getCachedToken('flushed-token'))?.userId).toBe('flushed');
        // Loaded again by the EVAL: the next reads are EVALSHA hits.
        const sources = scriptSources().filter(([name]) => name === 'getSession' || name === 'getToken');
        const shas = sources.map(([, lua]) => createHash('sha1').update(lua).digest('hex'));
        expect(await own.script('EXISTS', ...shas)).toEqual([1, 1]);
      }
      // And the reloaded script still refuses what a stamp covers.
      await store.revokeUser('flushed');
      expect(await store.getSession(sessionId)).toBeNull();
    } finally {
      own.disconnect();
      server.process.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads Redis time only in include/redis-now.lua: every script and include that needs it pastes that', () => {
    for (const [file, lua] of luaFiles())
      expect({ file, readsTime: readsTime(lua) }).toEqual({
        file,
        readsTime: file === 'include/redis-now.lua',
      });
    const timed = scriptSources().filter(([, lua]) => readsTime(lua));
    expect(timed.map(([name]) => name).sort()).toEqual(
      [
        'cacheToken',
        'createSession',
        'indexForeign',
        'indexMember',
        'rememberFailure',
        'revokeIdpUser',
        'revokeUser',
        'saveExpressSession',
        'stampIndex',
        'stampUsers',
        'touchSession',
      ].sort(),
    );
    // Once per script, however many of its includes need it (raise-stamp does).
    for (const [name, lua] of timed)
      expect({ name, times: commands(lua).filter((c) => c === 'TIME') }).toEqual({ name, times: ['TIME'] });
  });

  it('keeps the index upkeep (add, trim, expire with the latest member) in include/index-upkeep.lua only', () => {
    for (const [file, lua] of luaFiles()) {
      if (file === 'include/index-upkeep.lua') continue;
      const calls = commands(lua).join(' ');
      expect({
        file,
        zadd: calls.includes('ZADD'),
        trimThenExpire: calls.includes('ZREMRANGEBYSCORE ZRANGE PEXPIREAT'),
        expiresWithLast: /PEXPIREAT'[^)]*last\[2\]/.test(code(lua)),
      }).toEqual({ file, zadd: false, trimThenExpire: false, expiresWithLast: false });
    }
    const keeping = scriptSources().filter(([, lua]) => /\bkeepIndex\(KEYS/.test(code(lua)));
    expect(keeping.map(([name]) => name).sort()).toEqual(
      [
        'cacheToken',
        'createSession',
        'indexForeign',
        'indexMember',
        'rememberFailure',
        'touchSession',
      ].sort(),
    );
    const indexMember = scriptSources().find(([name]) => name === 'indexMember')![1];
    expect(code(indexMember)).toMatch(/keepIndex\(KEYS\[1\], ARGV\[2\], ARGV\[1\], redisNow\(\), 'GT'\)/);
  });

  it("defines each include's functions once, before a script first calls them", () => {
    const defined = luaFiles()
      .filter(([file]) => file.startsWith('include/'))
      .flatMap(([, lua]) => [...code(lua).matchAll(/^local function (\w+)\(/gm)].map((m) => m[1]!));
    expect(defined).toEqual(expect.arrayContaining(['keepIndex', 'raiseStamp', 'redisNow']));
    for (const [name, lua] of scriptSources()) {
      const body = code(lua);
      for (const fn of defined) {
        const definitions = body.split(`local function ${fn}(`).length - 1;
        const firstCall = body.search(new RegExp(`(?<!function )\\b${fn}\\(`));
        if (firstCall < 0) continue;
        expect({ name, fn, definitions }).toEqual({ name, fn, definitions: 1 });
        expect({ name, fn, definedFirst: body.indexOf(`local function ${fn}(`) < firstCall }).toEqual({
          name,
          fn,
          definedFirst: true,
        });
      }
    }
  });

  it('opens every include with a header comment naming it', () => {
    for (const [file, lua] of luaFiles().filter(([f]) => f.startsWith('include/'))) {
      const name = file.slice('include/'.length, -'.lua'.length);
      expect({ file, header: lua.split('\n', 1)[0] }).toEqual({
        file,
        header: expect.stringMatching(
          new RegExp(`^-- ${name} \\(pasted into the scripts that include it\\): \\S`),
        ),
      });
    }
  });

  it('redisNow() is the Redis clock in epoch ms', async () => {
    const before = Date.now();
    const now = Number(await redis.eval(withIncludes('--#include redis-now\nreturn redisNow()', 'x.lua'), 0));
    // The test Redis runs on this host: its clock is this one.
    expect(now).toBeGreaterThanOrEqual(before - 1000);
    expect(now).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it('keepIndex() adds, trims what expired, and expires the key with its latest member', async () => {
    const prefix = uniquePrefix('keep-index');
    const key = `${prefix}:idx`;
    const lua = withIncludes(
      "--#include index-upkeep\nkeepIndex(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] ~= '' and ARGV[4] or nil)\nreturn 0",
      'x.lua',
    );
    const keep = (score: number, member: string, now: number, flag = '') =>
      redis.eval(lua, 1, key, score, member, now, flag);
    const t = Date.now();
    try {
      await keep(t + 60_000, 'a', t);
      await keep(t + 120_000, 'b', t);
      expect(await redis.pexpiretime(key)).toBe(t + 120_000);
      // GT: a lower score leaves the member as it is; without it the score moves down.
      await keep(t + 30_000, 'b', t, 'GT');
      expect(await redis.zscore(key, 'b')).toBe(String(t + 120_000));
      await keep(t + 30_000, 'b', t);
      expect(await redis.zrange(key, '0', '-1', 'WITHSCORES')).toEqual([
        'b',
        String(t + 30_000),
        'a',
        String(t + 60_000),
      ]);
      expect(await redis.pexpiretime(key)).toBe(t + 60_000);
      // `now` past b's score: b is trimmed.
      await keep(t + 90_000, 'c', t + 40_000);
      expect(await redis.zrange(key, '0', '-1')).toEqual(['a', 'c']);
      expect(await redis.pexpiretime(key)).toBe(t + 90_000);
    } finally {
      await deletePrefix(redis, prefix);
    }
  });

  /** In-memory includes, to test the expansion itself. */
  const parts: Record<string, string> = {
    outer: '-- outer\n--#include inner\nlocal function outer() return inner() end\n',
    inner: '-- inner\nlocal function inner() return 1 end',
    'loop-a': '-- loop-a\n--#include loop-b',
    'loop-b': '-- loop-b\n--#include loop-a',
    self: '--#include self',
    sloppy: '-- sloppy\n-- #include inner',
  };
  const readPart = (name: string) => {
    const part = parts[name];
    if (part === undefined) throw new Error(`no include ${name}`);
    return part;
  };

  it('expands an include inside an include, and pastes each include once, where it is first asked for', () => {
    expect(withIncludes('--#include outer\n--#include inner\nreturn outer()', 'x.lua', readPart)).toBe(
      '-- outer\n-- inner\nlocal function inner() return 1 end\nlocal function outer() return inner() end\nreturn outer()',
    );
    expect(withIncludes('--#include inner\n--#include outer\nreturn outer()', 'x.lua', readPart)).toBe(
      '-- inner\nlocal function inner() return 1 end\n-- outer\nlocal function outer() return inner() end\nreturn outer()',
    );
  });

  it('pastes redis-now once into a script that includes it beside raise-stamp, which includes it too', async () => {
    const lua = withIncludes('--#include raise-stamp\n--#include redis-now\nreturn redisNow()', 'x.lua');
    expect(lua.match(/local function redisNow\(/g)).toHaveLength(1);
    expect(lua.indexOf('local function redisNow(')).toBeLessThan(lua.indexOf('local function raiseStamp('));
    expect(lua).not.toMatch(/#\s*include/);
    expect(await redis.script('LOAD', lua)).toMatch(/^[0-9a-f]{40}$/);
  });

  it.each([
    ['loop-a', 'x.lua: include cycle loop-a -> loop-b -> loop-a'],
    ['self', 'x.lua: include cycle self -> self'],
  ])('refuses an include that includes itself: %s', (name, message) => {
    expect(() => withIncludes(`--#include ${name}\nreturn 1`, 'x.lua', readPart)).toThrow(message);
  });

  it('refuses a directive it cannot expand inside an include too', () => {
    expect(() => withIncludes('--#include sloppy\nreturn 1', 'x.lua', readPart)).toThrow(
      /^x\.lua: cannot expand '-- #include inner'$/,
    );
  });

  it('pastes an include where its directive stands', () => {
    const lua = withIncludes('local a = 1\n--#include raise-stamp\nreturn a', 'x.lua');
    expect(lua.startsWith('local a = 1\n-- raise-stamp')).toBe(true);
    expect(lua).toContain('local function raiseStamp(');
    expect(lua.endsWith('\nend\nreturn a')).toBe(true);
  });

  it.each([' --#include raise-stamp', '--#include raise_stamp', '-- #include raise-stamp', '--#include'])(
    'refuses a directive it cannot expand rather than load it as a comment: %j',
    (line) => {
      expect(() => withIncludes(`${line}\nreturn 1`, 'x.lua')).toThrow(/^x\.lua: cannot expand/);
    },
  );

  it('refuses an include that does not exist', () => {
    expect(() => withIncludes('--#include no-such-part\nreturn 1', 'x.lua')).toThrow(/no-such-part/);
  });
});
