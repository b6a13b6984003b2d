import { readFileSync } from 'node:fs';
import type { RedisClient } from './redis-client.js';

export type { RedisClient };

type Arg = string | number;
/** A defined script: its KEYS, then its ARGV (EVALSHA, the script sent again if Redis lost it). */
export type ScriptCall = (...keysThenArgs: Arg[]) => Promise<unknown>;

const DIRECTIVE = /^--#include ([a-z-]+)[ \t]*$/gm;
const ANY_DIRECTIVE = /^\s*--\s*#\s*include.*$/m;

/** `revokeUser` -> `revoke-user.lua`. */
const fileNameOf = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`) + '.lua';

/**
 * A folder of Lua scripts, each in `<name>.lua` with a header listing its KEYS and ARGV, sharing code
 * through `include/<part>.lua`: a line `--#include part` stands for that file, pasted in (BullMQ's
 * includes, without a build step). An include may include others; each is pasted once, where first
 * asked for. A directive left unexpanded would load as a comment and fail only when the script first
 * runs: it is refused here instead.
 */
export class LuaFolder {
  private readonly sources = new Map<string, string>();

  /** `dir`: the folder's URL, e.g. `new URL('./lua/', import.meta.url)`. */
  constructor(private readonly dir: URL) {}

  /** The script `name` (camelCase of its file name) as Redis gets it, includes expanded. */
  source(name: string): string {
    let lua = this.sources.get(name);
    if (lua === undefined) {
      lua = this.expand(this.read(fileNameOf(name)), fileNameOf(name));
      this.sources.set(name, lua);
    }
    return lua;
  }

  /** `lua` with its include directives expanded; `script` names it in errors. */
  expand(lua: string, script: string, pasted = new Set<string>()): string {
    const expanded = lua.replace(DIRECTIVE, (_, part: string) => {
      if (pasted.has(part)) return `-- (${part}: included above)`;
      pasted.add(part);
      return this.expand(this.read(`include/${part}.lua`), `include/${part}.lua`, pasted).trimEnd();
    });
    const left = ANY_DIRECTIVE.exec(expanded);
    if (left) throw new Error(`${script}: cannot expand '${left[0].trim()}'`);
    return expanded;
  }

  /**
   * Registers `scripts` (name -> number of KEYS, -1 when given per call) on the client with ioredis'
   * defineCommand, as `<prefix><name>` so they cannot clash with an application's own commands, and
   * returns a call for each. Defining them again on the same client reuses the first definition.
   */
  define<N extends string>(
    redis: RedisClient,
    prefix: string,
    scripts: Record<N, number>,
  ): Record<N, ScriptCall> {
    const client = redis as unknown as Record<string, unknown>;
    const calls = {} as Record<N, ScriptCall>;
    for (const [name, numberOfKeys] of Object.entries(scripts) as [N, number][]) {
      const command = `${prefix}${name}`;
      if (typeof client[command] !== 'function') {
        const lua = this.source(name);
        redis.defineCommand(command, numberOfKeys < 0 ? { lua } : { lua, numberOfKeys });
      }
      const fn = client[command] as (...args: Arg[]) => Promise<unknown>;
      calls[name] = (...args: Arg[]) => fn.apply(redis, args);
    }
    return calls;
  }

  private read(path: string): string {
    return readFileSync(new URL(path, this.dir), 'utf8');
  }
}

/**
 * The code of an error a script raised on purpose with `redis.error_reply('CODE description')`: Redis
 * sends the first word as the error's code. Undefined for any other error (a connection error, or a
 * script that failed by mistake).
 */
export function luaErrorCode<C extends string>(err: unknown, codes: readonly C[]): C | undefined {
  if (!(err instanceof Error) || err.name !== 'ReplyError') return undefined;
  const word = err.message.split(' ', 1)[0];
  return codes.find((c) => c === word);
}
