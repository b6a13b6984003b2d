import { Job, type JobsOptions, type Queue } from 'bullmq';
import type { RedisClient } from '#redis';
import { LuaFolder, type ScriptCall } from '#session-store/lua';
import type { QueueKeys } from './queue-keys.js';
import { REVOKE_JOB } from './queue-names.js';
import type { RevocationCommand } from './revocation-command.js';

export interface ProducerOptions {
  /** How long a command id is remembered after it was enqueued, so a redelivery adds nothing. */
  dedupWindowMs: number;
  /** Where the dedup marks live: under the queue's prefix, whose hash tag puts them on the queue's node. */
  keys: QueueKeys;
  /** Retries, backoff and retention of each job. */
  jobOptions: JobsOptions;
  /**
   * True (the default): each command's check, job and mark as one script (BullMQ's add, wrapped: one
   * round trip per event). False, or the fused path unavailable, takes the three steps (the service's
   * `ENQUEUE_ONE_SCRIPT=false`). Tests run both.
   */
  fused?: boolean;
}

/**
 * Commands stored per round of check, jobs and marks: PingOne's largest delivery. A bigger one (up to
 * the body limit, a few thousand events) goes in several rounds, so no single MULTI holds Redis for
 * thousands of job scripts.
 */
export const ENQUEUE_BATCH = 500;

export interface EnqueueResult {
  enqueued: RevocationCommand[];
  duplicates: RevocationCommand[];
}

/**
 * The Lua that adds one job and keeps its dedup mark, as one command: BullMQ's own add script (the one
 * BullMQ chose for the job, as it sends it), wrapped so that it runs only when the command's mark is
 * absent, and the mark is set right after it added the job. One script is atomic: no delivery slips
 * between the check and the mark, and a mark is never set for a job that was not added.
 *
 * KEYS: BullMQ's keys, then the dedup mark. ARGV: BullMQ's arguments, then the dedup window (ms) and
 * the mode: `check` skips a command whose mark is there, `set` (a deliberate replay) adds and marks
 * whatever the mark says. Returns `{1, <BullMQ's reply>}` when it added (or BullMQ found the job id
 * there already, which it answers as an add), `{0}` when the mark was there, and `{-1, <code>}` when
 * BullMQ refused (its negative code), with no mark set.
 */
export function dedupAddLua(bullmqAdd: string): string {
  return [
    'local function revokerBullmqAdd()',
    bullmqAdd,
    'end',
    'local revokerMark, revokerWindow, revokerMode = KEYS[#KEYS], ARGV[#ARGV - 1], ARGV[#ARGV]',
    "if revokerMode == 'check' and redis.call('EXISTS', revokerMark) == 1 then return {0} end",
    'local revokerAdded = revokerBullmqAdd()',
    "if type(revokerAdded) == 'number' and revokerAdded < 0 then return {-1, revokerAdded} end",
    "redis.call('SET', revokerMark, '1', 'PX', revokerWindow)",
    'return {1, revokerAdded}',
    '',
  ].join('\n');
}

/** The producer's own script: a batch's dedup marks in one command (lua/mark-seen.lua). */
const lua = new LuaFolder(new URL('./lua/', import.meta.url));
const SCRIPTS = { markSeen: -1 } as const;

/** A script as ioredis keeps it once defined (BullMQ defines its own on the queue's client). */
interface DefinedScript {
  lua: string;
  numberOfKeys: number;
}

/** The script `name` as ioredis `client` keeps it, when it has one with a fixed number of keys. */
function definedScript(client: unknown, name: string): DefinedScript | undefined {
  const scripts = (client as { scriptsSet?: Record<string, Partial<DefinedScript>> } | undefined)?.scriptsSet;
  const script = scripts && Object.hasOwn(scripts, name) ? scripts[name] : undefined;
  return typeof script?.lua === 'string' && typeof script.numberOfKeys === 'number'
    ? { lua: script.lua, numberOfKeys: script.numberOfKeys }
    : undefined;
}

/** A wrapped add defined on the dedup client: its command, and how many of the keys are BullMQ's. */
interface FusedScript {
  command: string;
  keys: number;
}

/** One add as BullMQ asked for it: its script and arguments, and the answer BullMQ awaits. */
interface CapturedAdd {
  name: string;
  args: (string | number | Buffer)[];
  resolve: (reply: unknown) => void;
  reject: (err: unknown) => void;
}

/** Raised (and caught) when BullMQ's add cannot be wrapped here: the producer falls back for good. */
class NotFusable extends Error {}

/**
 * Puts commands on the revocation queue, each under its deterministic job id, remembering each id for
 * the dedup window so a redelivery enqueues nothing new even after its first job was removed.
 *
 * By default each command is one Redis command (`dedupAddLua`): the check, the job and the mark
 * together, so a one-event delivery costs one round trip and a batch one pipeline, and no event can be
 * marked seen without its job (one script is atomic). BullMQ still builds every job and its arguments
 * (`Job.addJob` on a client that hands the call over), and its own script stores it. With `fused:
 * false`, or when BullMQ's add cannot be wrapped, a batch takes three steps, in this order for
 * invariant 6 (nothing acknowledged is lost): check, jobs, then marks, so a failure in between leads
 * to a retry that enqueues again (harmless: revocations are idempotent), never to an event marked
 * seen but not queued.
 */
export class RevocationProducer {
  /** The wrapped scripts defined on `redis`, by the name of BullMQ's script they wrap. */
  private readonly fused = new Map<string, FusedScript>();
  /** False once BullMQ's add could not be wrapped (then every batch takes the three steps). */
  private fusable: boolean;
  /** The producer's scripts, defined once per client (producers share one), not per delivery. */
  private readonly scripts: Record<keyof typeof SCRIPTS, ScriptCall>;

  constructor(
    private readonly queue: Queue,
    /** A client of the queue's Redis, for the dedup marks. */
    private readonly redis: RedisClient,
    private readonly options: ProducerOptions,
  ) {
    this.fusable = options.fused ?? true;
    this.scripts = lua.define(redis, 'revoker_', SCRIPTS);
  }

  async enqueue(
    commands: RevocationCommand[],
    options: { bypassDedup?: boolean } = {},
  ): Promise<EnqueueResult> {
    // One batch, the common case, without the copies.
    if (commands.length <= ENQUEUE_BATCH) return this.enqueueBatch(commands, options);
    const result: EnqueueResult = { enqueued: [], duplicates: [] };
    // One after another: a failure leaves the earlier batches stored and marked, and the sender's
    // retry finds them duplicates.
    for (let at = 0; at < commands.length; at += ENQUEUE_BATCH) {
      const batch = await this.enqueueBatch(commands.slice(at, at + ENQUEUE_BATCH), options);
      result.enqueued.push(...batch.enqueued);
      result.duplicates.push(...batch.duplicates);
    }
    return result;
  }

  private async enqueueBatch(
    commands: RevocationCommand[],
    options: { bypassDedup?: boolean },
  ): Promise<EnqueueResult> {
    if (commands.length === 0) return { enqueued: [], duplicates: [] };
    if (this.fusable) {
      try {
        return await this.enqueueFused(commands, options);
      } catch (err) {
        if (!(err instanceof NotFusable)) throw err;
        this.fusable = false;
      }
    }
    return this.enqueueInSteps(commands, options);
  }

  /** A deliberate replay is a new command: a new id (see `enqueueInSteps`). */
  private replaySuffix(options: { bypassDedup?: boolean }): string {
    return options.bypassDedup ? `-r${Date.now().toString(36)}` : '';
  }

  /** The job of a command, as `queue.add` would make it (the queue's default options under ours). */
  private job(command: RevocationCommand, suffix: string): Job {
    const id = `${command.id}${suffix}`;
    const data = suffix ? { ...command, id } : command;
    const opts = { ...this.queue.jobsOpts, ...this.options.jobOptions, jobId: id };
    return new Job(this.queue, REVOKE_JOB, data, opts, id);
  }

  /** Check, job and mark of each command in one command (`dedupAddLua`); NotFusable before any is sent. */
  private async enqueueFused(
    commands: RevocationCommand[],
    options: { bypassDedup?: boolean },
  ): Promise<EnqueueResult> {
    const suffix = this.replaySuffix(options);
    const captured: CapturedAdd[] = [];
    // BullMQ's client contract: it sends each job's add as `runCommand(<script>, <keys and args>)`, at
    // once. A call that comes later (a BullMQ that awaited something first) cannot be matched to its
    // command: it is refused, so its add settles and the producer falls back instead of hanging.
    let capturing = true;
    const capture = {
      runCommand: (name: string, args: CapturedAdd['args']) =>
        capturing
          ? new Promise((resolve, reject) => captured.push({ name, args, resolve, reject }))
          : Promise.reject(new NotFusable("BullMQ's add asked late")),
    };
    // A job BullMQ refuses outright (its options) throws here, before anything is sent.
    const added = Promise.all(commands.map((c) => this.job(c, suffix).addJob(capture as never)));
    capturing = false;
    const giveUp = async (why: string): Promise<never> => {
      const err = new NotFusable(why);
      for (const c of captured) c.reject(err);
      await added.catch(() => undefined);
      throw err;
    };
    // BullMQ asks at once, job by job, so the i-th call is the i-th command's; if it ever stopped
    // doing so, the calls could not be matched to the commands: the three steps instead.
    if (captured.length !== commands.length) return giveUp("BullMQ's add did not ask at once");
    const scripts: FusedScript[] = [];
    for (const c of captured) {
      const script = this.fused.get(c.name) ?? (await this.defineFused(c.name));
      if (!script) return giveUp(`BullMQ's ${c.name} is not on the queue's client`);
      scripts.push(script);
    }
    const mode = options.bypassDedup ? 'set' : 'check';
    const window = String(this.options.dedupWindowMs);
    let replies: unknown[];
    try {
      replies = await this.send(
        captured.map(({ args }, i) => {
          const { command, keys } = scripts[i]!;
          // BullMQ's own arguments (a new array each call): the mark joins its keys, our two its ARGV.
          args.splice(keys, 0, this.options.keys.dedup(commands[i]!.id));
          args.push(window, mode);
          return [command, args] as const;
        }),
      );
    } catch (err) {
      for (const c of captured) c.reject(err);
      await added.catch(() => undefined);
      throw err;
    }
    const result: EnqueueResult = { enqueued: [], duplicates: [] };
    replies.forEach((reply, i) => {
      const [status, answer] = Array.isArray(reply) ? (reply as [unknown, unknown?]) : [undefined];
      const command = commands[i]!;
      // BullMQ gets its own script's answer, so it raises its own error for a refusal (`answer` < 0).
      if (status === 1) {
        result.enqueued.push(command);
        captured[i]!.resolve(answer);
      } else if (status === 0) {
        result.duplicates.push(command);
        captured[i]!.resolve(`${command.id}${suffix}`);
      } else if (status === -1) captured[i]!.resolve(answer);
      else captured[i]!.reject(new Error(`unexpected reply to the dedup add: ${String(reply)}`));
    });
    await added;
    return result;
  }

  /** Sends the wrapped adds: one command alone, several in one pipeline. */
  private async send(calls: (readonly [string, CapturedAdd['args']])[]): Promise<unknown[]> {
    if (calls.length === 1) {
      const [name, args] = calls[0]!;
      const client = this.redis as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
      return [await client[name]!(...args)];
    }
    const pipeline = this.redis.pipeline();
    const queued = pipeline as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const [name, args] of calls) void queued[name]!(...args);
    const replies = await pipeline.exec();
    if (!replies) throw new Error('the jobs were not added');
    return replies.map(([err, reply]) => {
      if (err) throw err;
      return reply;
    });
  }

  /**
   * Defines on the dedup client the wrapped form of BullMQ's script `name`, read from the queue's
   * client (where BullMQ defined it), and remembers it; undefined when it is not there to wrap.
   */
  private async defineFused(name: string): Promise<FusedScript | undefined> {
    const script =
      definedScript(this.redis, name) ?? definedScript(await this.queue.getBackend().client, name);
    if (!script) return undefined;
    const fused: FusedScript = { command: `revoker_dedup_${name}`, keys: script.numberOfKeys };
    if (typeof (this.redis as unknown as Record<string, unknown>)[fused.command] !== 'function')
      this.redis.defineCommand(fused.command, {
        lua: dedupAddLua(script.lua),
        numberOfKeys: script.numberOfKeys + 1,
      });
    this.fused.set(name, fused);
    return fused;
  }

  /** The three steps: one check for the batch, its jobs, one write of its marks. */
  private async enqueueInSteps(
    commands: RevocationCommand[],
    options: { bypassDedup?: boolean },
  ): Promise<EnqueueResult> {
    // One command per delivery for the check and one write for the marks, whatever its size: a command
    // each cost a socket write each, most of a 100-event delivery's CPU. The marks share the queue's hash
    // tag (the queue prefix), so MGET and the pipeline stay on one cluster slot.
    const seen = options.bypassDedup
      ? commands.map(() => null)
      : await this.redis.mget(commands.map((c) => this.options.keys.dedup(c.id)));
    const fresh = commands.filter((_, i) => seen[i] === null);
    const duplicates = commands.filter((_, i) => seen[i] !== null);
    if (fresh.length === 0) return { enqueued: [], duplicates };

    // A deliberate replay is a new command: a new id (so it runs even while the first job is kept,
    // and a group's fan-out derives new member ids from it rather than being deduplicated away).
    const replaySuffix = options.bypassDedup ? `-r${Date.now().toString(36)}` : '';
    const jobs = fresh.map((command) => {
      const id = `${command.id}${replaySuffix}`;
      return { name: REVOKE_JOB, data: { ...command, id }, opts: { ...this.options.jobOptions, jobId: id } };
    });
    // One job (the common PingOne delivery) goes through add: addBulk builds an ioredis pipeline, and
    // each new pipeline copies all of BullMQ's scripts onto itself (about half the enqueue's CPU).
    if (jobs.length === 1) await this.queue.add(jobs[0]!.name, jobs[0]!.data, jobs[0]!.opts);
    else await this.queue.addBulk(jobs);
    // Marks are set only if absent: of two deliveries of one event racing past the check above, both
    // added the same job id (BullMQ keeps one), and the one whose mark loses is told it was a duplicate.
    const marked = await this.mark(fresh, !options.bypassDedup);
    return {
      enqueued: fresh.filter((_, i) => marked[i]),
      duplicates: [...duplicates, ...fresh.filter((_, i) => !marked[i])],
    };
  }

  /** Sets the commands' dedup marks (only where absent, with `onlyIfAbsent`); true where one was set. */
  private async mark(commands: RevocationCommand[], onlyIfAbsent: boolean): Promise<boolean[]> {
    const { keys, dedupWindowMs } = this.options;
    if (commands.length === 1) {
      const key = keys.dedup(commands[0]!.id);
      const reply = onlyIfAbsent
        ? await this.redis.set(key, '1', 'PX', dedupWindowMs, 'NX')
        : await this.redis.set(key, '1', 'PX', dedupWindowMs);
      return [reply === 'OK'];
    }
    const marks = commands.map((c) => keys.dedup(c.id));
    const replies = (await this.scripts.markSeen(
      marks.length,
      ...marks,
      dedupWindowMs,
      onlyIfAbsent ? 'nx' : '',
    )) as number[];
    return replies.map((r) => r === 1);
  }
}
