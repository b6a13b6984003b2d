// The table a new user would draw (bench:e2e's first section, and all of it with BENCH_QUICK=1): at
// 1,000 single-event PingOne deliveries a second on kept-alive sockets, one session probed per 5
// events, webhook sent -> session unreadable, for four services started fresh in the same run:
//   floor     a bare node:http server calling revokeUser straight on Redis (bench/floor-server.ts);
//   npm start the gateway with its embedded worker (one process, as `npm start` runs it);
//   separate  the gateway (EMBEDDED_WORKER=false) and one worker process;
//   no worker the gateway alone: only its stamp on receipt (REVOKE_ON_RECEIPT) revokes anything.
// Each starts cold: the clock starts the moment its /health/ready answers 200, so the first seconds
// show what a freshly started (or restarted, or scaled-out) service does. The cold start (the first
// WARMUP_MS) is reported apart from the steady state after it. BENCH_TABLE_TRACE=1 prints each slow
// answer and revocation with the time it was sent, to see where the cold start goes.
import { randomUUID } from 'node:crypto';
import { Agent } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { SessionStore } from '#session-store';
import { type Child, httpOk, sparePort, spawnChild, startRedis, waitFor } from './procs.js';
import { pingOneEventMaker, postWebhook } from './load.js';
import { ms, percentile, printMarkdown, printTable, Samples } from './stats.js';

const WEBHOOK_SECRET = 'bench-table-webhook-secret-0123456789';
const TAG_SECRET = 'bench-table-session-tag-secret-0123456789';
const PROBE_EVERY = 5;
const TIGHT_MS = 20;
const GIVE_UP_MS = 60_000;
/** With BENCH_TABLE_TRACE=1, every answer and revocation slower than this is printed with its time. */
const TRACE_OVER_MS = 60;

/**
 * `no worker`: the gateway alone (EMBEDDED_WORKER=false, no worker process), which is what a worker
 * outage or a long backlog looks like to a webhook: only REVOKE_ON_RECEIPT's stamp can make the session
 * unreadable (with REVOKE_ON_RECEIPT=false every probe gives up after a minute).
 */
export type Mode = 'floor' | 'npm start' | 'separate' | 'no worker';

export interface TableRow {
  mode: Mode;
  events: number;
  failed: number;
  unresolved: number;
  /** Webhook sent -> unreadable, of events sent after the warm-up (ms). */
  p50: number;
  p99: number;
  /** The worst of events sent within the warm-up (ms). */
  coldWorst: number;
  /** The worst HTTP answer (sent -> answered) within the warm-up, and after it (ms). */
  coldAnswerWorst: number;
  answerP99: number;
  /** From spawning the processes to /health/ready answering 200 (ms). */
  readyMs: number;
}

export interface TableOptions {
  rate: number;
  seconds: number;
  warmupMs: number;
}

/** Reads due sessions in rounds on one connection until each reads null (see e2e.bench.ts's Prober). */
class Prober {
  /** [sent at (ms from the run's start), sent -> unreadable (ms)]. */
  readonly results: [number, number][] = [];
  unresolved = 0;
  private pending: { sessionId: string; sent: number; next: number }[] = [];
  private stopping = false;
  private readonly done: Promise<void>;

  constructor(
    private readonly store: SessionStore,
    private readonly t0: number,
  ) {
    this.done = this.loop();
  }

  add(sessionId: string, sent: number): void {
    this.pending.push({ sessionId, sent, next: 0 });
  }

  async finish(): Promise<void> {
    this.stopping = true;
    await this.done;
  }

  private async loop(): Promise<void> {
    while (!this.stopping || this.pending.length > 0) {
      const now = performance.now();
      const due = this.pending.filter((p) => p.next <= now);
      if (due.length === 0) {
        await sleep(1);
        continue;
      }
      this.pending = this.pending.filter((p) => p.next > now);
      const reads = await Promise.all(due.map((p) => this.store.getSession(p.sessionId)));
      const t1 = performance.now();
      due.forEach((p, i) => {
        const elapsed = t1 - p.sent;
        if (reads[i] === null) {
          this.results.push([p.sent - this.t0, elapsed]);
          if (process.env['BENCH_TABLE_TRACE'] && elapsed > TRACE_OVER_MS)
            console.log(
              `    slow revocation ${Math.round(elapsed)} ms sent at +${Math.round(p.sent - this.t0)} ms`,
            );
        } else if (elapsed > GIVE_UP_MS) this.unresolved++;
        else this.pending.push({ ...p, next: elapsed < TIGHT_MS ? 0 : t1 + elapsed * 0.1 });
      });
    }
  }
}

/** The processes of one mode, spawned at once; resolves once the one taking deliveries is ready. */
async function startMode(
  mode: Mode,
  redisPort: number,
  tag: string,
): Promise<{ port: number; children: Child[] }> {
  const env = {
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    QUEUE_PREFIX: `{ut-${tag}}`,
    SESSION_PREFIX: `ut-${tag}`,
    SESSION_TAG_SECRET: TAG_SECRET,
    PINGONE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    CLOCK_SKEW_MS: '0',
    LOG_LEVEL: 'warn',
  };
  const port = await sparePort();
  const children: Child[] = [];
  if (mode === 'floor') {
    children.push(
      spawnChild('floor', port, process.execPath, ['dist/bench/floor-server.js'], {
        ...env,
        PORT: String(port),
      }),
    );
  } else {
    children.push(
      spawnChild('gateway', port, process.execPath, ['dist/apps/gateway/src/main.js'], {
        ...env,
        PORT: String(port),
        EMBEDDED_WORKER: mode === 'npm start' ? 'true' : 'false',
      }),
    );
    if (mode === 'separate') {
      const workerPort = await sparePort();
      children.push(
        spawnChild('worker', workerPort, process.execPath, ['dist/apps/worker/src/main.js'], {
          ...env,
          WORKER_PORT: String(workerPort),
        }),
      );
    }
  }
  await Promise.all(children.map((c) => waitFor(c, httpOk(c.port, '/health/ready'))));
  return { port, children };
}

async function runMode(mode: Mode, redisPort: number, options: TableOptions): Promise<TableRow> {
  const tag = `${mode.replace(/\W/g, '')}-${Date.now().toString(36)}`;
  const redis = new Redis({ host: '127.0.0.1', port: redisPort });
  const probeRedis = new Redis({ host: '127.0.0.1', port: redisPort });
  const storeOn = (r: Redis) =>
    new SessionStore({ redis: r, prefix: `ut-${tag}`, tagSecret: TAG_SECRET, clockSkewMs: 0 });
  const store = storeOn(redis);
  const n = options.rate * options.seconds;
  const users = Array.from({ length: n }, () => randomUUID());
  const sessions: string[] = new Array(n);
  for (let i = 0; i < n; i += 200)
    await Promise.all(
      users.slice(i, i + 200).map(async (userId, j) => {
        sessions[i + j] = (await store.createSession({ userId, ttlSeconds: 3600 })).sessionId;
      }),
    );
  await sleep(2);
  const makeEvent = pingOneEventMaker();
  const spawned = performance.now();
  const { port, children } = await startMode(mode, redisPort, tag);
  const readyMs = performance.now() - spawned;
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const t0 = performance.now();
  const prober = new Prober(storeOn(probeRedis), t0);
  const cold = new Samples();
  const warm = new Samples();
  let failed = 0;
  const interval = 1000 / options.rate;
  const inFlight: Promise<void>[] = [];
  let sent = 0;
  try {
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const now = performance.now();
        while (sent < n && t0 + sent * interval <= now) {
          const i = sent++;
          const due = t0 + i * interval;
          inFlight.push(
            postWebhook(agent, port, WEBHOOK_SECRET, makeEvent(`ut-${tag}-${i}`, users[i]!)).then(
              (status) => {
                const answered = performance.now() - due;
                if (status !== 200) failed++;
                (due - t0 < options.warmupMs ? cold : warm).push(answered);
                if (process.env['BENCH_TABLE_TRACE'] && answered > TRACE_OVER_MS)
                  console.log(`    slow answer ${Math.round(answered)} ms at +${Math.round(due - t0)} ms`);
                if (status === 200 && i % PROBE_EVERY === 0) prober.add(sessions[i]!, due);
              },
            ),
          );
        }
        if (sent === n) {
          clearInterval(timer);
          resolve();
        }
      }, 1);
    });
    await Promise.all(inFlight);
    await prober.finish();
  } finally {
    agent.destroy();
    for (const c of [...children].reverse()) await c.stop();
    redis.disconnect();
    probeRedis.disconnect();
  }
  const after = new Samples();
  // NaN (printed '-') when no probe of the window read null: nothing was revoked (the 'no worker'
  // mode with REVOKE_ON_RECEIPT=false).
  let coldWorst = NaN;
  for (const [at, delay] of prober.results) {
    if (at < options.warmupMs) coldWorst = Number.isNaN(coldWorst) ? delay : Math.max(coldWorst, delay);
    else after.push(delay);
  }
  const afterSorted = after.sorted();
  const coldAnswers = cold.sorted();
  return {
    mode,
    events: n,
    failed,
    unresolved: prober.unresolved,
    p50: percentile(afterSorted, 0.5),
    p99: percentile(afterSorted, 0.99),
    coldWorst,
    coldAnswerWorst: coldAnswers.length ? coldAnswers[coldAnswers.length - 1]! : NaN,
    answerP99: percentile(warm.sorted(), 0.99),
    readyMs,
  };
}

/** Runs the four modes on a throw-away redis-server of its own and prints the table. */
export async function runUserTable(options: TableOptions): Promise<TableRow[]> {
  const redisServer = await startRedis();
  const rows: TableRow[] = [];
  try {
    for (const mode of ['floor', 'npm start', 'separate', 'no worker'] as const) {
      const row = await runMode(mode, redisServer.port, options);
      console.log(
        `  ${mode}: ready in ${ms(row.readyMs)} ms; p50 ${ms(row.p50)} p99 ${ms(row.p99)} ms after the warm-up; ` +
          `worst ${ms(row.coldWorst)} ms (answer ${ms(row.coldAnswerWorst)} ms) within it; ${row.failed} failed, ${row.unresolved} unresolved`,
      );
      rows.push(row);
    }
  } finally {
    await redisServer.stop();
  }
  const floor = rows[0]!;
  const ratio = (v: number, base: number) =>
    Number.isFinite(v / base) ? `${ms(v)} (${(v / base).toFixed(2)}x)` : ms(v);
  const header = [
    `at ${options.rate}/s, ${options.seconds} s, 1 event per POST`,
    'sent -> unreadable p50',
    `p99 after ${options.warmupMs / 1000} s`,
    `worst in the first ${options.warmupMs / 1000} s`,
    `worst HTTP answer, first ${options.warmupMs / 1000} s`,
    'HTTP answer p99 after',
    'ready after',
  ];
  const table = rows.map((r) => [
    r.mode,
    r === floor
      ? ms(r.p50)
      : r.unresolved > 0
        ? `${ms(r.p50)} (${r.unresolved} never unreadable)`
        : `${ms(r.p50)} (${r.p50 >= floor.p50 ? '+' : ''}${ms(r.p50 - floor.p50)})`,
    r === floor ? ms(r.p99) : ratio(r.p99, floor.p99),
    r === floor ? ms(r.coldWorst) : ratio(r.coldWorst, floor.coldWorst),
    r === floor ? ms(r.coldAnswerWorst) : ratio(r.coldAnswerWorst, floor.coldAnswerWorst),
    ms(r.answerP99),
    ms(r.readyMs),
  ]);
  console.log('');
  printTable(header, table);
  console.log('');
  printMarkdown(header, table);
  return rows;
}
