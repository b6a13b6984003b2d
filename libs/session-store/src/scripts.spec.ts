import { afterAll, describe, expect, it } from '@jest/globals';
import { testRedis } from '../../../test/support/redis.js';
import { scriptSources, withIncludes } from './scripts.js';

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
