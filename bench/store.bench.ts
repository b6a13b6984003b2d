// Benchmark of libs/session-store on throw-away redis-servers of its own (never the shared one on 6379).
// Run with `npm run bench:store`. Set BENCH_BIG_TOTAL (default 1,000,000) for a quicker trial run, or
// BENCH_READS_ONLY=1 for sections 1-1c alone (the read path, about a minute).
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { SessionStore } from '#session-store';
import { ExpressSessionStore } from '#session-store/express';
import { pool, timeMs } from './load.js';
import { median, percentile, Samples as SampleSet } from './stats.js';
import { type Child, startRedis } from './procs.js';

const PREFIX = 'bench';
const TAG_SECRET = 'bench-tag-secret-0123456789';
const TTL_SECONDS = 3600;
const CLAIMS = { name: 'Bench User', amr: ['pwd'] };

const CONCURRENCY = 64;
const THROUGHPUT_OPS = 50_000;
const THROUGHPUT_USERS = 5_000; // 10 sessions per user, as in the filler below
const SESSIONS_PER_FILLER_USER = 10;
const SMALL_TOTAL = 10_000;
const BIG_TOTAL = Number(process.env['BENCH_BIG_TOTAL'] ?? 1_000_000);
/** Interleaved rounds of the read path against a raw GET (section 1b). */
const READ_ROUNDS = Number(process.env['BENCH_READ_ROUNDS'] ?? 5);
/** Reads of each side in one round of section 1b. */
const READ_OPS = Number(process.env['BENCH_READ_OPS'] ?? THROUGHPUT_OPS);
/** express-session records read one at a time in each round of section 1c. */
const EXPRESS_SESSIONS = 500;
const SCALE_USER_SESSIONS = 10;
const REVOKE_RUNS = { bySize: 100, bySizeThousand: 20, atScale: 200, scanSmall: 10, scanBig: 3 };

type Keys = SessionStore['keys'];

/** One throw-away Redis with its client and a store on it. */
interface Target {
  server: RedisServer;
  redis: Redis;
  store: SessionStore;
}

// ---------------------------------------------------------------- throw-away redis-server

type RedisServer = Child;

// ---------------------------------------------------------------- measuring helpers

interface Stats {
  runs: number;
  median: number;
  p95: number;
}

/** Median and p95 by nearest rank (with few runs, p95 is close to the max). */
function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { runs: sorted.length, median: rank(0.5), p95: rank(0.95) };
}

const ms = (v: number) => (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)) + ' ms';
const int = (v: number) => Math.round(v).toLocaleString('en-US');

function printTable(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

// ---------------------------------------------------------------- data

let userSeq = 0;
/** A user id no earlier step used, so every revocation starts from a clean slate. */
const freshUser = (kind: string) => `${kind}-${++userSeq}@bench.example`;

async function createSessions(store: SessionStore, userId: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  await pool(count, CONCURRENCY, async () => {
    ids.push((await store.createSession({ userId, ttlSeconds: TTL_SECONDS, claims: CLAIMS })).sessionId);
  });
  return ids;
}

/** 32 random bytes in base64url per call, drawn from the OS in bulk (one call each cost 2 µs at 1M). */
class RandomIds {
  private pool = Buffer.alloc(0);
  private offset = 0;
  next(): string {
    if (this.offset === this.pool.length) {
      this.pool = randomBytes(32 * 4096);
      this.offset = 0;
    }
    this.offset += 32;
    return this.pool.subarray(this.offset - 32, this.offset).toString('base64url');
  }
}
const random = new RandomIds();

/** The library's handle of a session id (sha256, first 16 bytes, base64url); checked against getSession below. */
const handleOf = (sessionId: string) =>
  createHash('sha256').update(sessionId).digest().subarray(0, 16).toString('base64url');

/**
 * Writes `users` filler users of SESSIONS_PER_FILLER_USER sessions each, in the exact layout
 * create-session.lua writes (record hash + TTL, index zset + TTL), with pipelined raw commands:
 * a createSession call costs a script run and a round trip each, which would make 1M sessions slow.
 * Returns one filler session id so the caller can check the library reads the layout back.
 */
async function loadFiller(redis: Redis, keys: Keys, users: number): Promise<string> {
  // Small pipelines, a few in flight: Node builds the next while Redis runs the others, and the
  // command objects die young (big pipelines made garbage collection the main cost).
  const USERS_PER_PIPELINE = 100;
  const PIPELINES_IN_FLIGHT = 4;
  const iat = String(Date.now());
  const exp = String(Date.now() + TTL_SECONDS * 1000);
  const claims = JSON.stringify(CLAIMS);
  let sample = '';
  const inFlight: Promise<void>[] = [];
  for (let done = 0; done < users; done += USERS_PER_PIPELINE) {
    const pipeline = redis.pipeline();
    for (let u = done; u < Math.min(users, done + USERS_PER_PIPELINE); u++) {
      const userId = freshUser('filler');
      const tag = keys.userTag(userId);
      const index = keys.userIndex(tag);
      const members: string[] = [];
      for (let s = 0; s < SESSIONS_PER_FILLER_USER; s++) {
        const sessionId = `${tag}.${random.next()}`;
        const handle = handleOf(sessionId);
        const record = keys.session(tag, handle);
        pipeline.hset(record, 'uid', userId, 'iat', iat, 'exp', exp, 'ttl', TTL_SECONDS * 1000, 'c', claims);
        pipeline.pexpireat(record, exp);
        members.push(exp, `s:${iat}:${handle}`);
        sample ||= sessionId;
      }
      pipeline.zadd(index, ...members);
      pipeline.pexpireat(index, exp);
    }
    inFlight.push(runPipeline(pipeline));
    if (inFlight.length >= PIPELINES_IN_FLIGHT) await inFlight.shift();
  }
  await Promise.all(inFlight);
  return sample;
}

async function runPipeline(pipeline: ReturnType<Redis['pipeline']>): Promise<void> {
  const results = (await pipeline.exec()) ?? [];
  const failed = results.find(([err]) => err);
  if (failed) throw failed[0];
}

/** Fails loudly if the filler's hand-written layout drifts from what the library reads. */
async function checkFiller(store: SessionStore, sampleId: string): Promise<void> {
  const session = await store.getSession(sampleId);
  if (!session) throw new Error('filler layout no longer matches the library: getSession returned null');
  const listed = await store.listUserSessions(session.userId);
  if (listed.length !== SESSIONS_PER_FILLER_USER)
    throw new Error(`filler layout no longer matches the library: listUserSessions saw ${listed.length}`);
}

/** How many session records the Redis holds, by a full SCAN (only used to report, not timed). */
async function countSessions(redis: Redis): Promise<number> {
  let cursor = '0';
  let count = 0;
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${PREFIX}:{*}:s:*`, 'COUNT', 10_000);
    cursor = next;
    count += found.length;
  } while (cursor !== '0');
  return count;
}

/**
 * CPU time the redis-server main thread has used, in µs (Linux /proc/<pid>/schedstat, ns precision).
 * A delta around one call is the server-side cost of that call (parsing, network I/O, Lua, data
 * structures), free of the client and of other load on the machine; null where /proc lacks it.
 */
function redisCpuMicros(pid: number): number | null {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1000;
  } catch {
    return null;
  }
}

const usedMemory = async (redis: Redis) => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);

// ---------------------------------------------------------------- the measurements

async function benchThroughput({ server, store, redis }: Target): Promise<void> {
  await redis.flushall();
  const ids: string[] = new Array(THROUGHPUT_OPS);
  const users = Array.from({ length: THROUGHPUT_USERS }, () => freshUser('throughput'));
  const create = (i: number) =>
    store
      .createSession({ userId: users[i % THROUGHPUT_USERS]!, ttlSeconds: TTL_SECONDS, claims: CLAIMS })
      .then((s) => void (ids[i] = s.sessionId));
  // Reads in an order unrelated to creation, so consecutive reads hit different users.
  const readAmong = (created: number) => async (i: number) => {
    if (!(await store.getSession(ids[(i * 7919) % created]!))) throw new Error('session not found');
  };
  // Warm-up: loads the Lua scripts (EVALSHA falls back to EVAL once) and lets V8 optimise.
  await pool(2_000, CONCURRENCY, create);
  await pool(2_000, CONCURRENCY, readAmong(2_000));
  await redis.flushall();
  const createMs = await timeMs(() => pool(THROUGHPUT_OPS, CONCURRENCY, create));
  const readMs = await timeMs(() => pool(THROUGHPUT_OPS, CONCURRENCY, readAmong(THROUGHPUT_OPS)));
  // The baseline of the read path, on the same client: a raw GET of a value as big as what getSession
  // returns, from keys as many as the sessions. Interleaved runs, so the machine's drift hits both.
  const sample = await store.getSession(ids[0]!);
  const value = 'v'.repeat(JSON.stringify(sample).length);
  const rawKeys = Array.from({ length: THROUGHPUT_OPS }, (_, i) => `raw:{r${i % 1000}}:${i}`);
  for (let i = 0; i < rawKeys.length; i += 1000) {
    const pipeline = redis.pipeline();
    for (const key of rawKeys.slice(i, i + 1000)) pipeline.set(key, value);
    await pipeline.exec();
  }
  const rawGet = async (i: number) => {
    if ((await redis.get(rawKeys[(i * 7919) % THROUGHPUT_OPS]!)) === null)
      throw new Error('raw key not found');
  };
  /** ops/s of `fn` over READ_OPS calls, with the client's and Redis's CPU per call (µs). */
  const measure = async (fn: (i: number) => Promise<void>, from: number) => {
    const client = process.cpuUsage();
    const redisBefore = redisCpuMicros(server.pid);
    const wall = await timeMs(() => pool(READ_OPS, CONCURRENCY, (i) => fn(from + i)));
    const used = process.cpuUsage(client);
    const redisAfter = redisCpuMicros(server.pid);
    return {
      ops: READ_OPS / (wall / 1000),
      clientUs: (used.user + used.system) / READ_OPS,
      redisUs: redisBefore === null || redisAfter === null ? NaN : (redisAfter - redisBefore) / READ_OPS,
    };
  };
  type Measured = Awaited<ReturnType<typeof measure>>;
  const rounds: { get: Measured; session: Measured }[] = [];
  const readSession = readAmong(THROUGHPUT_OPS);
  for (let round = 0; round < READ_ROUNDS; round++) {
    // The sides take turns at going first, so neither always inherits the other's garbage.
    const from = round * READ_OPS;
    if (round % 2 === 0) {
      const get = await measure(rawGet, from);
      rounds.push({ get, session: await measure(readSession, from) });
    } else {
      const session = await measure(readSession, from);
      rounds.push({ get: await measure(rawGet, from), session });
    }
  }
  const ratios = rounds.map((r) => r.session.ops / r.get.ops);
  const cpu = (v: number) => (Number.isNaN(v) ? '-' : v.toFixed(1));
  printTable(
    `1. Throughput: ${int(THROUGHPUT_OPS)} ops each, ${CONCURRENCY} in flight, one ioredis connection, ` +
      `${int(THROUGHPUT_USERS)} users,\n   no IdP session or groups, claims of ${JSON.stringify(CLAIMS).length} B`,
    ['operation', 'ops/s', 'total'],
    [
      ['createSession', int(THROUGHPUT_OPS / (createMs / 1000)), ms(createMs)],
      ['getSession', int(THROUGHPUT_OPS / (readMs / 1000)), ms(readMs)],
    ],
  );
  printTable(
    `1b. The read path against its baseline: raw GET of a ${value.length} B value, same client, same ` +
      `${CONCURRENCY} in flight,\n    ${READ_ROUNDS} interleaved rounds of ${int(READ_OPS)} each; CPU in µs per read ` +
      `(client: this process; Redis: its main thread)`,
    [
      'round',
      'raw GET ops/s',
      'getSession ops/s',
      'getSession / GET',
      'client CPU GET / getSession',
      'Redis CPU GET / getSession',
    ],
    [
      ...rounds.map((r, i) => [
        String(i + 1),
        int(r.get.ops),
        int(r.session.ops),
        ratios[i]!.toFixed(2),
        `${cpu(r.get.clientUs)} / ${cpu(r.session.clientUs)}`,
        `${cpu(r.get.redisUs)} / ${cpu(r.session.redisUs)}`,
      ]),
      [
        'median',
        int(median(rounds.map((r) => r.get.ops))),
        int(median(rounds.map((r) => r.session.ops))),
        median(ratios).toFixed(2),
        `${cpu(median(rounds.map((r) => r.get.clientUs)))} / ${cpu(median(rounds.map((r) => r.session.clientUs)))}`,
        `${cpu(median(rounds.map((r) => r.get.redisUs)))} / ${cpu(median(rounds.map((r) => r.session.redisUs)))}`,
      ],
    ],
  );
}

/**
 * 1c. What an express-session request waits for its session: reads one at a time (so latency, not
 * throughput), each of a logged-in session with an IdP session. A session this process has read
 * before (the adapter remembers where its stamps are) against one it meets for the first time (a new
 * adapter per read: record, then stamps), and a raw GET of a value as big as the record, interleaved.
 */
async function benchExpressReads({ redis, store }: Target): Promise<void> {
  await redis.flushall();
  const call = <T>(fn: (cb: (err?: unknown, value?: T) => void) => void) =>
    new Promise<T | undefined>((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
  const writer = new ExpressSessionStore({ store });
  const sids = Array.from({ length: EXPRESS_SESSIONS }, (_, i) => `bench-express-${i}`);
  const data = (i: number) => ({
    cookie: { expires: new Date(Date.now() + TTL_SECONDS * 1000) },
    userId: `express-user-${i}`,
    idpSessionId: `express-idp-${i}`,
    claims: CLAIMS,
  });
  for (const [i, sid] of sids.entries()) await call((cb) => writer.set(sid, data(i) as never, cb));
  // The database holds nothing else: any record found is one of these, and they are all the same size.
  const [, [key]] = await redis.scan('0', 'MATCH', store.keys.expressSessionPattern(), 'COUNT', 10_000);
  const value = 'v'.repeat(Object.values(await redis.hgetall(key!)).join('').length);
  await redis.set('raw:{express}', value);
  const remembered = new ExpressSessionStore({ store });
  const sides: Record<'raw GET' | 'seen before' | 'first read', (sid: string) => Promise<unknown>> = {
    'raw GET': () => redis.get('raw:{express}'),
    'seen before': (sid) => call((cb) => remembered.get(sid, cb)),
    'first read': (sid) => call((cb) => new ExpressSessionStore({ store }).get(sid, cb)),
  };
  for (const sid of sids) await sides['seen before'](sid);
  const latencies = new Map(Object.keys(sides).map((k) => [k, new SampleSet()]));
  for (let round = 0; round < READ_ROUNDS; round++) {
    for (const [name, read] of Object.entries(sides)) {
      const out = latencies.get(name)!;
      for (const sid of sids) {
        const at = performance.now();
        if (!(await read(sid))) throw new Error(`${name}: session not found`);
        out.push((performance.now() - at) * 1000);
      }
    }
  }
  const sorted = [...latencies].map(([name, xs]) => [name, xs.sorted()] as const);
  const get50 = percentile(sorted.find(([name]) => name === 'raw GET')![1], 0.5);
  printTable(
    `1c. express-session reads, one at a time: ${int(EXPRESS_SESSIONS)} sessions (user + IdP session) x ` +
      `${READ_ROUNDS} interleaved rounds; raw GET of a ${value.length} B value`,
    ['read', 'p50 µs', 'p99 µs', 'p50 / GET p50'],
    sorted.map(([name, xs]) => [
      name,
      percentile(xs, 0.5).toFixed(0),
      percentile(xs, 0.99).toFixed(0),
      (percentile(xs, 0.5) / get50).toFixed(2),
    ]),
  );
}

interface Samples {
  wallMs: Stats;
  redisCpuUs: Stats | null;
}

/**
 * One revokeUser of a fresh user holding `sessions` sessions (created untimed): [wall ms, Redis CPU µs].
 * With the event's time as `notBefore`, as the worker calls it; `now` calls it without one, as an
 * application revoking on its own does, which waits for Redis's clock to pass the stamp (design: a
 * login made after the call returns must live).
 */
async function revokeOnce(
  { server, store }: Target,
  sessions: number,
  now = false,
): Promise<[number, number | null]> {
  const userId = freshUser('revoke');
  await createSessions(store, userId, sessions);
  const cpuBefore = redisCpuMicros(server.pid);
  const start = performance.now();
  const { revoked } = await store.revokeUser(userId, now ? {} : { notBefore: Date.now() });
  const wall = performance.now() - start;
  const cpuAfter = redisCpuMicros(server.pid);
  if (revoked !== sessions) throw new Error(`revokeUser deleted ${revoked} of ${sessions} sessions`);
  return [wall, cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore];
}

/**
 * Times `runs` revocations on each target. The targets take turns (and turns at going first), so
 * load from elsewhere on the machine falls on all of them alike rather than on whichever ran last.
 */
async function revokeSamples(
  targets: Target[],
  sessions: number,
  runs: number,
  now = false,
): Promise<Samples[]> {
  const wall = targets.map((): number[] => []);
  const cpu = targets.map((): number[] => []);
  for (let r = 0; r < runs; r++) {
    for (let k = 0; k < targets.length; k++) {
      const i = (r + k) % targets.length;
      const [w, c] = await revokeOnce(targets[i]!, sessions, now);
      wall[i]!.push(w);
      if (c !== null) cpu[i]!.push(c);
    }
  }
  return targets.map((_, i) => ({
    wallMs: stats(wall[i]!),
    redisCpuUs: cpu[i]!.length ? stats(cpu[i]!) : null,
  }));
}

const us = (v: number) => `${int(v)} µs`;
const usOrNa = (s: Stats | null, pick: (s: Stats) => number) => (s ? us(pick(s)) : 'n/a');

async function benchRevokeBySize(target: Target): Promise<void> {
  await target.redis.flushall();
  await revokeSamples([target], 10, 20); // warm-up
  const rows: string[][] = [];
  for (const [sessions, runs, now] of [
    [1, REVOKE_RUNS.bySize, false],
    [10, REVOKE_RUNS.bySize, false],
    [1_000, REVOKE_RUNS.bySizeThousand, false],
    [10, REVOKE_RUNS.bySize, true],
  ] as const) {
    const [{ wallMs, redisCpuUs }] = (await revokeSamples([target], sessions, runs, now)) as [Samples];
    rows.push([
      `${int(sessions)}${now ? ' (now)' : ''}`,
      String(runs),
      ms(wallMs.median),
      ms(wallMs.p95),
      usOrNa(redisCpuUs, (s) => s.median),
      usOrNa(redisCpuUs, (s) => s.p95),
    ]);
  }
  printTable(
    '2. revokeUser latency by sessions held, on an otherwise empty Redis.\n' +
      '   wall: end to end in the client (stamp + deletion of every session, all round trips), with the\n' +
      "   event's time as notBefore, as the worker calls it; (now): without one, so the call also waits\n" +
      "   for Redis's clock to pass the stamp;\n" +
      '   Redis CPU: CPU time of the redis-server thread over the same call (/proc/<pid>/schedstat).',
    ['sessions of user', 'runs', 'wall median', 'wall p95', 'Redis CPU median', 'Redis CPU p95'],
    rows,
  );
}

const memoryUsage = async (redis: Redis, key: string) =>
  Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));

async function benchMemory({ store, redis }: Target): Promise<void> {
  await redis.flushall();
  const rows: string[][] = [];
  // Up to 128 members the index zset is a compact listpack; past that, a skiplist + dict (zset-max-listpack-entries).
  for (const sessions of [1, 10, 100, 1_000]) {
    const userId = freshUser('memory');
    const ids = await createSessions(store, userId, sessions);
    const tag = store.keys.userTag(userId);
    const records = await Promise.all(
      ids.map((id) => memoryUsage(redis, store.keys.session(tag, handleOf(id)))),
    );
    const record = records.reduce((a, b) => a + b, 0) / records.length;
    const indexKey = store.keys.userIndex(tag);
    const index = (await memoryUsage(redis, indexKey)) / sessions;
    const encoding = String(await redis.call('OBJECT', 'ENCODING', indexKey));
    rows.push([int(sessions), encoding, int(record), int(index), int(record + index)]);
  }
  printTable(
    '3. Bytes per session: MEMORY USAGE <key> SAMPLES 0 of the session record, plus its share of the\n' +
      '   user index (MEMORY USAGE of the index / its members). Sessions made by createSession as in 1.',
    ['sessions of user', 'index encoding', 'record B', 'index share B', 'total B'],
    rows,
  );
}

/** What a store without a user index must do: SCAN every session key, read its owner, delete the user's. */
async function revokeByScan(redis: Redis, userId: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${PREFIX}:*:s:*`, 'COUNT', 1_000);
    cursor = next;
    if (found.length === 0) continue;
    const pipeline = redis.pipeline();
    for (const key of found) pipeline.hget(key, 'uid');
    const owners = (await pipeline.exec()) ?? [];
    const mine = found.filter((_, i) => owners[i]?.[1] === userId);
    if (mine.length) deleted += await redis.unlink(...mine);
  } while (cursor !== '0');
  return deleted;
}

async function scanSamples({ store, redis }: Target, runs: number): Promise<Stats> {
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    const userId = freshUser('scan');
    await createSessions(store, userId, SCALE_USER_SESSIONS);
    const start = performance.now();
    const deleted = await revokeByScan(redis, userId);
    samples.push(performance.now() - start);
    if (deleted !== SCALE_USER_SESSIONS) throw new Error(`scan baseline deleted ${deleted} sessions`);
  }
  return stats(samples);
}

interface ScalePoint {
  sessions: number;
  loaded: number;
  loadMs: number;
  bytesPerSession: number;
  revoke: Samples;
  scan: Stats;
}

/** Fills a fresh Redis so that it holds `total` sessions once the user under test has its own. */
async function fill({ store, redis }: Target, total: number): Promise<Omit<ScalePoint, 'revoke' | 'scan'>> {
  await redis.flushall();
  const before = await usedMemory(redis);
  const users = Math.floor((total - SCALE_USER_SESSIONS) / SESSIONS_PER_FILLER_USER);
  let sample = '';
  const loadMs = await timeMs(async () => (sample = await loadFiller(redis, store.keys, users)));
  await checkFiller(store, sample);
  const loaded = await countSessions(redis); // counted, not assumed
  const bytesPerSession = ((await usedMemory(redis)) - before) / loaded;
  return { sessions: loaded + SCALE_USER_SESSIONS, loaded, loadMs, bytesPerSession };
}

async function benchScale(small: Target, big: Target): Promise<void> {
  const filled = [await fill(small, SMALL_TOTAL), await fill(big, BIG_TOTAL)];
  await revokeSamples([small, big], SCALE_USER_SESSIONS, 20); // warm-up at these sizes
  const revoke = await revokeSamples([small, big], SCALE_USER_SESSIONS, REVOKE_RUNS.atScale);
  const scan = [await scanSamples(small, REVOKE_RUNS.scanSmall), await scanSamples(big, REVOKE_RUNS.scanBig)];
  printScale(
    filled.map((f, i) => ({ ...f, revoke: revoke[i]!, scan: scan[i]! })) as [ScalePoint, ScalePoint],
  );
}

const cell = (s: Stats | null, unit: (v: number) => string) =>
  s ? `${unit(s.median)} / ${unit(s.p95)} (${s.runs})` : 'n/a';
const ratio = (a: Stats | null, b: Stats | null) => (a && b ? (b.median / a.median).toFixed(2) : 'n/a');

function printScale([small, big]: [ScalePoint, ScalePoint]): void {
  const loads = [small, big].map(
    (p) => `${int(p.loaded)} in ${ms(p.loadMs)} (${int(p.loaded / (p.loadMs / 1000))}/s)`,
  );
  console.log(
    `\n4. Cost vs. total sessions in Redis: revoking a user with ${SCALE_USER_SESSIONS} sessions.\n` +
      `   Two throw-away redis-servers, one holding ${int(small.sessions)} sessions, one ${int(big.sessions)};\n` +
      `   the revokeUser runs take turns on them, so noise from the rest of the machine hits both alike.\n` +
      `   Filler: raw pipelined HSET+PEXPIREAT / ZADD+PEXPIREAT in create-session.lua's key layout,\n` +
      `   ${SESSIONS_PER_FILLER_USER} sessions per user (checked with getSession + listUserSessions), ` +
      `not createSession calls:\n   loaded ${loads.join(' and ')}.\n` +
      `   Baseline, a store without a user index: SCAN MATCH ${PREFIX}:*:s:* COUNT 1000 over all keys,\n` +
      `   a pipelined HGET uid per batch, UNLINK of the user's keys.`,
  );
  const speedUp = (p: ScalePoint) => `${int(p.scan.median / p.revoke.wallMs.median)}x`;
  printTable(
    '   median / p95 (runs)',
    ['', `${int(small.sessions)} sessions`, `${int(big.sessions)} sessions`, 'ratio big/small'],
    [
      [
        'revokeUser, wall',
        cell(small.revoke.wallMs, ms),
        cell(big.revoke.wallMs, ms),
        ratio(small.revoke.wallMs, big.revoke.wallMs),
      ],
      [
        'revokeUser, Redis CPU',
        cell(small.revoke.redisCpuUs, us),
        cell(big.revoke.redisCpuUs, us),
        ratio(small.revoke.redisCpuUs, big.revoke.redisCpuUs),
      ],
      ['SCAN baseline, wall', cell(small.scan, ms), cell(big.scan, ms), ratio(small.scan, big.scan)],
      ['speed-up of revokeUser (wall medians)', speedUp(small), speedUp(big), ''],
    ],
  );
  console.log(
    `\n   used_memory grew by ${int(big.bytesPerSession)} B per session over the ${int(big.loaded)}-session load ` +
      `(records, ${SESSIONS_PER_FILLER_USER}-member indexes,\n   keyspace and expiry dict entries).`,
  );
}

// ---------------------------------------------------------------- main

function connect(server: RedisServer): Target {
  const redis = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: 1 });
  return { server, redis, store: new SessionStore({ redis, prefix: PREFIX, tagSecret: TAG_SECRET }) };
}

async function main(): Promise<void> {
  const started = performance.now();
  const servers: RedisServer[] = [];
  const targets: Target[] = [];
  const stopAll = async () => {
    for (const t of targets) t.redis.disconnect();
    await Promise.all(servers.map((s) => s.stop()));
  };
  // Ctrl-C or a kill: still take the servers down.
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void stopAll().finally(() => process.exit(130)));
  try {
    for (let i = 0; i < 2; i++) servers.push(await startRedis());
    for (const server of servers) targets.push(connect(server));
    const [small, big] = targets as [Target, Target];
    const version = /redis_version:(\S+)/.exec(await small.redis.info('server'))?.[1];
    console.log(
      `bench:store  redis-server ${version} on 127.0.0.1:${servers.map((s) => s.port).join(' and :')} ` +
        `(own, throw-away)  node ${process.version}  ${availableParallelism()} CPUs`,
    );
    await benchThroughput(small);
    await benchExpressReads(small);
    if (process.env['BENCH_READS_ONLY'] !== '1') {
      await benchRevokeBySize(small);
      await benchMemory(small);
      await benchScale(small, big);
    }
    console.log(`\nfinished in ${Math.round((performance.now() - started) / 1000)} s`);
  } finally {
    await stopAll();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
