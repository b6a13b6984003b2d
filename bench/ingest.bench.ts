// Benchmark of the gateway's PingOne webhook ingest against a bare Fastify route that only does queue.add,
// both on the same throw-away redis-server (never the shared one on 6379). Run with `npm run bench:ingest`.
//
// Three child processes: redis-server, the real gateway (dist/apps/gateway/src/main.js) and the bare
// baseline (dist/bench/bare-queue-server.js). The load generator runs here, so it never shares an event
// loop with a server (it does share the machine's cores: the CPU columns say who used what).
//
// Env knobs for a quicker trial: BENCH_SECONDS (length of each measured run, default 10),
// BENCH_CONNECTIONS (connections of the max-throughput runs, default 50).
import autocannon from 'autocannon';
import { readFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import {
  type Child,
  cpuSeconds,
  httpOk,
  machineBusySeconds,
  root,
  sparePort,
  spawnChild,
  startRedis,
  waitFor,
} from './procs.js';
import { int, ms, pct, percentile, printMarkdown, printTable, Samples } from './stats.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 10);
const WARMUP_SECONDS = 3;
const MAX_CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 50);
const RATE_CONNECTIONS = 10;
const TARGET_EVENTS_PER_SECOND = 5_000;
const BODY_SIZES = [1, 100] as const;
const SECRET = 'bench-webhook-secret-0123456789';
const GATEWAY_PREFIX = '{gw}';
const BARE_PREFIX = '{bare}';
const QUEUE = 'revocations';
// ---------------------------------------------------------------- child processes

async function startGateway(redisPort: number): Promise<Child> {
  const port = await sparePort();
  const child = spawnChild('gateway', port, process.execPath, ['dist/apps/gateway/src/main.js'], {
    PORT: String(port),
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    PINGONE_WEBHOOK_SECRET: SECRET,
    QUEUE_PREFIX: GATEWAY_PREFIX,
    // Ingest alone, like the bare route: an embedded worker would drain the queue in the same process.
    EMBEDDED_WORKER: 'false',
    SESSION_TAG_SECRET: 'bench-session-tag-secret-0123456789',
  });
  await waitFor(child, httpOk(port, '/health/live'));
  return child;
}

async function startBare(redisPort: number): Promise<Child> {
  const port = await sparePort();
  const child = spawnChild('bare', port, process.execPath, ['dist/bench/bare-queue-server.js'], {
    PORT: String(port),
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    QUEUE_PREFIX: BARE_PREFIX,
  });
  await waitFor(child, httpOk(port, '/health'));
  return child;
}

// ---------------------------------------------------------------- bodies

const ID_WIDTH = 36;
const RUN_TAG = Date.now().toString(36);
let eventSeq = 0;
/** `bench-<run>-<counter>`, always ID_WIDTH characters. */
const nextEventId = () => {
  const head = `bench-${RUN_TAG}-`;
  return head + (++eventSeq).toString(16).padStart(ID_WIDTH - head.length, '0');
};

/**
 * PingOne ACTIVITY bodies of n MEMBER_OF_GROUP.CREATED events (the fixture's event), each with an id
 * no earlier body used, so dedup never turns a delivery into a no-op. Built from one template buffer
 * whose fixed-width ids are overwritten in place: a body costs a copy, not a JSON.stringify.
 */
function bodyFactory(events: number): () => Buffer {
  const fixture = JSON.parse(
    readFileSync(join(root, 'test/fixtures/pingone/member-of-group-created.json'), 'utf8'),
  ) as Record<string, unknown>;
  const placeholder = '#'.repeat(ID_WIDTH);
  const event = JSON.stringify({ ...fixture, id: placeholder, recordedAt: new Date().toISOString() });
  const text = events === 1 ? event : `[${Array.from({ length: events }, () => event).join(',')}]`;
  const template = Buffer.from(text, 'utf8');
  const offsets: number[] = [];
  for (let at = template.indexOf(placeholder); at >= 0; at = template.indexOf(placeholder, at + ID_WIDTH))
    offsets.push(at);
  if (offsets.length !== events)
    throw new Error(`expected ${events} id placeholders, found ${offsets.length}`);
  return () => {
    const body = Buffer.from(template);
    for (const at of offsets) body.write(nextEventId(), at, 'latin1');
    return body;
  };
}

// ---------------------------------------------------------------- load

interface Target {
  server: Child;
  label: string;
  path: string;
  headers: Record<string, string>;
  /** Redis key of the queue's wait list, to check every acknowledged event is really there. */
  waitKey: string;
}

interface RunResult {
  target: string;
  events: number;
  mode: string;
  seconds: number;
  ok: number;
  failed: number;
  latencies: Float64Array;
  queued: number;
  /** Cores used over the run by the server under test, Redis, this process, and everything else. */
  cpu: { server: number; redis: number; loadgen: number; others: number };
  /** CPU time the server and Redis spent per queued event (a cost that contention barely changes). */
  usPerEvent: { server: number; redis: number };
}

const reqPerSec = (r: RunResult) => r.ok / r.seconds;
const eventsPerSec = (r: RunResult) => (r.ok * r.events) / r.seconds;

interface Measured {
  seconds: number;
  ok: number;
  /** 2xx answers to warm-up requests (not in the figures, but their events must be queued too). */
  warmupOk?: number;
  failed: number;
  latencies: Float64Array;
}

/**
 * Runs `load` and reports it with the CPU each process used meanwhile and the number of jobs that
 * reached the queue's wait list; then empties the bench Redis.
 */
async function measure(
  t: Target,
  redis: Redis,
  redisServer: Child,
  events: number,
  mode: string,
  load: () => Promise<Measured>,
): Promise<RunResult> {
  await redis.flushall();
  const before = {
    server: cpuSeconds(t.server.pid),
    redis: cpuSeconds(redisServer.pid),
    self: process.cpuUsage(),
    machine: machineBusySeconds(),
    at: performance.now(),
  };
  const m = await load();
  const self = process.cpuUsage(before.self);
  const wall = (performance.now() - before.at) / 1000;
  const server = (cpuSeconds(t.server.pid) - before.server) / wall;
  const redisCpu = (cpuSeconds(redisServer.pid) - before.redis) / wall;
  const loadgen = (self.user + self.system) / 1e6 / wall;
  const machine = (machineBusySeconds() - before.machine) / wall;
  const cpu = {
    server,
    redis: redisCpu,
    loadgen,
    others: Math.max(0, machine - server - redisCpu - loadgen),
  };
  const queued = await redis.llen(t.waitKey);
  await redis.flushall();
  const usPerEvent = { server: (server * wall * 1e6) / queued, redis: (redisCpu * wall * 1e6) / queued };
  const result: RunResult = { target: t.label, events, mode, ...m, queued, cpu, usPerEvent };
  const missing = (m.ok + (m.warmupOk ?? 0)) * events - queued;
  if (missing > 0) throw new Error(`${t.label} ${mode}: ${missing} acknowledged events are not on the queue`);
  console.log(`  ${summary(result)}`);
  return result;
}

/** autocannon, closed loop (each connection sends its next request when the last one is answered). */
function cannon(
  t: Target,
  makeBody: () => Buffer,
  opts: { connections: number; seconds: number; overallRate?: number },
): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const latencies = new Samples();
    const started = performance.now();
    const instance = autocannon(
      {
        url: `http://127.0.0.1:${t.server.port}`,
        connections: opts.connections,
        duration: opts.seconds,
        // With a rate, its coordinated-omission correction assumes a 1 ms interval whatever the rate
        // (Math.ceil(1 / rate)), inventing samples; we keep raw ones (and measure paced runs ourselves).
        ...(opts.overallRate ? { overallRate: opts.overallRate, ignoreCoordinatedOmission: true } : {}),
        requests: [
          {
            method: 'POST',
            path: t.path,
            headers: t.headers,
            setupRequest: (req) => ({ ...req, body: makeBody() }),
          },
        ],
      },
      (err: unknown, result: autocannon.Result) => {
        if (err) return reject(err instanceof Error ? err : new Error(String(err)));
        const seconds = Math.min(result.duration, (performance.now() - started) / 1000);
        resolve({
          seconds,
          ok: result['2xx'],
          failed: result.non2xx + result.errors,
          latencies: latencies.sorted(),
        });
      },
    );
    instance.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
}

/**
 * Open loop at a steady rate: request i is due at start + i/rate whatever happened to earlier ones, and
 * its latency counts from when it was due (so a stalled server is not excused by sending less).
 * The first `warmupSeconds` run at the same rate on the same sockets but are not counted: the agent
 * opens its sockets then, and a cold start would otherwise stand in for the server's steady tail.
 */
function paced(
  t: Target,
  makeBody: () => Buffer,
  rate: number,
  seconds: number,
  warmupSeconds: number,
): Promise<Measured> {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const warmup = Math.round(rate * warmupSeconds);
  const total = warmup + Math.round(rate * seconds);
  const interval = 1000 / rate;
  const latencies = new Samples();
  let sent = 0;
  let answered = 0;
  let ok = 0;
  let warmupOk = 0;
  let failed = 0;
  return new Promise((resolve) => {
    const start = performance.now() + 5;
    const measuredFrom = start + warmup * interval;
    let lastAnswer = start;
    const finish = () => {
      if (++answered < total) return;
      clearInterval(timer);
      agent.destroy();
      resolve({
        seconds: (lastAnswer - measuredFrom) / 1000,
        ok,
        warmupOk,
        failed,
        latencies: latencies.sorted(),
      });
    };
    const send = (due: number, counted: boolean) => {
      const body = makeBody();
      const req = httpRequest(
        {
          agent,
          host: '127.0.0.1',
          port: t.server.port,
          method: 'POST',
          path: t.path,
          headers: { ...t.headers, 'content-length': String(body.length) },
          timeout: 30_000,
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            lastAnswer = performance.now();
            // A failure counts wherever it falls: a server failing in the warm-up must not pass.
            if (res.statusCode !== 200) failed++;
            else if (counted) {
              ok++;
              latencies.push(lastAnswer - due);
            } else warmupOk++;
            finish();
          });
        },
      );
      req.on('error', () => {
        failed++;
        finish();
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end(body);
    };
    const timer = setInterval(() => {
      const now = performance.now();
      while (sent < total && start + sent * interval <= now) {
        send(start + sent * interval, sent >= warmup);
        sent++;
      }
    }, 1);
  });
}

// ---------------------------------------------------------------- report

function summary(r: RunResult): string {
  return (
    `${r.target} ${r.events}-event ${r.mode}: ${int(reqPerSec(r))} req/s, ${int(eventsPerSec(r))} events/s, ` +
    `p50 ${ms(percentile(r.latencies, 0.5))} ms, p99 ${ms(percentile(r.latencies, 0.99))} ms` +
    (r.failed ? `, ${r.failed} failed` : '')
  );
}

function row(r: RunResult): string[] {
  return [
    r.target,
    String(r.events),
    r.mode,
    int(reqPerSec(r)),
    int(eventsPerSec(r)),
    ms(percentile(r.latencies, 0.5)),
    ms(percentile(r.latencies, 0.99)),
    int(r.failed),
    int(r.queued),
    `${r.usPerEvent.server.toFixed(0)} / ${r.usPerEvent.redis.toFixed(0)}`,
    `${pct(r.cpu.server)} / ${pct(r.cpu.redis)} / ${pct(r.cpu.loadgen)} / ${pct(r.cpu.others)}`,
  ];
}

const HEADER = [
  'server',
  'events/body',
  'load',
  'req/s',
  'events/s',
  'p50 ms',
  'p99 ms',
  'non-2xx',
  'jobs queued',
  'CPU µs/event server / redis',
  'CPU server / redis / loadgen / others',
];

function report(results: RunResult[]): void {
  const find = (target: string, events: number, mode: string) =>
    results.find((r) => r.target === target && r.events === events && r.mode === mode);
  const rows = results.map(row);
  console.log(
    '\nResults (latencies in ms; CPU in cores over the run, 100% = one core; others = the rest of the machine):\n',
  );
  printTable(HEADER, rows, 3);
  const ratioRows: string[][] = [];
  for (const mode of [...new Set(results.map((r) => r.mode))]) {
    for (const events of BODY_SIZES) {
      const g = find('gateway', events, mode);
      const b = find('bare', events, mode);
      if (!g || !b) continue;
      ratioRows.push([
        String(events),
        mode,
        (eventsPerSec(g) / eventsPerSec(b)).toFixed(2),
        (percentile(g.latencies, 0.5) / percentile(b.latencies, 0.5)).toFixed(2),
        (percentile(g.latencies, 0.99) / percentile(b.latencies, 0.99)).toFixed(2),
        (g.usPerEvent.server / b.usPerEvent.server).toFixed(2),
      ]);
    }
  }
  const ratioHeader = [
    'events/body',
    'load',
    'events/s gateway/bare',
    'p50 gateway/bare',
    'p99 gateway/bare',
    'server CPU/event gateway/bare',
  ];
  console.log('\nGateway / bare:\n');
  printTable(ratioHeader, ratioRows, 2);
  console.log('\nMarkdown:\n');
  printMarkdown(HEADER, rows, 3);
  console.log('');
  printMarkdown(ratioHeader, ratioRows, 2);
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = performance.now();
  const children: Child[] = [];
  let redis: Redis | undefined;
  const stopAll = async () => {
    redis?.disconnect();
    // Servers first, Redis last, so neither logs a lost connection as an error mid-shutdown.
    for (const c of [...children].reverse()) await c.stop();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void stopAll().finally(() => process.exit(130)));
  try {
    const redisServer = await startRedis();
    children.push(redisServer);
    redis = new Redis({ host: '127.0.0.1', port: redisServer.port, maxRetriesPerRequest: 1 });
    const gateway = await startGateway(redisServer.port);
    children.push(gateway);
    const bare = await startBare(redisServer.port);
    children.push(bare);
    const version = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1];
    console.log(
      `bench:ingest  redis-server ${version} on 127.0.0.1:${redisServer.port} (own, throw-away)  ` +
        `gateway :${gateway.port}  bare :${bare.port}  node ${process.version}  ${availableParallelism()} CPUs`,
    );
    const json = { 'content-type': 'application/json' };
    const targets: Target[] = [
      {
        server: gateway,
        label: 'gateway',
        path: '/webhooks/pingone',
        headers: { ...json, authorization: `Bearer ${SECRET}` },
        waitKey: `${GATEWAY_PREFIX}:${QUEUE}:wait`,
      },
      {
        server: bare,
        label: 'bare',
        path: '/enqueue',
        headers: json,
        waitKey: `${BARE_PREFIX}:${QUEUE}:wait`,
      },
    ];
    const bodies = new Map(BODY_SIZES.map((n) => [n, bodyFactory(n)]));
    const results: RunResult[] = [];
    const run = (t: Target, events: number, mode: string, load: () => Promise<Measured>) =>
      measure(t, redis!, redisServer, events, mode, load).then((r) => void results.push(r));

    console.log(`\nmax throughput: autocannon, ${MAX_CONNECTIONS} connections, ${SECONDS} s each`);
    for (const events of BODY_SIZES) {
      for (const t of targets) {
        const makeBody = bodies.get(events)!;
        await cannon(t, makeBody, { connections: MAX_CONNECTIONS, seconds: WARMUP_SECONDS }); // JIT warm-up
        await run(t, events, 'max', () =>
          cannon(t, makeBody, { connections: MAX_CONNECTIONS, seconds: SECONDS }),
        );
      }
    }

    console.log(
      `\n${int(TARGET_EVENTS_PER_SECOND)} events/s, autocannon overallRate, ${RATE_CONNECTIONS} connections ` +
        `(each sends its share of a second back to back, then waits for the next second)`,
    );
    for (const events of BODY_SIZES) {
      for (const t of targets) {
        await run(t, events, '5k ev/s burst', () =>
          cannon(t, bodies.get(events)!, {
            connections: RATE_CONNECTIONS,
            seconds: SECONDS,
            overallRate: TARGET_EVENTS_PER_SECOND / events,
          }),
        );
      }
    }

    console.log(`\n${int(TARGET_EVENTS_PER_SECOND)} events/s, paced open loop (evenly spaced requests)`);
    for (const events of BODY_SIZES) {
      for (const t of targets) {
        await run(t, events, '5k ev/s paced', () =>
          paced(t, bodies.get(events)!, TARGET_EVENTS_PER_SECOND / events, SECONDS, WARMUP_SECONDS),
        );
      }
    }

    report(results);
    console.log(`\nfinished in ${Math.round((performance.now() - started) / 1000)} s`);
  } finally {
    await stopAll();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
