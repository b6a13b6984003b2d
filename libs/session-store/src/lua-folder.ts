import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';

type Arg = string | number;
/** A defined script: its KEYS, then its ARGV (EVALSHA, the script sent again if Redis lost it). */
export type ScriptCall = (...keysThenArgs: Arg[]) => Promise<unknown>;

/** `revokeUser` -> `revoke-user.lua`. */
export const luaFileName = (name: string): string =>
  name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`) + '.lua';

/**
 * A folder of Lua scripts, each in `<name>.lua` with a header listing its KEYS, ARGV and return,
 * sharing code through `include/<part>.lua`: the session store's, and any other library's that keeps
 * Lua (the quarantine's), loaded the same way.
 *
 * A line `--#include part` stands for include/part.lua, pasted in. An include may include another;
 * each is pasted once, where it is first asked for (a later directive for it is dropped), and an
 * include that includes itself, directly or not, is refused. A directive left unexpanded would load
 * as a comment and fail only when the script first runs: it is refused here instead.
 */
export class LuaFolder {
  private readonly sources = new Map<string, string>();

  /** `dir`: the folder's URL, e.g. `new URL('./lua/', import.meta.url)`. */
  constructor(private readonly dir: URL) {}

  /** The script `name` (camelCase of its file name) as Redis gets it, includes expanded. */
  source(name: string): string {
    let lua = this.sources.get(name);
    if (lua === undefined) {
      lua = this.expand(this.read(luaFileName(name)), luaFileName(name));
      this.sources.set(name, lua);
    }
    return lua;
  }

  /**
   * `lua` with its include directives expanded; `script` names it in errors. `readInclude` gives an
   * include's source by name (tests pass their own).
   */
  expand(
    lua: string,
    script: string,
    readInclude: (part: string) => string = (part) => this.read(`include/${part}.lua`),
  ): string {
    const included = new Set<string>();
    const expandIn = (text: string, chain: string[]): string =>
      text.replace(/^--#include ([a-z-]+)[ \t]*$(\n?)/gm, (_, part: string, newline: string) => {
        if (chain.includes(part))
          throw new Error(`${script}: include cycle ${[...chain, part].join(' -> ')}`);
        if (included.has(part)) return '';
        included.add(part);
        return expandIn(readInclude(part).trimEnd(), [...chain, part]) + newline;
      });
    const expanded = expandIn(lua, []);
    const left = /^\s*--\s*#\s*include.*$/m.exec(expanded);
    if (left) throw new Error(`${script}: cannot expand '${left[0].trim()}'`);
    return expanded;
  }

  /**
   * Registers `scripts` (name -> number of KEYS, -1 when given per call) on the client with ioredis'
   * defineCommand (EVALSHA, falling back to EVAL once), as `<prefix><name>` so they cannot clash with
   * an application's own commands, and returns a call for each. Defining them again on the same
   * client reuses the first definition.
   */
  define<N extends string>(
    redis: Redis | Cluster,
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
      // Bound, not wrapped in `(...args) => fn.apply(...)`: the rest array and apply cost every read.
      calls[name] = (client[command] as ScriptCall).bind(redis);
    }
    return calls;
  }

  /**
   * Script `name`, of three KEYS and no ARGV, called by EVALSHA straight: for the hottest reads, since
   * ioredis's defined commands wrap every call (a closure, a second promise, the arguments copied
   * twice), about 0.3 µs of client CPU a call. A Redis without the script (restarted, flushed, failed
   * over) answers NOSCRIPT, and that call is sent again as EVAL, which loads it for the next ones.
   */
  readOf3(redis: Redis | Cluster, name: string): (a: Arg, b: Arg, c: Arg) => Promise<unknown> {
    const lua = this.source(name);
    const sha = createHash('sha1').update(lua).digest('hex');
    return (a, b, c) =>
      redis.evalsha(sha, 3, a, b, c).catch((err: unknown) => {
        if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return redis.eval(lua, 3, a, b, c);
        throw err;
      });
  }

  private read(path: string): string {
    return readFileSync(new URL(path, this.dir), 'utf8');
  }
}

/**
 * The code of an error a script replied with on purpose, `redis.error_reply('<CODE> <message>')`,
 * when it is one of `codes`; else undefined (a connection error, or a script that failed by mistake).
 * Redis takes the first word of an error reply as its code (a reply of one word gets 'ERR' in front of
 * it, hence the message after the code), and ioredis rejects with a ReplyError (redis-errors; ioredis
 * 6's RESP errors subclass it and keep the name) whose message is the reply: its first word, compared
 * exactly with the known codes.
 */
export function luaErrorCode<C extends string>(err: unknown, codes: readonly C[]): C | undefined {
  if (!(err instanceof Error) || err.name !== 'ReplyError') return undefined;
  const code = err.message.split(' ', 1)[0];
  return codes.find((known) => known === code);
}
