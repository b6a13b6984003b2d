import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';

export type RedisClient = Redis | Cluster;
type Arg = string | number;
export type ScriptCall = (...keysThenArgs: Arg[]) => Promise<unknown>;

/** Each Lua script: its file (next to this one, in lua/) and how many KEYS it takes (-1: given per call). */
const SCRIPTS = {
  createSession: 4,
  getSession: 3,
  touchSession: 4,
  revokeUser: 2,
  deleteEntries: -1,
  revokeHandle: 2,
  indexMember: 2,
  stampIndex: 2,
  revokeIdpUser: -1,
  indexForeign: 2,
  unlinkOwned: 1,
  saveExpressSession: 1,
} as const;

export type ScriptName = keyof typeof SCRIPTS;
export type Scripts = Record<ScriptName, ScriptCall>;

const fileName = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`) + '.lua';
const read = (path: string) => readFileSync(new URL(`./lua/${path}`, import.meta.url), 'utf8');
/**
 * A line `--#include name` stands for lua/include/name.lua: code several scripts share, pasted in. A
 * directive left unexpanded would load as a comment and fail only when the script first runs: refuse it.
 */
export function withIncludes(lua: string, script: string): string {
  const expanded = lua.replace(/^--#include ([a-z-]+)[ \t]*$/gm, (_, name: string) =>
    read(`include/${name}.lua`).trimEnd(),
  );
  const left = /^\s*--\s*#\s*include.*$/m.exec(expanded);
  if (left) throw new Error(`${script}: cannot expand '${left[0].trim()}'`);
  return expanded;
}
const sources = new Map<ScriptName, string>();
const source = (name: ScriptName): string => {
  let lua = sources.get(name);
  if (lua === undefined) {
    lua = withIncludes(read(fileName(name)), fileName(name));
    sources.set(name, lua);
  }
  return lua;
};

/** Every script's source as Redis gets it (includes expanded), by name. */
export const scriptSources = (): [ScriptName, string][] =>
  (Object.keys(SCRIPTS) as ScriptName[]).map((name) => [name, source(name)]);

/**
 * Registers the scripts on the client with ioredis' defineCommand (EVALSHA, falling back to EVAL once),
 * under names prefixed `sessionStore_` so they cannot clash with an application's own commands.
 */
export function defineScripts(redis: RedisClient): Scripts {
  const client = redis as unknown as Record<string, unknown>;
  const scripts = {} as Scripts;
  for (const [name, numberOfKeys] of Object.entries(SCRIPTS) as [ScriptName, number][]) {
    const command = `sessionStore_${name}`;
    if (typeof client[command] !== 'function') {
      redis.defineCommand(
        command,
        numberOfKeys < 0 ? { lua: source(name) } : { lua: source(name), numberOfKeys },
      );
    }
    const fn = client[command] as (...args: Arg[]) => Promise<unknown>;
    scripts[name] = (...args: Arg[]) => fn.apply(redis, args);
  }
  return scripts;
}
