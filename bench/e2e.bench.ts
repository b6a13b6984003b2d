// End-to-end revocation latency: PingOne webhook accepted (HTTP 200) -> session unreadable (getSession
// returns null), with the gateway and one worker as separate processes on a throw-away redis-server of
// the bench's own (never the shared one on 6379). Run with `npm run bench:e2e`.
//
// Processes: redis-server, the gateway (dist/apps/gateway/src/main.js, EMBEDDED_WORKER=false) and the
// worker (dist/apps/worker/src/main.js), all children of this one, which generates the load and probes
// the sessions (one ioredis connection for the probes). All are killed when the bench ends, fails or is
// interrupted. It measures, in order:
//   1. end to end at fixed rates (a ladder around 500, 2,000 and 5,000 events/s);
//   2. the floor: the same revocations by revokeUser straight on Redis from this process (no HTTP, no
//      queue) at the same rates, with the same probe;
//   3. the TTL-only store, computed (the delay is the remaining TTL);
//   4. worker throughput: a backlog of user revocations queued while the worker is stopped, then drained.
//
// First (and, with BENCH_QUICK=1, only) the table a new user would draw, from bench/user-table.ts: the
// floor, `npm start`, separate processes and the gateway with no worker, each started cold, at 1,000
// single-event POSTs a second
// (BENCH_TABLE_RATE, BENCH_TABLE_SECONDS default 13, BENCH_TABLE_WARMUP_MS default 3000).
//
// Env knobs: BENCH_SECONDS (the 500 / 2,000 / 5,000 runs, default 15: 30 would take the whole bench past
// 6 minutes, since the backlog of a rate the worker cannot sustain takes about as long again to drain),
// BENCH_SEARCH_SECONDS (the other rungs of the ladder, default 10), BENCH_FLOOR_SECONDS (default 10),
// BENCH_EVENTS_PER_POST (default 10), BENCH_SINGLE_RATES (rates also run at one event per POST, default
// 500,2000), BENCH_C64_RATES (rates also run with WORKER_CONCURRENCY=64, default 2000),
// BENCH_PROBED_PER_SECOND (events probed per second, default 200), BENCH_RATES (comma-separated ladder),
// BENCH_SKIP (comma-separated: e2e, floor, throughput), BENCH_WORKER_NODE_ARGS (extra node options of
// the worker), BENCH_PROFILE_DIR (CPU-profile each worker-throughput drain into that directory).
import { randomUUID } from 'node:crypto';
import { Agent } from 'node:http';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { commandId } from '#revocation';
import { SessionStore } from '#session-store';
import {
  type Child,
  type CpuReading,
  cpuMeter,
  cpuSeconds,
  httpOk,
  loadAverage,
  sparePort,
  spawnChild,
  startRedis,
  waitFor,
} from './procs.js';
import { int, ms, pct, percentile, printMarkdown, printTable, Samples } from './stats.js';
import { pingOneEventMaker, pool, postWebhook } from './load.js';
import { runUserTable } from './user-table.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const SECONDS = env('BENCH_SECONDS', 15);
const SEARCH_SECONDS = env('BENCH_SEARCH_SECONDS', 10);
const FLOOR_SECONDS = env('BENCH_FLOOR_SECONDS', 10);
const EVENTS_PER_POST = env('BENCH_EVENTS_PER_POST', 10);
/** Rates also run with one event per POST (BENCH_SEARCH_SECONDS each), to show what batching costs. */
const SINGLE_RATES = (process.env['BENCH_SINGLE_RATES'] ?? '500,2000').split(',').filter(Boolean).map(Number);
/** Rates run again (BENCH_SEARCH_SECONDS each) with a worker of WORKER_CONCURRENCY=64 instead of the default 16. */
const C64_RATES = (process.env['BENCH_C64_RATES'] ?? '2000').split(',').filter(Boolean).map(Number);
const PROBED_PER_SECOND = env('BENCH_PROBED_PER_SECOND', 200);
const MAIN_RATES = [500, 2_000, 5_000];
const LADDER = (process.env['BENCH_RATES'] ?? '500,1000,1500,2000,3000,4000,5000,7500,10000')
  .split(',')
  .map(Number);
const SKIP = new Set((process.env['BENCH_SKIP'] ?? '').split(','));
/** When set, each worker-throughput drain is CPU-profiled into this directory (see e2e-cpu-profile.ts). */
const PROFILE_DIR = process.env['BENCH_PROFILE_DIR'];
/** Worker throughput runs: users x sessions each, at each concurrency. */
const BACKLOGS = [
  { users: 10_000, sessions: 10 },
  { users: 1_000, sessions: 100 },
];
const CONCURRENCIES = [16, 64];

const TARGET_P99_MS = 10;
const TARGET_RATE = 2_000;
const TARGET_SESSIONS_PER_SECOND = 50_000;

const TTL_SECONDS = 3600;
const WEBHOOK_SECRET = 'bench-e2e-webhook-secret-0123456789';
const TAG_SECRET = 'bench-e2e-session-tag-secret-0123456789';
const SESSION_PREFIX = 'e2e';
const QUEUE_PREFIX = '{e2e}';
const QUEUE = 'revocations';
/** A sampled session still readable this long after its event counts as never revoked. */
const GIVE_UP_MS = 120_000;
const DRAIN_TIMEOUT_MS = 180_000;

// ---------------------------------------------------------------- the service under test

interface Ctx {
  redisServer: Child;
  gateway: Child;
  worker: Child | null;
  workerConcurrency: number;
  sweeps: SweepWatch;
  /** Monitoring and loading. */
  redis: Redis;
  /** Probes only: one connection, nothing else on it. */
  probeRedis: Redis;
  /** The floor's revocations only. */
  revokeRedis: Redis;
  store: SessionStore;
  probeStore: SessionStore;
  revokeStore: SessionStore;
  queue: Queue;
}

const serviceEnv = (redisPort: number): Record<string, string> => ({
  REDIS_URL: `redis://127.0.0.1:${redisPort}`,
  QUEUE_PREFIX,
  SESSION_PREFIX,
  SESSION_TAG_SECRET: TAG_SECRET,
  PINGONE_WEBHOOK_SECRET: WEBHOOK_SECRET,
  CLOCK_SKEW_MS: '0',
  LOG_LEVEL: 'warn',
});

async function startGateway(redisPort: number): Promise<Child> {
  const port = await sparePort();
  const child = spawnChild('gateway', port, process.execPath, ['dist/apps/gateway/src/main.js'], {
    ...serviceEnv(redisPort),
    PORT: String(port),
    EMBEDDED_WORKER: 'false',
  });
  await waitFor(child, httpOk(port, '/health/live'));
  return child;
}

/** Spawns a worker without waiting for it: it takes jobs as soon as it has booted. */
async function spawnWorker(redisPort: number, concurrency = 16): Promise<Child> {
  const port = await sparePort();
  const nodeArgs = (process.env['BENCH_WORKER_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
  if (PROFILE_DIR) nodeArgs.push('--import', './dist/bench/e2e-cpu-profile.js');
  return spawnChild('worker', port, process.execPath, [...nodeArgs, 'dist/apps/worker/src/main.js'], {
    ...serviceEnv(redisPort),
    WORKER_PORT: String(port),
    WORKER_CONCURRENCY: String(concurrency),
  });
}

async function startWorker(redisPort: number, concurrency = 16): Promise<Child> {
  const child = await spawnWorker(redisPort, concurrency);
  await waitFor(child, httpOk(child.port, '/health/live'));
  return child;
}

/** session_revoker_sessions_revoked_total of the worker, summed over its labels. */
async function workerRevoked(worker: Child): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${worker.port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith('session_revoker_sessions_revoked_total')) sum += Number(line.split(' ').pop());
  return sum;
}

/** Jobs not yet done: waiting (incl. prioritized and delayed) and active. */
async function queueCounts(queue: Queue): Promise<{ waiting: number; active: number }> {
  const c = await queue.getJobCounts('wait', 'prioritized', 'delayed', 'active', 'failed');
  if (c['failed']) throw new Error(`${c['failed']} revocation jobs failed`);
  return { waiting: c['wait']! + c['prioritized']! + c['delayed']!, active: c['active']! };
}

// ---------------------------------------------------------------- users and events

interface Cohort {
  userIds: string[];
  loadMs: number;
  /** One session of each user, the one probed. */
  probeSession: string[];
  sessions: number;
}

/** `n` fresh users, user i holding sessionsOf(i) sessions of TTL_SECONDS, made by createSession. */
async function makeUsers(store: SessionStore, n: number, sessionsOf: (i: number) => number): Promise<Cohort> {
  const t0 = performance.now();
  const userIds = Array.from({ length: n }, () => randomUUID());
  const probeSession: string[] = new Array(n);
  let sessions = 0;
  await pool(n, 128, async (i) => {
    for (let s = sessionsOf(i); s > 0; s--) {
      const { sessionId } = await store.createSession({
        userId: userIds[i]!,
        ttlSeconds: TTL_SECONDS,
        claims: { name: 'Bench User', amr: ['pwd'] },
      });
      probeSession[i] ??= sessionId;
      sessions++;
    }
  });
  // Issued strictly before every event that follows (the not-before compares milliseconds).
  await sleep(2);
  return { userIds, probeSession, sessions, loadMs: performance.now() - t0 };
}

const RUN_TAG = Date.now().toString(36);
/** Offsets printed with each run, to match them with the sweeps listed at the end. */
const BENCH_START = performance.now();
const since = (t: number) => `+${((t - BENCH_START) / 1000).toFixed(0)} s`;
/** Every user gets exactly one event, so its id can be derived from the (fresh, random) user id. */
const eventIdOf = (userId: string) => `e2e-${RUN_TAG}-${userId}`;
/** The BullMQ job of a user's event: the gateway uses the command id as the job id. */
const jobKeyOf = (userId: string) => `${QUEUE_PREFIX}:${QUEUE}:${commandId('pingone', eventIdOf(userId))}`;

/** One PingOne event for a given user, under its derived event id (see pingOneEventMaker). */
const pingOneEvent = pingOneEventMaker();
const makeEvent = (userId: string) => pingOneEvent(eventIdOf(userId), userId);

// ---------------------------------------------------------------- probing

interface Pending {
  sessionId: string;
  userId: string;
  /** performance.now() when the revocation was accepted: the 200 (e2e) or the revokeUser call (floor). */
  accepted: number;
  /** When the POST (or call) was due by the schedule. */
  due: number;
  probes: number;
  /** Not to be read again before this instant. */
  next: number;
}

/** Read back to back for this long after acceptance; past it, every 10% of the time elapsed. */
const TIGHT_MS = 20;

/**
 * Reads the probed sessions with getSession until each reads null. One loop on one connection: each
 * round reads every due session at once (one round trip for all), and the next round starts when it
 * returns, so a delay is known to within one round (its median is reported as the resolution). The
 * time recorded is when the round that saw null returned: an upper bound. A session still readable
 * TIGHT_MS after acceptance is read again only after another 10% of the time elapsed so far, so a
 * backlog of thousands does not turn the probe into a load of its own (such delays, far past the
 * target, are then overstated by at most 10%).
 */
class Prober {
  readonly delays = new Samples();
  readonly fromDue = new Samples();
  readonly rounds = new Samples();
  /** Sampled users whose session read null, for the job-timing breakdown. */
  readonly resolved: string[] = [];
  probes = 0;
  firstProbeNull = 0;
  unresolved = 0;
  private pending: Pending[] = [];
  private wake: (() => void) | null = null;
  private stopping = false;
  private readonly done: Promise<void>;

  constructor(private readonly store: SessionStore) {
    this.done = this.loop();
  }

  add(p: Omit<Pending, 'probes' | 'next'>): void {
    this.pending.push({ ...p, probes: 0, next: 0 });
    this.wake?.();
  }

  get waiting(): number {
    return this.pending.length;
  }

  /** Resolves when every added session read null (or was given up on). */
  async finish(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.done;
  }

  /** Sleeps until `ms` passed or a session is added, whichever is first. */
  private nap(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === Infinity ? undefined : setTimeout(resolve, Math.max(1, ms));
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }

  private async loop(): Promise<void> {
    for (;;) {
      if (this.pending.length === 0 && this.stopping) return;
      const now = performance.now();
      const batch: Pending[] = [];
      const later: Pending[] = [];
      let earliest = Infinity;
      for (const p of this.pending) {
        if (p.next <= now) batch.push(p);
        else {
          later.push(p);
          earliest = Math.min(earliest, p.next);
        }
      }
      this.pending = later;
      if (batch.length === 0) {
        await this.nap(earliest - now);
        continue;
      }
      const reads = await Promise.all(batch.map((p) => this.store.getSession(p.sessionId)));
      const t1 = performance.now();
      this.rounds.push(t1 - now);
      this.probes += batch.length;
      for (const [i, p] of batch.entries()) {
        p.probes++;
        const elapsed = t1 - p.accepted;
        if (reads[i] === null) {
          this.delays.push(elapsed);
          this.fromDue.push(t1 - p.due);
          this.resolved.push(p.userId);
          if (p.probes === 1) this.firstProbeNull++;
        } else if (elapsed > GIVE_UP_MS) this.unresolved++;
        else {
          p.next = elapsed < TIGHT_MS ? 0 : t1 + elapsed * 0.1;
          this.pending.push(p);
        }
      }
    }
  }
}

/**
 * Watches, every 100 ms, whether the worker is running its index sweep (a `sweep` job on the maintenance
 * queue's active list), so each run can say how long a sweep overlapped it.
 */
class SweepWatch {
  private readonly spans: [number, number][] = [];
  private open: number | null = null;
  private stopped = false;
  private readonly running: Promise<void>;

  constructor(redis: Redis) {
    const key = `${QUEUE_PREFIX}:maintenance:active`;
    this.running = (async () => {
      while (!this.stopped) {
        const active = (await redis.lrange(key, 0, -1).catch(() => [])).some((id) => id.includes('sweep'));
        const now = performance.now();
        if (active && this.open === null) this.open = now;
        if (!active && this.open !== null) {
          this.spans.push([this.open, now]);
          this.open = null;
        }
        await sleep(100);
      }
    })();
  }

  /** Milliseconds of [from, to] during which a sweep ran. */
  overlap(from: number, to: number): number {
    const spans: [number, number][] =
      this.open === null ? this.spans : [...this.spans, [this.open, performance.now()]];
    return spans.reduce((sum, [a, b]) => sum + Math.max(0, Math.min(b, to) - Math.max(a, from)), 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }
}

// ---------------------------------------------------------------- one run at a fixed rate

interface RunResult {
  kind: 'e2e' | 'floor';
  /** Events per POST (e2e). */
  perPost: number;
  /** WORKER_CONCURRENCY of the worker (e2e). */
  concurrency: number;
  rate: number;
  seconds: number;
  events: number;
  failed: number;
  /** Sessions held by the users whose events were sent, and sessions the worker (or revokeUser) deleted. */
  expectedSessions: number;
  revokedSessions: number;
  probed: number;
  prober: Prober;
  /** How late the generator sent (its own lag), and the HTTP answer (or revokeUser) time from due. */
  sendLag: Float64Array;
  answer: Float64Array;
  /** Jobs waiting (e2e) or calls in flight (floor), sampled every 250 ms while sending. */
  backlogMean2ndHalf: number;
  backlogMax: number;
  /** From the last send to queue empty and every probe resolved. */
  drainMs: number;
  /** CPU over the sending and the drain. */
  cpu: CpuReading;
  /** Preloading the users' sessions (before the clock starts). */
  loadMs: number;
  /** e2e: BullMQ's own times of the probed events' jobs still kept (ms): queued -> taken, taken -> done. */
  jobs?: { found: number; wait: Float64Array; run: Float64Array };
  loadAvg: string;
  /** performance.now() when sending started. */
  startedAt: number;
  /** Milliseconds of the run (sending and drain) during which the worker ran its index sweep. */
  sweepMs: number;
}

const sustained = (r: RunResult) =>
  r.failed === 0 &&
  r.prober.unresolved === 0 &&
  r.revokedSessions === r.expectedSessions &&
  r.backlogMean2ndHalf <= Math.max(50, r.rate * 0.1);
const p99 = (r: RunResult) => percentile(r.prober.delays.sorted(), 0.99);
const meetsTarget = (r: RunResult) => sustained(r) && p99(r) < TARGET_P99_MS;
/** The load generator itself fell behind its schedule (this process starved of CPU): the run says less. */
const generatorLagged = (r: RunResult) => percentile(r.sendLag, 0.99) > 20;
const verdict = (r: RunResult) =>
  (!sustained(r) ? 'NOT sustained' : meetsTarget(r) ? 'ok, p99 < 10 ms' : 'sustained, p99 >= 10 ms') +
  (generatorLagged(r) ? ' (generator lagged)' : '');

/**
 * Open loop: unit i (a POST of EVENTS_PER_POST events, or one revokeUser call) is due at
 * start + i * interval whatever happened to earlier ones; a 1 ms timer sends whatever is due.
 */
async function paced(
  units: number,
  intervalMs: number,
  send: (i: number, due: number) => Promise<void>,
): Promise<{ sendLag: Float64Array; last: number }> {
  const lag = new Samples();
  const inFlight: Promise<void>[] = [];
  let sent = 0;
  const start = performance.now() + 5;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      while (sent < units && start + sent * intervalMs <= now) {
        const due = start + sent * intervalMs;
        lag.push(performance.now() - due);
        inFlight.push(send(sent++, due));
      }
      if (sent === units) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  await Promise.all(inFlight);
  return { sendLag: lag.sorted(), last: performance.now() };
}

function backlogMonitor(read: () => Promise<number>): () => Promise<{ mean2nd: number; max: number }> {
  const samples: number[] = [];
  let stopped = false;
  const running = (async () => {
    while (!stopped) {
      samples.push(await read());
      await sleep(250);
    }
  })();
  return async () => {
    stopped = true;
    await running;
    const second = samples.slice(Math.floor(samples.length / 2));
    return {
      mean2nd: second.reduce((a, b) => a + b, 0) / Math.max(1, second.length),
      max: Math.max(0, ...samples),
    };
  };
}

const agent = new Agent({ keepAlive: true, maxSockets: 256 });

const bodyOf = (userIds: string[]) =>
  userIds.length === 1 ? makeEvent(userIds[0]!) : `[${userIds.map(makeEvent).join(',')}]`;

async function drain(ctx: Ctx, prober: Prober): Promise<void> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  for (;;) {
    const { waiting, active } = await queueCounts(ctx.queue);
    if (waiting + active === 0 && prober.waiting === 0) return;
    if (Date.now() > deadline) throw new Error(`queue not drained after ${DRAIN_TIMEOUT_MS} ms`);
    await sleep(20);
  }
}

const pids = (ctx: Ctx) => ({
  gateway: () => ctx.gateway.pid,
  worker: () => ctx.worker?.pid ?? -1,
  redis: () => ctx.redisServer.pid,
});

async function runE2E(
  ctx: Ctx,
  rate: number,
  seconds: number,
  perPost = EVENTS_PER_POST,
  quiet = false,
): Promise<RunResult> {
  const worker = ctx.worker!;
  const posts = Math.round((rate * seconds) / perPost);
  const n = posts * perPost;
  const cohort = await makeUsers(ctx.store, n, (i) => 1 + (i % 3));
  const every = Math.max(1, Math.round(rate / PROBED_PER_SECOND));
  const revokedBefore = await workerRevoked(worker);
  const answer = new Samples();
  let failed = 0;
  let probed = 0;
  const prober = new Prober(ctx.probeStore);
  const stopMonitor = backlogMonitor(async () => (await queueCounts(ctx.queue)).waiting);
  const meter = cpuMeter(pids(ctx));
  const loadAvg = loadAverage();
  const startedAt = performance.now();
  const { sendLag, last } = await paced(posts, (1000 * perPost) / rate, async (j, due) => {
    const first = j * perPost;
    const users = cohort.userIds.slice(first, first + perPost);
    const status = await postWebhook(agent, ctx.gateway.port, WEBHOOK_SECRET, bodyOf(users));
    const at = performance.now();
    if (status !== 200) {
      failed += users.length;
      return;
    }
    answer.push(at - due);
    for (let i = first; i < first + users.length; i++)
      if (i % every === 0) {
        probed++;
        prober.add({ sessionId: cohort.probeSession[i]!, userId: cohort.userIds[i]!, accepted: at, due });
      }
  });
  const backlog = await stopMonitor();
  await drain(ctx, prober);
  const drainMs = performance.now() - last;
  const cpu = meter();
  await prober.finish();
  const jobs = await jobTimes(ctx, prober.resolved);
  const result: RunResult = {
    kind: 'e2e',
    perPost,
    concurrency: ctx.workerConcurrency,
    loadMs: cohort.loadMs,
    jobs,
    rate,
    seconds,
    events: n,
    failed,
    expectedSessions: cohort.sessions,
    revokedSessions: (await workerRevoked(worker)) - revokedBefore,
    probed,
    prober,
    sendLag,
    answer: answer.sorted(),
    backlogMean2ndHalf: backlog.mean2nd,
    backlogMax: backlog.max,
    drainMs,
    cpu,
    loadAvg,
    startedAt,
    sweepMs: ctx.sweeps.overlap(startedAt, performance.now()),
  };
  if (!quiet) console.log(`  ${summary(result)}`);
  return result;
}

async function runFloor(ctx: Ctx, rate: number, seconds: number, quiet = false): Promise<RunResult> {
  const n = Math.round(rate * seconds);
  const cohort = await makeUsers(ctx.store, n, (i) => 1 + (i % 3));
  const every = Math.max(1, Math.round(rate / PROBED_PER_SECOND));
  const answer = new Samples();
  let failed = 0;
  let probed = 0;
  let revoked = 0;
  let inFlight = 0;
  const prober = new Prober(ctx.probeStore);
  const stopMonitor = backlogMonitor(async () => inFlight);
  const meter = cpuMeter(pids(ctx));
  const loadAvg = loadAverage();
  const startedAt = performance.now();
  const { sendLag, last } = await paced(n, 1000 / rate, async (i, due) => {
    const at = performance.now();
    inFlight++;
    if (i % every === 0) {
      probed++;
      prober.add({ sessionId: cohort.probeSession[i]!, userId: cohort.userIds[i]!, accepted: at, due });
    }
    try {
      const result = await ctx.revokeStore.revokeUser(cohort.userIds[i]!, { notBefore: Date.now() });
      revoked += result.revoked;
      answer.push(performance.now() - due);
    } catch {
      failed++;
    } finally {
      inFlight--;
    }
  });
  const backlog = await stopMonitor();
  await prober.finish();
  const cpu = meter();
  const result: RunResult = {
    kind: 'floor',
    perPost: 1,
    concurrency: 0,
    loadMs: cohort.loadMs,
    rate,
    seconds,
    events: n,
    failed,
    expectedSessions: cohort.sessions,
    revokedSessions: revoked,
    probed,
    prober,
    sendLag,
    answer: answer.sorted(),
    backlogMean2ndHalf: backlog.mean2nd,
    backlogMax: backlog.max,
    drainMs: performance.now() - last,
    cpu,
    loadAvg,
    startedAt,
    sweepMs: ctx.sweeps.overlap(startedAt, performance.now()),
  };
  if (!quiet) console.log(`  ${summary(result)}`);
  return result;
}

/**
 * BullMQ's timestamps (ms, Date.now() of the gateway and the worker) of the probed events' jobs, while
 * they are still kept (the newest COMPLETED_JOBS_MAX_COUNT = 10,000): timestamp (added by the gateway),
 * processedOn (taken by the worker), finishedOn (done, after the audit entry).
 */
async function jobTimes(ctx: Ctx, userIds: string[]): Promise<RunResult['jobs']> {
  const pipeline = ctx.redis.pipeline();
  for (const u of userIds) pipeline.hmget(jobKeyOf(u), 'timestamp', 'processedOn', 'finishedOn');
  const wait = new Samples();
  const run = new Samples();
  for (const [err, row] of (await pipeline.exec()) ?? []) {
    const [added, taken, done] = (err ? [] : (row as (string | null)[])).map(Number);
    if (!added || !taken || !done) continue;
    wait.push(taken - added);
    run.push(done - taken);
  }
  return { found: wait.length, wait: wait.sorted(), run: run.sorted() };
}

function summary(r: RunResult): string {
  const d = r.prober.delays.sorted();
  return (
    `[${since(r.startedAt)}] ${label(r)} ${int(r.rate)}/s x ${r.seconds} s: accepted -> unreadable p50 ${ms(percentile(d, 0.5))} ` +
    `p95 ${ms(percentile(d, 0.95))} p99 ${ms(percentile(d, 0.99))} ms (${int(d.length)} probed), ` +
    `backlog ${int(r.backlogMean2ndHalf)} (max ${int(r.backlogMax)}), drain ${ms(r.drainMs)} ms, ` +
    `sessions ${int(r.revokedSessions)}/${int(r.expectedSessions)} (loaded in ${ms(r.loadMs)} ms)` +
    (r.sweepMs ? `, index sweep ran ${int(r.sweepMs)} ms of it` : '') +
    (r.failed ? `, ${r.failed} failed` : '') +
    ` -> ${verdict(r)}`
  );
}

// ---------------------------------------------------------------- worker throughput

interface ThroughputResult {
  users: number;
  sessionsEach: number;
  concurrency: number;
  enqueueMs: number;
  drainMs: number;
  revoked: number;
  /** Redis commands per job over the drain (INFO commandstats), the most called first. */
  redisPerJob: { command: string; calls: number }[];
  cpu: CpuReading;
  loadAvg: string;
}

/**
 * Queues one user revocation per user through the gateway while no worker runs, then starts a worker
 * and times it from its first job taken to the queue empty (polled every 10 ms).
 */
async function runThroughput(
  ctx: Ctx,
  users: number,
  sessionsEach: number,
  concurrency: number,
): Promise<ThroughputResult> {
  if (ctx.worker) await ctx.worker.stop();
  ctx.worker = null;
  ctx.workerConcurrency = concurrency;
  const cohort = await makeUsers(ctx.store, users, () => sessionsEach);
  const enqueueStart = performance.now();
  const perPost = 100;
  await pool(Math.ceil(users / perPost), 4, async (j) => {
    const status = await postWebhook(
      agent,
      ctx.gateway.port,
      WEBHOOK_SECRET,
      bodyOf(cohort.userIds.slice(j * perPost, (j + 1) * perPost)),
    );
    if (status !== 200) throw new Error(`enqueue POST answered ${status}`);
  });
  const enqueueMs = performance.now() - enqueueStart;
  const queued = await queueCounts(ctx.queue);
  if (queued.waiting !== users) throw new Error(`expected ${users} jobs waiting, found ${queued.waiting}`);
  await ctx.redis.config('RESETSTAT');
  const signal = () => PROFILE_DIR && ctx.worker && process.kill(ctx.worker.pid, 'SIGUSR2');

  const polling = (async () => {
    let started = 0;
    let meter: (() => CpuReading) | null = null;
    let loadAvg = '';
    const deadline = Date.now() + DRAIN_TIMEOUT_MS;
    for (;;) {
      if (ctx.worker && !ctx.worker.alive()) throw new Error(`worker exited\n${ctx.worker.log()}`);
      if (Date.now() > deadline) throw new Error(`backlog not drained after ${DRAIN_TIMEOUT_MS} ms`);
      const { waiting, active } = await queueCounts(ctx.queue);
      const now = performance.now();
      if (!started && waiting < users) {
        started = now;
        console.log(`  [${since(now)}] worker took its first job`);
        signal();
        meter = cpuMeter(pids(ctx));
        loadAvg = loadAverage();
      }
      if (started && waiting + active === 0) {
        const cpu = meter!();
        signal();
        return { drainMs: now - started, cpu, loadAvg };
      }
      await sleep(started ? 10 : 2);
    }
  })();
  ctx.worker = await spawnWorker(ctx.redisServer.port, concurrency);
  const { drainMs, cpu, loadAvg } = await polling;
  if (PROFILE_DIR) await sleep(1_500); // let the worker write its profile
  await waitFor(ctx.worker, httpOk(ctx.worker.port, '/health/live'));
  const redisPerJob = parseCommandStats(await ctx.redis.info('commandstats'), users);
  const revoked = await workerRevoked(ctx.worker);
  if (revoked !== cohort.sessions)
    throw new Error(`worker revoked ${revoked} of ${cohort.sessions} sessions`);
  const r = { users, sessionsEach, concurrency, enqueueMs, drainMs, revoked, cpu, loadAvg, redisPerJob };
  console.log(
    `  ${int(users)} users x ${sessionsEach} sessions, concurrency ${concurrency}: drained in ${ms(drainMs)} ms, ` +
      `${int(revoked / (drainMs / 1000))} sessions/s, ${int(users / (drainMs / 1000))} jobs/s, ` +
      `worker CPU ${pct(cores(cpu, 'worker'))}, redis ${pct(cores(cpu, 'redis'))}`,
  );
  return r;
}

/**
 * `cmdstat_<name>:calls=..` lines, per job, the most called first (info itself left out). Commands a
 * Lua script runs count here too, under their own names, besides the evalsha that ran them.
 */
function parseCommandStats(info: string, jobs: number): ThroughputResult['redisPerJob'] {
  const out: ThroughputResult['redisPerJob'] = [];
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    if (m[1] !== 'info' && m[1] !== 'config') out.push({ command: m[1]!, calls: Number(m[2]) / jobs });
  return out.sort((a, b) => b.calls - a.calls);
}

// ---------------------------------------------------------------- report

/** Cores a process used on average over the reading (1 = one core busy all the time). */
const cores = (c: CpuReading, who: string) => (c.seconds[who] ?? 0) / c.wall;
const cpuCell = (c: CpuReading) =>
  ['gateway', 'worker', 'redis', 'bench', 'others'].map((k) => pct(cores(c, k))).join(' / ');
/** CPU µs per event of the gateway, the worker and Redis. */
const perEventCell = (c: CpuReading, events: number) =>
  ['gateway', 'worker', 'redis'].map((k) => int(((c.seconds[k] ?? 0) * 1e6) / events)).join(' / ');
const label = (r: RunResult) =>
  r.kind === 'e2e'
    ? `webhook (${r.perPost}/POST) -> worker${r.concurrency === 16 ? '' : ` (c${r.concurrency})`}`
    : 'floor: revokeUser, no HTTP/queue';

const RUN_HEADER = [
  'path',
  'events/s',
  's',
  'probed',
  'p50 ms',
  'p95 ms',
  'p99 ms',
  'max ms',
  '1st probe null',
  'HTTP/call p50 / p99 ms',
  'job wait p50 / p99 ms',
  'job run p50 / p99 ms',
  'send lag p99 ms',
  'backlog 2nd half (max)',
  'drain ms',
  'sessions revoked',
  'CPU gw / worker / redis / bench / others',
  'CPU µs/event gw / worker / redis',
  'sweep ms',
  'load avg',
  'verdict',
];

function runRow(r: RunResult): string[] {
  const d = r.prober.delays.sorted();
  return [
    label(r),
    int(r.rate),
    String(r.seconds),
    int(d.length),
    ms(percentile(d, 0.5)),
    ms(percentile(d, 0.95)),
    ms(percentile(d, 0.99)),
    ms(percentile(d, 1)),
    pct(r.prober.firstProbeNull / Math.max(1, d.length)),
    `${ms(percentile(r.answer, 0.5))} / ${ms(percentile(r.answer, 0.99))}`,
    r.jobs ? `${ms(percentile(r.jobs.wait, 0.5))} / ${ms(percentile(r.jobs.wait, 0.99))}` : '-',
    r.jobs ? `${ms(percentile(r.jobs.run, 0.5))} / ${ms(percentile(r.jobs.run, 0.99))}` : '-',
    ms(percentile(r.sendLag, 0.99)),
    `${int(r.backlogMean2ndHalf)} (${int(r.backlogMax)})`,
    ms(r.drainMs),
    `${int(r.revokedSessions)}/${int(r.expectedSessions)}`,
    cpuCell(r.cpu),
    perEventCell(r.cpu, r.events),
    int(r.sweepMs),
    r.loadAvg.split(' ')[0]!,
    verdict(r),
  ];
}

const TTL_ROWS = [900, 3600, 8 * 3600];
const minutes = (s: number) =>
  s >= 3600 ? `${(s / 3600).toFixed(s % 3600 ? 2 : 0)} h` : `${(s / 60).toFixed(1)} min`;

function report(
  e2e: RunResult[],
  single: RunResult[],
  floor: RunResult[],
  throughput: ThroughputResult[],
): void {
  const runs = [...e2e, ...single, ...floor];
  console.log(
    "\n1-2. accepted -> unreadable, ms. e2e: from the webhook's 200 to the first getSession that reads null;\n" +
      '     floor: from the revokeUser call to the same. "1st probe null": share already unreadable at the first read.\n' +
      '     backlog: e2e = jobs waiting in the queue, floor = revokeUser calls in flight. CPU in cores (100% = one core)\n' +
      '     and in CPU µs per event, over the sending and the drain. job wait / run: BullMQ timestamps (ms) of the\n' +
      "     probed events' jobs: added by the gateway -> taken by the worker -> done. sweep ms: time of the run\n" +
      '     (sending and drain) during which the worker ran its index sweep.\n',
  );
  printTable(RUN_HEADER, runs.map(runRow), 1);

  const rounds = new Samples();
  for (const r of runs) for (const v of r.prober.rounds.sorted()) rounds.push(v);
  const roundSorted = rounds.sorted();
  const probeRate = runs.map((r) => r.prober.probes / r.cpu.wall);
  console.log(
    `\n     probe resolution (one probe round, all runs): p50 ${ms(percentile(roundSorted, 0.5))} ms, ` +
      `p99 ${ms(percentile(roundSorted, 0.99))} ms; probe load ${int(Math.min(...probeRate))}-${int(Math.max(...probeRate))} getSession/s`,
  );

  const good = e2e.filter(sustained).map((r) => r.rate);
  const target = e2e.filter(meetsTarget).map((r) => r.rate);
  const at2k = e2e.find((r) => r.rate === TARGET_RATE);
  console.log(
    `\n     highest sustained e2e rate tried: ${good.length ? int(Math.max(...good)) : 'none'} events/s; ` +
      `highest with p99 < ${TARGET_P99_MS} ms: ${target.length ? int(Math.max(...target)) : 'none'} events/s` +
      (at2k ? `; at ${int(TARGET_RATE)}/s p99 = ${ms(p99(at2k))} ms (target < ${TARGET_P99_MS} ms)` : ''),
  );

  console.log(
    '\n3. TTL-only store (COMPUTED, not measured): a session stays readable until its TTL runs out. Sessions of\n' +
      '   TTL T issued uniformly over the past T have a remaining TTL uniform on [0, T]: p50 T/2, p95 0.95 T, p99 0.99 T.\n',
  );
  const ttlRows = TTL_ROWS.map((t) => [
    minutes(t),
    minutes(t * 0.5),
    minutes(t * 0.95),
    minutes(t * 0.99),
    at2k ? `${int((t * 500) / percentile(at2k.prober.delays.sorted(), 0.5))}x` : '-',
  ]);
  const ttlHeader = ['TTL', 'p50', 'p95', 'p99', `p50 vs e2e p50 at ${int(TARGET_RATE)}/s`];
  printTable(ttlHeader, ttlRows);

  const tpHeader = [
    'backlog',
    'concurrency',
    'drain s',
    'jobs/s',
    'sessions/s',
    'worker CPU',
    'sessions per worker CPU-s',
    'CPU µs/job worker / redis',
    'CPU gw / worker / redis / bench / others',
    'load avg',
  ];
  const tpRows = throughput.map((t): string[] => [
    `${int(t.users)} users x ${t.sessionsEach}`,
    String(t.concurrency),
    (t.drainMs / 1000).toFixed(2),
    int(t.users / (t.drainMs / 1000)),
    int(t.revoked / (t.drainMs / 1000)),
    pct(cores(t.cpu, 'worker')),
    int(t.revoked / t.cpu.seconds['worker']!),
    `${int((t.cpu.seconds['worker']! * 1e6) / t.users)} / ${int((t.cpu.seconds['redis']! * 1e6) / t.users)}`,
    cpuCell(t.cpu),
    t.loadAvg.split(' ')[0]!,
  ]);
  console.log(
    `\n4. Worker throughput: one worker process, backlog queued through the gateway with no worker running,\n` +
      `   timed from its first job taken to the queue empty. Target: ${int(TARGET_SESSIONS_PER_SECOND)} sessions/s per process.\n`,
  );
  printTable(tpHeader, tpRows);
  console.log(
    '\n   Redis commands per job over each drain (INFO commandstats; commands run inside Lua scripts count\n' +
      "   under their own names as well; includes the bench's 10 ms queue polling and the worker's start-up sweep):",
  );
  for (const t of throughput) {
    const top = t.redisPerJob
      .slice(0, 14)
      .map((c) => `${c.command} ${c.calls.toFixed(2)}`)
      .join(', ');
    console.log(`   ${int(t.users)} x ${t.sessionsEach}, c${t.concurrency}: ${top}`);
  }

  console.log('\nMarkdown:\n');
  printMarkdown(RUN_HEADER, runs.map(runRow));
  console.log('');
  printMarkdown(ttlHeader, ttlRows);
  console.log('');
  printMarkdown(tpHeader, tpRows);
}

/**
 * The worker's scheduled index sweep (every SWEEP_EVERY_MS = 60 s, and at each worker start) SCANs up to
 * SWEEP_KEYS_PER_RUN keys of the session keyspace, resuming where the last run stopped: the last runs
 * kept, so a latency spike can be matched with one.
 */
async function reportSweeps(ctx: Ctx): Promise<void> {
  const maintenance = new Queue('maintenance', { connection: ctx.redis, prefix: QUEUE_PREFIX });
  const jobs = (await maintenance.getJobs(['completed'], 0, 50)).filter((j) => j.name === 'sweep');
  await maintenance.close();
  const origin = performance.timeOrigin + BENCH_START;
  const lines = jobs
    .sort((a, b) => (a.processedOn ?? 0) - (b.processedOn ?? 0))
    .map((j) => {
      const r = j.returnvalue as { indexes?: number; trimmed?: number } | null;
      return (
        `+${(((j.processedOn ?? 0) - origin) / 1000).toFixed(0)} s: ${int((j.finishedOn ?? 0) - (j.processedOn ?? 0))} ms, ` +
        `${int(r?.indexes ?? 0)} indexes`
      );
    });
  console.log(
    `\nindex sweeps still kept (start after bench start: duration, indexes walked): ${lines.join('; ') || 'none'};\n` +
      `each walks a slice of up to 200,000 keys (SWEEP_KEYS_PER_RUN) of the keyspace, now ${int(await ctx.redis.dbsize())} keys (not-before stamps live 7 days).`,
  );
  // One more, by this process, timed: what a sweep costs Redis at this keyspace size.
  const keys = await ctx.redis.dbsize();
  const redisCpu = cpuSeconds(ctx.redisServer.pid);
  const t0 = performance.now();
  const swept = await ctx.store.sweep();
  const wall = performance.now() - t0;
  const cpu = (cpuSeconds(ctx.redisServer.pid) - redisCpu) * 1000;
  console.log(
    `a sweep over ${int(keys)} keys (${int(swept.indexes)} indexes) took ${int(wall)} ms and ${int(cpu)} ms of ` +
      `Redis CPU (${((cpu * 1000) / keys).toFixed(2)} µs per key); a run walks at most 200,000 keys of it, every 60 s.`,
  );
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = performance.now();
  if (!SKIP.has('table')) {
    console.log(
      `bench:e2e  the user's table  node ${process.version}  ${availableParallelism()} CPUs  load avg ${loadAverage()}`,
    );
    await runUserTable({
      rate: env('BENCH_TABLE_RATE', 1000),
      seconds: env('BENCH_TABLE_SECONDS', 13),
      warmupMs: env('BENCH_TABLE_WARMUP_MS', 3000),
    });
    if (process.env['BENCH_QUICK'] === '1') {
      console.log(`\nfinished in ${Math.round((performance.now() - started) / 1000)} s (BENCH_QUICK=1)`);
      return;
    }
  }
  const children: Child[] = [];
  const clients: Redis[] = [];
  let ctx: Ctx | undefined;
  const stopAll = async () => {
    agent.destroy();
    await ctx?.sweeps.stop();
    await ctx?.queue.close().catch(() => undefined);
    for (const c of clients) c.disconnect();
    // Worker and gateway first, Redis last, so neither logs a lost connection mid-shutdown.
    if (ctx?.worker) await ctx.worker.stop();
    for (const c of [...children].reverse()) await c.stop();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void stopAll().finally(() => process.exit(130)));
  try {
    const redisServer = await startRedis();
    children.push(redisServer);
    const connect = () => {
      const c = new Redis({ host: '127.0.0.1', port: redisServer.port, maxRetriesPerRequest: 1 });
      clients.push(c);
      return c;
    };
    const storeOn = (redis: Redis) =>
      new SessionStore({ redis, prefix: SESSION_PREFIX, tagSecret: TAG_SECRET, clockSkewMs: 0 });
    const redis = connect();
    const probeRedis = connect();
    const revokeRedis = connect();
    const gateway = await startGateway(redisServer.port);
    children.push(gateway);
    const queue = new Queue(QUEUE, { connection: connect(), prefix: QUEUE_PREFIX });
    ctx = {
      redisServer,
      gateway,
      worker: await startWorker(redisServer.port),
      workerConcurrency: 16,
      sweeps: new SweepWatch(redis),
      redis,
      probeRedis,
      revokeRedis,
      store: storeOn(redis),
      probeStore: storeOn(probeRedis),
      revokeStore: storeOn(revokeRedis),
      queue,
    };
    const version = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1];
    console.log(
      `bench:e2e  redis-server ${version} on 127.0.0.1:${redisServer.port} (own, throw-away)  gateway :${gateway.port}  ` +
        `worker :${ctx.worker!.port}  node ${process.version}  ${availableParallelism()} CPUs  load avg ${loadAverage()}`,
    );
    console.log(
      `  ${EVENTS_PER_POST} PingOne events per POST; users hold 1-3 sessions (2 on average, TTL ${TTL_SECONDS} s); ` +
        `about ${PROBED_PER_SECOND} events/s probed (every k-th event); worker concurrency 16; CLOCK_SKEW_MS=0`,
    );

    console.log('\nwarm-up (not recorded)');
    await runE2E(ctx, 1_000, 3, EVENTS_PER_POST, true);
    await runFloor(ctx, 1_000, 1, true);

    const e2e: RunResult[] = [];
    if (!SKIP.has('e2e')) {
      console.log('\n1. end to end, ladder of rates');
      for (const rate of LADDER) {
        const main = MAIN_RATES.includes(rate);
        // Once a rung did not hold, the rungs above it tell nothing new: only the main rates still run.
        if (!main && e2e.some((r) => !sustained(r))) continue;
        e2e.push(await runE2E(ctx, rate, main ? SECONDS : SEARCH_SECONDS));
      }
    }
    const single: RunResult[] = [];
    if (!SKIP.has('e2e') && SINGLE_RATES.length) {
      console.log('\n1b. end to end, one event per POST');
      for (const rate of SINGLE_RATES) single.push(await runE2E(ctx, rate, SEARCH_SECONDS, 1));
    }
    if (!SKIP.has('e2e') && C64_RATES.length) {
      console.log('\n1c. end to end, a worker of WORKER_CONCURRENCY=64');
      await ctx.worker!.stop();
      ctx.worker = await startWorker(redisServer.port, 64);
      ctx.workerConcurrency = 64;
      for (const rate of C64_RATES) single.push(await runE2E(ctx, rate, SEARCH_SECONDS));
    }
    const floor: RunResult[] = [];
    if (!SKIP.has('floor')) {
      console.log('\n2. floor: revokeUser straight on Redis, same rates, same probe');
      for (const rate of MAIN_RATES) floor.push(await runFloor(ctx, rate, FLOOR_SECONDS));
    }
    const throughput: ThroughputResult[] = [];
    if (!SKIP.has('throughput')) {
      console.log('\n4. worker throughput');
      for (const { users, sessions } of BACKLOGS)
        for (const c of CONCURRENCIES) throughput.push(await runThroughput(ctx, users, sessions, c));
    }
    report(e2e, single, floor, throughput);
    await reportSweeps(ctx);
    console.log(
      `\nfinished in ${Math.round((performance.now() - started) / 1000)} s, load avg ${loadAverage()}`,
    );
  } finally {
    await stopAll();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
