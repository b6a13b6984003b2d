// Benchmark of the edge's forward auth (GET /auth/verify, apps/gateway/src/edge/forward-auth.ts) against
// same-run baselines (the machine's speed drifts, so only ratios to a baseline measured in the same run,
// interleaved, mean anything). Run with `npm run bench:edge`; BENCH_QUICK=1 for a short run (under a
// minute). On a throw-away redis-server of its own (never the shared one on 6379); every server is a
// child process, killed when the bench ends, fails or is interrupted:
//   1. GET /auth/verify of the gateway (EMBEDDED_WORKER=false) with a live session cookie (SESSIONS
//      sessions made beforehand with SessionStore.createSession, cycled), at an offered rate (open loop,
//      raw kept-alive sockets), against a bare Fastify + ioredis route (this file run as
//      `node dist/bench/edge.bench.js floor`): one GET of a value as big as the session record, 200
//      with the same X-Auth-Request-* headers. Answers/s, p50/p99, server and Redis CPU per request.
//   2. deploy/nginx/nginx.conf (ports substituted) in front of a tiny node:http upstream (this file run
//      as `... upstream`), every request asking the gateway with auth_request, against the same file
//      with the auth lines removed (NGINX proxying straight to the upstream): what putting Session
//      Revoker in front costs a request.
// Env knobs: BENCH_QUICK=1, BENCH_HTTP_RATES (comma-separated ladder, default 5000,4000,3000,2000,1000,
// 5000,3000 when quick: the first rate the subject sustains in most rounds is reported: every request
// answered 200, ≥ 97% of the offered rate, p99 < 100 ms), BENCH_HTTP_SECONDS, BENCH_ROUNDS.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { SessionStore } from '#session-store';
import { pool } from './load.js';
import { openLoop, type OpenLoopRun, RawHttp } from './raw-http.js';
import {
  type Child,
  cpuSeconds,
  httpOk,
  loadAverage,
  machineBusySeconds,
  root,
  sparePort,
  spawnChild,
  startRedis,
  waitFor,
} from './procs.js';
import { int, median, ms, printMarkdown, printTable } from './stats.js';

const QUICK = process.env['BENCH_QUICK'] === '1';
const envNumber = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

const SESSIONS = 1_000;
const HTTP_RATES = (process.env['BENCH_HTTP_RATES'] ?? (QUICK ? '5000,3000' : '5000,4000,3000,2000,1000'))
  .split(',')
  .filter(Boolean)
  .map(Number);
const HTTP_SECONDS = envNumber('BENCH_HTTP_SECONDS', QUICK ? 2 : 10);
const ROUNDS = envNumber('BENCH_ROUNDS', 3);
const WARMUP_SECONDS = QUICK ? 1 : 2;
const CONNECTIONS = 32;

const TARGET_THROUGHPUT_RATIO = 0.7;
const TARGET_P99_RATIO = 2;

const PREFIX = 'be';
const TAG_SECRET = 'bench-edge-tag-secret-0123456789abc';
const COOKIE = '__Host-session';
const FLOOR_PREFIX = 'edge-floor:';

// ---------------------------------------------------------------- the children

/** The floor of part 1: Fastify + ioredis, one GET of a value the size of a session record (a child). */
async function runFloorServer(): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const redis = new Redis(process.env['REDIS_URL']!);
  const app = Fastify({ logger: false, keepAliveTimeout: 72_000 });
  app.get('/health/ready', async (_req, reply) => reply.status(redis.status === 'ready' ? 200 : 503).send());
  app.get('/auth/verify', async (req, reply) => {
    void reply.header('Cache-Control', 'no-store');
    const cookie = req.headers.cookie;
    const at = cookie ? cookie.indexOf(`${COOKIE}=`) : -1;
    if (at < 0) return reply.status(401).send();
    const end = cookie!.indexOf(';', at);
    const id = cookie!.slice(at + COOKIE.length + 1, end < 0 ? undefined : end);
    const value = await redis.get(FLOOR_PREFIX + id);
    if (value === null) return reply.status(401).send();
    const v = JSON.parse(value) as { u: string; e: string; p: string; g: string };
    void reply
      .header('X-Auth-Request-User', v.u)
      .header('X-Auth-Request-Email', v.e)
      .header('X-Auth-Request-Preferred-Username', v.p)
      .header('X-Auth-Request-Groups', v.g);
    return reply.status(200).send();
  });
  await app.listen({ port: Number(process.env['PORT']), host: '127.0.0.1' });
  process.once('SIGTERM', () => {
    void app.close().finally(() => {
      redis.disconnect();
      process.exit(0);
    });
  });
}

/** The application behind NGINX in part 2: node:http, a fixed two-byte answer (the user it was told of). */
function runUpstream(): void {
  const server = createServer((req, res) => {
    const user = req.headers['x-auth-request-user'];
    res.writeHead(200, { 'content-type': 'text/plain', 'x-seen-user': user ?? '-', 'content-length': 2 });
    res.end('ok');
  });
  server.keepAliveTimeout = 72_000;
  server.listen(Number(process.env['PORT']), '127.0.0.1');
  process.once('SIGTERM', () => {
    server.close();
    process.exit(0);
  });
}

const redisUrl = (redis: Child) => `redis://127.0.0.1:${redis.port}`;

async function startGateway(redis: Child): Promise<Child> {
  const port = await sparePort();
  const child = spawnChild('gateway', port, process.execPath, ['dist/apps/gateway/src/main.js'], {
    REDIS_URL: redisUrl(redis),
    QUEUE_PREFIX: `{${PREFIX}q}`,
    SESSION_PREFIX: PREFIX,
    SESSION_TAG_SECRET: TAG_SECRET,
    PINGONE_WEBHOOK_SECRET: 'bench-edge-webhook-secret-0123456789',
    CLOCK_SKEW_MS: '0',
    LOG_LEVEL: 'warn',
    PORT: String(port),
    EMBEDDED_WORKER: 'false',
  });
  await waitFor(child, httpOk(port, '/health/ready'));
  return child;
}

async function startBenchChild(name: string, role: string, env: Record<string, string>): Promise<Child> {
  const port = await sparePort();
  const child = spawnChild(name, port, process.execPath, [join(root, 'dist/bench/edge.bench.js'), role], {
    ...env,
    PORT: String(port),
  });
  await waitFor(child, async () => (await fetch(`http://127.0.0.1:${port}/health/ready`)).status < 500);
  return child;
}

/** The NGINX binary: on the PATH, or Debian's. */
function nginxBinary(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim();
  } catch {
    return '/usr/sbin/nginx';
  }
}

/** NGINX's worker processes (the master's children), so their CPU counts and they die with the bench. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

interface Nginx extends Child {
  /** Master and workers. */
  pids(): number[];
}

/** deploy/nginx/nginx.conf with its three addresses substituted (and `transform` applied), run by NGINX. */
async function startNginx(
  name: string,
  gatewayPort: number,
  upstreamPort: number,
  transform: (conf: string) => string,
): Promise<Nginx> {
  const binary = nginxBinary();
  const port = await sparePort();
  const dir = mkdtempSync(join(tmpdir(), 'bench-nginx-'));
  for (const sub of ['tmp', 'tmp/body', 'tmp/proxy']) mkdirSync(join(dir, sub), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o777);
  const original = readFileSync(join(root, 'deploy/nginx/nginx.conf'), 'utf8');
  const substituted = original
    .replace('server 127.0.0.1:3000;', `server 127.0.0.1:${gatewayPort};`)
    .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${upstreamPort};`)
    .replace('listen 127.0.0.1:8000;', `listen 127.0.0.1:${port};`);
  for (const p of [gatewayPort, upstreamPort, port])
    if (!substituted.includes(`127.0.0.1:${p};`)) throw new Error('deploy/nginx/nginx.conf layout changed');
  writeFileSync(join(dir, 'nginx.conf'), transform(substituted));
  const child = spawnChild(
    name,
    port,
    binary,
    ['-p', dir, '-e', 'stderr', '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'],
    {},
    () => rmSync(dir, { recursive: true, force: true }),
  );
  let workers: number[] = [];
  const killWorkers = () => workers.forEach((pid) => tryKill(pid));
  process.once('exit', killWorkers);
  await waitFor(child, async () => {
    await fetch(`http://127.0.0.1:${port}/`);
    workers = childrenOf(child.pid);
    return workers.length > 0;
  });
  const stop = child.stop;
  return {
    ...child,
    pids: () => [child.pid, ...workers],
    stop: async () => {
      await stop();
      process.off('exit', killWorkers);
      killWorkers();
    },
  };
}

function tryKill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/** The same file without auth_request: NGINX proxying every request straight to the upstream. */
function withoutAuth(conf: string): string {
  const out = conf
    .split('\n')
    .filter((line) => !/^\s*(auth_request|auth_request_set|error_page 401)\b/.test(line))
    .filter((line) => !/^\s*proxy_set_header X-Auth-Request-\S+ \$auth_/.test(line))
    .join('\n');
  if (/^\s*auth_request\b/m.test(out) || /\$auth_/.test(out) || out === conf)
    throw new Error('could not remove the auth lines of deploy/nginx/nginx.conf');
  return out;
}

/** One side of a comparison: where to send, what, and whose CPU counts. */
interface Target {
  name: string;
  port: number;
  requests: Buffer[];
  /** Processes whose CPU is the server's, by role (e.g. nginx, gateway, upstream). */
  cpu: Record<string, () => number[]>;
}

interface HttpRun extends OpenLoopRun {
  target: string;
  rate: number;
  /** CPU per request (µs) of each role of the target, of the redis-server, of the generator. */
  cpuUs: Record<string, number>;
  serverUs: number;
  redisUs: number;
  generatorUs: number;
  /** CPU per request (µs) of everything else on the machine (a CI run, say): noise. */
  othersUs: number;
}

const sustained = (r: HttpRun) => r.failed === 0 && r.achieved >= r.rate * 0.97 && r.p99 < 100;

const cpuOf = (pids: number[]) => pids.reduce((s, pid) => s + cpuSeconds(pid), 0);

/** Open loop: request i is due at start + i / rate whatever became of the earlier ones. */
async function offer(target: Target, redisPid: number, rate: number, seconds: number): Promise<HttpRun> {
  const client = await RawHttp.open(target.port, CONNECTIONS);
  const roles = Object.entries(target.cpu);
  const before = roles.map(([, pids]) => cpuOf(pids()));
  const redis0 = cpuSeconds(redisPid);
  const machine0 = machineBusySeconds();
  const cpu0 = process.cpuUsage();
  const run = await openLoop(client, target.requests, rate, seconds);
  const cpu = process.cpuUsage(cpu0);
  const total = run.requests;
  const cpuUs: Record<string, number> = {};
  roles.forEach(([role, pids], i) => (cpuUs[role] = ((cpuOf(pids()) - before[i]!) * 1e6) / total));
  const redisUs = ((cpuSeconds(redisPid) - redis0) * 1e6) / total;
  const generatorUs = (cpu.user + cpu.system) / total;
  const serverUs = Object.values(cpuUs).reduce((a, b) => a + b, 0);
  const machineUs = ((machineBusySeconds() - machine0) * 1e6) / total;
  client.close();
  return {
    target: target.name,
    rate,
    ...run,
    cpuUs,
    serverUs,
    redisUs,
    generatorUs,
    othersUs: Math.max(0, machineUs - serverUs - redisUs - generatorUs),
  };
}

/** Every request once (checked), then a short run at the top rate. */
async function warmUp(t: Target, redisPid: number): Promise<void> {
  const client = await RawHttp.open(t.port, CONNECTIONS);
  await pool(t.requests.length, CONNECTIONS, async (i) => {
    const a = await client.send(t.requests[i]!);
    if (a.status !== 200) throw new Error(`${t.name} warm-up answered ${a.status}`);
  });
  client.close();
  await offer(t, redisPid, HTTP_RATES[0]!, WARMUP_SECONDS);
}

/**
 * The rate ladder, each rate in ROUNDS interleaved rounds of baseline and subject (the order turning
 * every round); stops at the first rate the subject sustains in most rounds (a CI run next to the bench
 * can spoil one round; the table still shows every round).
 */
async function ladder(
  baseline: Target,
  subject: Target,
  redisPid: number,
): Promise<{ runs: HttpRun[]; rate: number; sustained: boolean }> {
  const runs: HttpRun[] = [];
  for (const rate of HTTP_RATES) {
    const here: HttpRun[] = [];
    for (let round = 0; round < ROUNDS; round++)
      for (const t of round % 2 ? [subject, baseline] : [baseline, subject]) {
        const run = await offer(t, redisPid, rate, HTTP_SECONDS);
        here.push(run);
        console.log(
          `  ${t.name.padEnd(28)} at ${int(rate)}/s: ${int(run.achieved)}/s answered, p50 ${ms(run.p50)} ` +
            `p99 ${ms(run.p99)} max ${ms(run.max)} ms, ${run.failed} failed, ${Math.round(run.serverUs)} µs ` +
            `CPU/req, others ${Math.round(run.othersUs)} µs/req${sustained(run) ? '' : '  NOT sustained'}`,
        );
      }
    runs.push(...here);
    const mine = here.filter((r) => r.target === subject.name);
    if (mine.filter(sustained).length * 2 > mine.length) return { runs: here, rate, sustained: true };
  }
  return {
    runs: runs.filter((r) => r.rate === HTTP_RATES.at(-1)),
    rate: HTTP_RATES.at(-1)!,
    sustained: false,
  };
}

// ---------------------------------------------------------------- reporting

const us = (v: number) => (Number.isNaN(v) ? '-' : v < 10 ? v.toFixed(1) : Math.round(v).toString());

/** Median (min-max) of per-round ratios. */
function range(xs: number[], digits = 2): string {
  const sorted = [...xs].sort((a, b) => a - b);
  const m = median(xs).toFixed(digits);
  return sorted.length < 2 ? m : `${m} (${sorted[0]!.toFixed(digits)}-${sorted.at(-1)!.toFixed(digits)})`;
}

interface Comparison {
  title: string;
  baseline: Target;
  subject: Target;
  result: { runs: HttpRun[]; rate: number; sustained: boolean };
}

function printComparison(c: Comparison): { b: HttpRun[]; s: HttpRun[] } {
  const b = c.result.runs.filter((r) => r.target === c.baseline.name);
  const s = c.result.runs.filter((r) => r.target === c.subject.name);
  const roles = [...new Set([...Object.keys(c.baseline.cpu), ...Object.keys(c.subject.cpu)])];
  const med = (rs: HttpRun[], f: (r: HttpRun) => number) => median(rs.map(f));
  const rows = [b, s].map((rs) => [
    rs[0]!.target,
    int(med(rs, (r) => r.achieved)),
    ms(med(rs, (r) => r.p50)),
    ms(med(rs, (r) => r.p99)),
    ms(Math.max(...rs.map((r) => r.max))),
    String(rs.reduce((n, r) => n + r.failed, 0)),
    ...roles.map((role) => (role in rs[0]!.cpuUs ? us(med(rs, (r) => r.cpuUs[role]!)) : '-')),
    us(med(rs, (r) => r.redisUs)),
    us(med(rs, (r) => r.serverUs + r.redisUs)),
    us(med(rs, (r) => r.generatorUs)),
    us(med(rs, (r) => r.othersUs)),
    ms(Math.max(...rs.map((r) => r.sendLagP99))),
  ]);
  console.log(
    `\n   at ${int(c.result.rate)} req/s offered${c.result.sustained ? '' : ' (NOT sustained at any rate of the ladder)'}` +
      ` (medians over ${b.length} rounds; max of max; CPU in µs per request)`,
  );
  printTable(
    [
      'server',
      'answered/s',
      'p50 ms',
      'p99 ms',
      'max ms',
      'failed',
      ...roles.map((r) => `${r} CPU`),
      'redis CPU',
      'total CPU',
      'generator CPU',
      'others CPU',
      'send lag p99 ms',
    ],
    rows,
  );
  const pairs = s.map((r, i) => [r, b[i]!] as const);
  console.log('');
  printTable(
    [`${c.subject.name} ÷ ${c.baseline.name}`, 'this run, per round: median (min-max)'],
    [
      ['answered/s', range(pairs.map(([x, y]) => x.achieved / y.achieved))],
      ['p50', range(pairs.map(([x, y]) => x.p50 / y.p50))],
      ['p99', range(pairs.map(([x, y]) => x.p99 / y.p99))],
      [
        'CPU per request (servers + redis)',
        range(pairs.map(([x, y]) => (x.serverUs + x.redisUs) / (y.serverUs + y.redisUs))),
      ],
    ],
  );
  return { b, s };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = performance.now();
  const children: Child[] = [];
  const own = <T extends Child>(c: T): T => (children.push(c), c);
  let redis: Redis | undefined;
  const cleanup = async () => {
    redis?.disconnect();
    for (const c of children.reverse()) await c.stop().catch(() => undefined);
    children.length = 0;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void cleanup().finally(() => process.exit(130)));
  try {
    const redisServer = own(await startRedis());
    redis = new Redis(redisUrl(redisServer));
    const version = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1];
    const nginxVersion = /nginx\/(\S+)/.exec(
      spawnSync(nginxBinary(), ['-v'], { encoding: 'utf8' }).stderr,
    )?.[1];

    // The sessions, and for the floor a value of each record's size under a key of its own.
    const store = new SessionStore({ redis, prefix: PREFIX, tagSecret: TAG_SECRET, clockSkewMs: 0 });
    const sessions: string[] = [];
    let recordBytes = 0;
    const floorValues: [string, string][] = [];
    await pool(SESSIONS, 32, async (i) => {
      const userId = `edge-user-${i}@example.com`;
      const { sessionId, handle } = await store.createSession({
        userId,
        ttlSeconds: 3600,
        groups: ['staff', 'bench'],
        claims: { email: userId, preferred_username: `edge-user-${i}` },
      });
      const record = await redis!.hgetall(store.keys.session(sessionId.split('.')[0]!, handle));
      const bytes = Object.entries(record).reduce((n, [k, v]) => n + k.length + v.length, 0);
      if (i === 0) recordBytes = bytes;
      const identity = { u: userId, e: userId, p: `edge-user-${i}`, g: 'staff,bench' };
      const pad = Math.max(0, bytes - JSON.stringify({ ...identity, x: '' }).length);
      floorValues.push([FLOOR_PREFIX + sessionId, JSON.stringify({ ...identity, x: 'x'.repeat(pad) })]);
      sessions[i] = sessionId;
    });
    await redis.mset(...floorValues.flat());
    const floorBytes = floorValues[0]![1].length;

    const gateway = own(await startGateway(redisServer));
    const floor = own(await startBenchChild('floor', 'floor', { REDIS_URL: redisUrl(redisServer) }));
    const upstream = own(await startBenchChild('upstream', 'upstream', {}));
    const withAuth = own(await startNginx('nginx+auth_request', gateway.port, upstream.port, (c) => c));
    const plain = own(await startNginx('nginx', gateway.port, upstream.port, withoutAuth));

    console.log(
      `bench:edge${QUICK ? ' (BENCH_QUICK=1)' : ''}  redis-server ${version} on 127.0.0.1:${redisServer.port} ` +
        `(own, throw-away)  nginx ${nginxVersion}  node ${process.version}  ${availableParallelism()} CPUs  ` +
        `${new Date().toISOString()}  load ${loadAverage()}\n` +
        `  ${SESSIONS} live sessions (record ${recordBytes} bytes; the floor's value ${floorBytes} bytes), cycled; ` +
        `open loop, ${CONNECTIONS} kept-alive raw sockets, each rate ${HTTP_SECONDS} s, latency from when ` +
        `each request was due`,
    );

    const verify = (port: number, id: string) =>
      Buffer.from(
        `GET /auth/verify HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncookie: ${COOKIE}=${id}\r\n\r\n`,
        'latin1',
      );
    const page = (port: number, id: string) =>
      Buffer.from(
        `GET /orders/42?page=2 HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\naccept: application/json\r\n` +
          `cookie: ${COOKIE}=${id}\r\n\r\n`,
        'latin1',
      );

    // Probes: the gateway and the floor answer alike; NGINX lets the session through with its identity.
    const probe = async (port: number, request: Buffer) => {
      const c = await RawHttp.open(port, 1, { head: true });
      const a = await c.send(request);
      c.close();
      return a;
    };
    const headerNames = (head = '') =>
      head
        .split('\r\n')
        .slice(1)
        .map((l) => l.slice(0, l.indexOf(':')).toLowerCase())
        .filter((n) => n.startsWith('x-auth-request-') || n === 'cache-control')
        .sort()
        .join(',');
    const g = await probe(gateway.port, verify(gateway.port, sessions[0]!));
    const f = await probe(floor.port, verify(floor.port, sessions[0]!));
    if (g.status !== 200 || f.status !== 200 || headerNames(g.head) !== headerNames(f.head))
      throw new Error(
        `probe: gateway ${g.status} [${headerNames(g.head)}], floor ${f.status} [${headerNames(f.head)}]`,
      );
    const n = await probe(withAuth.port, page(withAuth.port, sessions[0]!));
    if (n.status !== 200 || !n.head?.toLowerCase().includes(`x-seen-user: edge-user-0@example.com`))
      throw new Error(`probe: nginx+auth_request answered ${n.status}\n${n.head}\n${withAuth.log()}`);
    const refused = await probe(withAuth.port, page(withAuth.port, `${sessions[0]!.split('.')[0]}.forged`));
    if (refused.status !== 401)
      throw new Error(`probe: a forged session got ${refused.status} through NGINX`);
    const p = await probe(plain.port, page(plain.port, sessions[0]!));
    if (p.status !== 200 || !p.head?.toLowerCase().includes('x-seen-user: -'))
      throw new Error(`probe: nginx answered ${p.status}\n${p.head}`);

    const targets = {
      floor: {
        name: 'floor (Fastify + 1 GET)',
        port: floor.port,
        requests: sessions.map((id) => verify(floor.port, id)),
        cpu: { server: () => [floor.pid] },
      },
      gateway: {
        name: 'gateway /auth/verify',
        port: gateway.port,
        requests: sessions.map((id) => verify(gateway.port, id)),
        cpu: { server: () => [gateway.pid] },
      },
      plain: {
        name: 'nginx → upstream',
        port: plain.port,
        requests: sessions.map((id) => page(plain.port, id)),
        cpu: { nginx: () => plain.pids(), gateway: () => [gateway.pid], upstream: () => [upstream.pid] },
      },
      auth: {
        name: 'nginx + auth_request → upstream',
        port: withAuth.port,
        requests: sessions.map((id) => page(withAuth.port, id)),
        cpu: { nginx: () => withAuth.pids(), gateway: () => [gateway.pid], upstream: () => [upstream.pid] },
      },
    } satisfies Record<string, Target>;
    for (const t of Object.values(targets)) await warmUp(t, redisServer.pid);

    console.log(
      '\n1. GET /auth/verify, live session: the gateway against a bare Fastify route doing one GET',
    );
    const part1: Comparison = {
      title: 'verify',
      baseline: targets.floor,
      subject: targets.gateway,
      result: await ladder(targets.floor, targets.gateway, redisServer.pid),
    };
    const r1 = printComparison(part1);

    console.log(
      '\n2. Through NGINX: deploy/nginx/nginx.conf (auth_request) against the same file without the auth lines',
    );
    const part2: Comparison = {
      title: 'nginx',
      baseline: targets.plain,
      subject: targets.auth,
      result: await ladder(targets.plain, targets.auth, redisServer.pid),
    };
    const r2 = printComparison(part2);

    // The figures at a glance, in Markdown.
    const med = (rs: HttpRun[], f: (r: HttpRun) => number) => median(rs.map(f));
    const ratio = (s: HttpRun[], b: HttpRun[], f: (r: HttpRun) => number) =>
      range(s.map((r, i) => f(r) / f(b[i]!)));
    const total = (r: HttpRun) => r.serverUs + r.redisUs;
    const at = (c: Comparison) =>
      `${int(c.result.rate)}/s offered${c.result.sustained ? '' : ', NOT sustained'}`;
    const summary: string[][] = [
      [
        `/auth/verify at ${at(part1)}, answered/s`,
        int(med(r1.s, (r) => r.achieved)),
        `floor ${int(med(r1.b, (r) => r.achieved))}`,
        ratio(r1.s, r1.b, (r) => r.achieved),
        `≥ ${TARGET_THROUGHPUT_RATIO}`,
      ],
      [
        '/auth/verify p50 ms',
        ms(med(r1.s, (r) => r.p50)),
        `floor ${ms(med(r1.b, (r) => r.p50))}`,
        ratio(r1.s, r1.b, (r) => r.p50),
        '',
      ],
      [
        '/auth/verify p99 ms',
        ms(med(r1.s, (r) => r.p99)),
        `floor ${ms(med(r1.b, (r) => r.p99))}`,
        ratio(r1.s, r1.b, (r) => r.p99),
        `≤ ${TARGET_P99_RATIO}`,
      ],
      [
        '/auth/verify server CPU µs/req',
        us(med(r1.s, (r) => r.serverUs)),
        `floor ${us(med(r1.b, (r) => r.serverUs))}`,
        ratio(r1.s, r1.b, (r) => r.serverUs),
        '',
      ],
      [
        '/auth/verify Redis CPU µs/req',
        us(med(r1.s, (r) => r.redisUs)),
        `floor ${us(med(r1.b, (r) => r.redisUs))}`,
        ratio(r1.s, r1.b, (r) => r.redisUs),
        '',
      ],
      [
        `NGINX + auth_request at ${at(part2)}, answered/s`,
        int(med(r2.s, (r) => r.achieved)),
        `NGINX alone ${int(med(r2.b, (r) => r.achieved))}`,
        ratio(r2.s, r2.b, (r) => r.achieved),
        '',
      ],
      [
        'NGINX + auth_request p50 ms',
        ms(med(r2.s, (r) => r.p50)),
        `NGINX alone ${ms(med(r2.b, (r) => r.p50))}`,
        ratio(r2.s, r2.b, (r) => r.p50),
        '',
      ],
      [
        'NGINX + auth_request p99 ms',
        ms(med(r2.s, (r) => r.p99)),
        `NGINX alone ${ms(med(r2.b, (r) => r.p99))}`,
        ratio(r2.s, r2.b, (r) => r.p99),
        '',
      ],
      [
        'NGINX + auth_request CPU µs/req (all servers + Redis)',
        us(med(r2.s, total)),
        `NGINX alone ${us(med(r2.b, total))}`,
        ratio(r2.s, r2.b, total),
        '',
      ],
    ];
    console.log('\nSummary (Markdown; ratios per interleaved round, median (min-max))\n');
    printMarkdown(['figure', 'value', 'same-run baseline', 'ratio', 'target'], summary);
    console.log(`\nfinished in ${Math.round((performance.now() - started) / 1000)} s, load ${loadAverage()}`);
  } finally {
    await cleanup();
  }
}

if (process.argv[2] === 'floor') void runFloorServer();
else if (process.argv[2] === 'upstream') runUpstream();
else
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
