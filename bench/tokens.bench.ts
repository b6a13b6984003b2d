// Benchmark of libs/token-verifier against its baselines, all measured in the same run (the machine's
// speed drifts, so only ratios to a same-run baseline mean anything). Run with `npm run bench:tokens`;
// BENCH_QUICK=1 for a short run (under a minute). On a throw-away redis-server of its own (never the
// shared one on 6379) and the test OpenID Provider (test/support/oidc-provider.ts) in a child process
// (this file run as `node dist/bench/tokens.bench.js idp`): loaded here, its AsyncLocalStorage would
// put promise hooks on every promise of the client measured, about doubling a GET's client CPU.
//   1. cached verify() against a raw GET of a value as big as the cached record: same ioredis client,
//      same IN_FLIGHT calls in flight, interleaved rounds; JWTs found by the user hint of their
//      unverified payload (a process meeting the token first) and by this process's memory of them,
//      and opaque tokens found by that memory; ops/s, p50/p99,
//      client CPU per op (process.cpuUsage) and Redis CPU per op (INFO cpu delta / ops). Two steps in
//      between show where the cost goes: HMGET of the record (no Lua), store.tokens.read (the script).
//   2. against jose's local verification of the same RS256 JWTs (jwtVerify, local JWKS and a key).
//   3. against an RFC 7662 introspection round trip to the IdP (fetch POST to its endpoint).
//   4. the stampede: STAMPEDE concurrent verify() of one fresh opaque token, half here, half in a
//      second process (test/support/verify-child.mjs): introspection calls the IdP answered.
//   5. POST /oauth2/introspect of the gateway (EMBEDDED_WORKER=false, a child) at an offered rate
//      (open loop, raw kept-alive sockets), against a bare node:http server doing one raw GET (this file
//      run as `node dist/bench/tokens.bench.js floor`, a child too) at the same rate.
// Env knobs: BENCH_QUICK=1, BENCH_HTTP_RATES (comma-separated ladder, default 5000,4000,3000,2000,1000:
// the first rate the gateway sustains is reported), BENCH_HTTP_SECONDS, BENCH_ROUNDS.
import { fork, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { createLocalJWKSet, importJWK, type JSONWebKeySet, jwtVerify, type JWTVerifyOptions } from 'jose';
import { SessionStore, TokenCache, tokenRef } from '#session-store';
import { ASYMMETRIC_ALGORITHMS, type TokenIssuerConfig, TokenVerifier } from '#token-verifier';
import { coreOf } from '../libs/session-store/src/session-store.js';
import { JWT_RESOURCE, startTestIdp } from '../test/support/oidc-provider.js';
import { pool, timeMs } from './load.js';
import { openLoop, type OpenLoopRun, RawHttp } from './raw-http.js';
import { type Child, cpuSeconds, httpOk, root, sparePort, spawnChild, startRedis, waitFor } from './procs.js';
import { int, median, ms, percentile, printMarkdown, printTable, Samples } from './stats.js';

const QUICK = process.env['BENCH_QUICK'] === '1';
const envNumber = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

const IN_FLIGHT = 64;
const ROUNDS = envNumber('BENCH_ROUNDS', QUICK ? 3 : 5);
/** Distinct tokens of each kind (and raw keys), cycled through by every side. */
const TOKENS = QUICK ? 300 : 1_000;
const CACHED_OPS = QUICK ? 20_000 : 60_000;
const JOSE_OPS = QUICK ? 3_000 : 10_000;
const INTROSPECTION_OPS = QUICK ? 300 : 1_500;
const STAMPEDE = 500;
const STAMPEDES = QUICK ? 2 : 5;
const HTTP_RATES = (process.env['BENCH_HTTP_RATES'] ?? '5000,4000,3000,2000,1000')
  .split(',')
  .filter(Boolean)
  .map(Number);
const HTTP_SECONDS = envNumber('BENCH_HTTP_SECONDS', QUICK ? 3 : 10);
const HTTP_ROUNDS = QUICK ? 1 : 2;
const HTTP_WARMUP_SECONDS = QUICK ? 1 : 2;
const HTTP_CONNECTIONS = 32;

const TARGET_GET_RATIO = 0.8;
const TARGET_JOSE_RATIO = 10;

const PREFIX = 'bt';
const TAG_SECRET = 'bench-tokens-tag-secret-0123456789';
const TOKEN_TTL_SECONDS = 3600;
const CALLER = { id: 'bench-resource-server', secret: 'bench-resource-server-secret-0123456789' };

// ---------------------------------------------------------------- measuring

/** One timed run of one side: `ops` calls, IN_FLIGHT at a time. */
interface Run {
  opsPerSec: number;
  p50: number;
  p99: number;
  /** CPU of this process per op (µs): the client (and, for introspection, the IdP too). */
  clientUs: number;
  /** CPU of the redis-server per op (µs). */
  redisUs: number;
  redisCommands: number;
  /** CPU of the IdP's process per op (µs). */
  idpUs: number;
}

interface RedisReading {
  /** used_cpu_sys + used_cpu_user of the redis-server (s). */
  cpu: number;
  /** Commands it has run (INFO commandstats), INFO itself left out. */
  commands: number;
}

/** Read on a connection of its own (`monitor`), nothing else on it. */
async function redisReading(monitor: Redis): Promise<RedisReading> {
  const info = await monitor.info('cpu', 'commandstats');
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? NaN);
  let commands = 0;
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    if (m[1] !== 'info') commands += Number(m[2]);
  return { cpu: field('used_cpu_sys') + field('used_cpu_user'), commands };
}

/** Redis CPU (µs) and commands per op between two readings. */
const perOp = (a: RedisReading, b: RedisReading, ops: number) => ({
  redisUs: ((b.cpu - a.cpu) * 1e6) / ops,
  redisCommands: (b.commands - a.commands) / ops,
});

async function measure(
  monitor: Redis,
  idpPid: number,
  ops: number,
  op: (i: number) => Promise<void>,
): Promise<Run> {
  const latencies = new Samples();
  const redis0 = await redisReading(monitor);
  const idp0 = cpuSeconds(idpPid);
  const cpu0 = process.cpuUsage();
  const wallMs = await timeMs(() =>
    pool(ops, IN_FLIGHT, async (i) => {
      const start = performance.now();
      await op(i);
      latencies.push(performance.now() - start);
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  const idpSeconds = cpuSeconds(idpPid) - idp0;
  const redis1 = await redisReading(monitor);
  const sorted = latencies.sorted();
  return {
    opsPerSec: ops / (wallMs / 1000),
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    clientUs: (cpu.user + cpu.system) / ops,
    idpUs: (idpSeconds * 1e6) / ops,
    ...perOp(redis0, redis1, ops),
  };
}

interface Side {
  name: string;
  ops: number;
  op: (i: number) => Promise<void>;
}

/** ROUNDS rounds of every side; the sides take turns at going first, so the drift hits all alike. */
async function interleaved(monitor: Redis, idpPid: number, sides: Side[]): Promise<Map<string, Run[]>> {
  const runs = new Map(sides.map((s) => [s.name, [] as Run[]]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < sides.length; k++) {
      const side = sides[(round + k) % sides.length]!;
      runs.get(side.name)!.push(await measure(monitor, idpPid, side.ops, side.op));
    }
    process.stdout.write(`  round ${round + 1}/${ROUNDS} done\n`);
  }
  return runs;
}

const range = (xs: number[], digits: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return `${median(xs).toFixed(digits)} (${sorted[0]!.toFixed(digits)}-${sorted.at(-1)!.toFixed(digits)})`;
};
const us = (v: number) => (v < 10 ? v.toFixed(1) : v.toFixed(0));
/** Per-round ratios a/b of a figure (rounds paired as they ran), as "median (min-max)". */
const ratioOf = (a: Run[], b: Run[], pick: (r: Run) => number, digits = 2) =>
  range(
    a.map((r, i) => pick(r) / pick(b[i]!)),
    digits,
  );
const med = (rs: Run[], pick: (r: Run) => number) => median(rs.map(pick));

// ---------------------------------------------------------------- the IdP, in a child process

interface IdpInfo {
  issuer: string;
  jwksUri: string;
  introspectionUri: string;
  client: { id: string; secret: string };
}

type IdpAsk = { op: 'count' } | { op: 'jwt' | 'opaque'; subs: string[] };
type IdpRequest = IdpAsk & { id: number };

/** The test IdP over IPC: mints tokens in batches and says how many introspections it answered. */
interface Idp extends IdpInfo {
  pid: number;
  introspections(): Promise<number>;
  mint(kind: 'jwt' | 'opaque', subs: string[]): Promise<string[]>;
  stop(): Promise<void>;
}

/** `node dist/bench/tokens.bench.js idp`: startTestIdp() serving the parent's requests over IPC. */
async function runIdpChild(): Promise<void> {
  const idp = await startTestIdp();
  process.on('message', (m: IdpRequest) => {
    const answer = (result: unknown) => process.send!({ id: m.id, result });
    if (m.op === 'count') answer(idp.introspections());
    else
      void Promise.all(
        m.subs.map((sub) => idp[m.op](sub, { sid: `sid-${sub}`, ttlSeconds: TOKEN_TTL_SECONDS })),
      ).then(answer);
  });
  process.once('disconnect', () => void idp.stop().finally(() => process.exit(0)));
  const { issuer, jwksUri, introspectionUri, client } = idp;
  process.send!({ ready: { issuer, jwksUri, introspectionUri, client } satisfies IdpInfo });
}

async function startIdp(): Promise<Idp> {
  const child = fork(join(root, 'dist/bench/tokens.bench.js'), ['idp'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let tail = '';
  child.stderr!.on('data', (c: Buffer) => (tail = (tail + c.toString()).slice(-4000)));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const pending = new Map<number, (result: unknown) => void>();
  let nextId = 0;
  const info = await new Promise<IdpInfo>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the IdP child exited (${code})\n${tail}`)));
    child.on('message', (m: { ready?: IdpInfo; id?: number; result?: unknown }) => {
      if (m.ready) return resolve(m.ready);
      pending.get(m.id!)?.(m.result);
      pending.delete(m.id!);
    });
  });
  const ask = <T>(request: IdpAsk) =>
    new Promise<T>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve as (result: unknown) => void);
      child.send({ ...request, id });
    });
  return {
    ...info,
    pid: child.pid!,
    introspections: () => ask<number>({ op: 'count' }),
    mint: (kind, subs) => ask<string[]>({ op: kind, subs }),
    stop: async () => {
      process.off('exit', killOnExit);
      child.removeAllListeners('exit');
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.disconnect();
      await exited;
    },
  };
}

// ---------------------------------------------------------------- setup

interface Setup {
  idp: Idp;
  redisServer: Child;
  redis: Redis;
  monitor: Redis;
  issuers: TokenIssuerConfig[];
  /** Verifier whose cache keeps no memory of tokens, so every JWT hit goes by the user hint. */
  jwtVerifier: TokenVerifier;
  /** Verifier that has read every token before (opaque and JWT), so every hit goes by its memory. */
  opaqueVerifier: TokenVerifier;
  opaqueStore: SessionStore;
  jwts: string[];
  opaques: string[];
  subs: string[];
  recordBytes: { jwt: number; opaque: number };
}

async function setup(): Promise<Setup> {
  const redisServer = await startRedis();
  const redis = new Redis({ host: '127.0.0.1', port: redisServer.port, maxRetriesPerRequest: 1 });
  const monitor = new Redis({ host: '127.0.0.1', port: redisServer.port });
  const idp = await startIdp();
  const issuers: TokenIssuerConfig[] = [
    {
      issuer: idp.issuer,
      audience: JWT_RESOURCE,
      jwksUri: idp.jwksUri,
      requireAtJwtTyp: true,
      groupsClaim: 'groups',
      introspection: { uri: idp.introspectionUri, clientId: idp.client.id, clientSecret: idp.client.secret },
    },
  ];
  const cache = { maxTtlSeconds: TOKEN_TTL_SECONDS };
  const opaqueStore = new SessionStore({ redis, prefix: PREFIX, tagSecret: TAG_SECRET });
  const opaqueVerifier = new TokenVerifier({ store: opaqueStore, issuers, cache });
  // The same store on the same client, but its TokenCache remembers no token (tagsKept: 0): what a
  // process that has not seen the JWT before does, or one past its memory's bound (10,000 tokens).
  const plain = new SessionStore({ redis, prefix: PREFIX, tagSecret: TAG_SECRET });
  const forgetful = new TokenCache(coreOf(plain), { tagsKept: 0 });
  const jwtStore = Object.create(plain, { tokens: { value: forgetful } }) as SessionStore;
  const jwtVerifier = new TokenVerifier({ store: jwtStore, issuers, cache });

  const subs = Array.from({ length: TOKENS }, (_, i) => `bench-user-${i}@tokens.example`);
  const jwts = await idp.mint('jwt', subs);
  const opaques = await idp.mint('opaque', subs);
  // First verifications: jose against the JWKS, introspection; both cache their token.
  const first = { jwt: 0, introspection: 0 };
  await pool(TOKENS, 16, async (i) => {
    const a = await jwtVerifier.verify(jwts[i]!);
    const b = await opaqueVerifier.verify(opaques[i]!);
    if (!a.active || !b.active) throw new Error(`a token did not verify: ${JSON.stringify([a, b])}`);
    if (a.source === 'jwt') first.jwt++;
    if (b.source === 'introspection') first.introspection++;
    // A process that has met the JWT before: a hit by the hint, which it then remembers.
    const c = await opaqueVerifier.verify(jwts[i]!);
    if (!c.active || c.source !== 'cache') throw new Error('a JWT was not cached');
  });
  if (first.jwt !== TOKENS || first.introspection !== TOKENS)
    throw new Error(`first verifications not from the issuer: ${JSON.stringify(first)}`);

  // The size of what a hit reads: the script's reply (uid, iat, exp, claims JSON).
  const replyBytes = async (token: string, sub: string) => {
    const key = opaqueStore.keys.token(opaqueStore.keys.userTag(sub), tokenRef(token).hash);
    // What a hit answers: the record's ready JSON text ('j').
    const answer = await redis.hget(key, 'j');
    if (answer === null) throw new Error('cached record not where the bench expects it');
    return Buffer.byteLength(answer);
  };
  const recordBytes = {
    jwt: await replyBytes(jwts[0]!, subs[0]!),
    opaque: await replyBytes(opaques[0]!, subs[0]!),
  };
  return {
    idp,
    redisServer,
    redis,
    monitor,
    issuers,
    jwtVerifier,
    opaqueVerifier,
    opaqueStore,
    jwts,
    opaques,
    subs,
    recordBytes,
  };
}

// ---------------------------------------------------------------- 1-3: the verify path and its baselines

const SIDES = {
  get: 'raw GET',
  hmget: 'HMGET of the record (no Lua)',
  read: 'store.tokens.read (memory)',
  jwt: 'verify(), JWT (user hint)',
  jwtMemory: 'verify(), JWT (memory)',
  opaque: 'verify(), opaque (memory)',
  joseJwks: 'jose jwtVerify, local JWKS',
  joseKey: 'jose jwtVerify, imported key',
  introspect: 'introspection POST to the IdP',
} as const;

/** Walks 0..n-1 in an order unrelated to the index, so consecutive calls hit different users. */
const spread = (i: number, n: number) => (i * 7919) % n;

async function benchVerify(s: Setup): Promise<Map<string, Run[]>> {
  const { redis, monitor, jwts, opaques, subs } = s;
  const n = TOKENS;
  // Raw keys as many as the tokens, each a value as big as the bigger of the two cached records.
  const valueBytes = Math.max(s.recordBytes.jwt, s.recordBytes.opaque);
  const value = 'v'.repeat(valueBytes);
  const rawKeys = Array.from({ length: n }, (_, i) => `raw:{r${i}}:v`);
  const pipeline = redis.pipeline();
  for (const key of rawKeys) pipeline.set(key, value);
  await pipeline.exec();
  const recordKeys = opaques.map((t, i) =>
    s.opaqueStore.keys.token(s.opaqueStore.keys.userTag(subs[i]!), tokenRef(t).hash),
  );
  const refs = opaques.map((t) => tokenRef(t));

  const jwks = (await (await fetch(s.idp.jwksUri)).json()) as JSONWebKeySet;
  const localJwks = createLocalJWKSet(jwks);
  const key = await importJWK(jwks.keys[0]!, 'RS256');
  // What the library's Issuer asks of jose (issuer.ts).
  const joseOptions: JWTVerifyOptions = {
    issuer: s.idp.issuer,
    audience: [JWT_RESOURCE],
    algorithms: ASYMMETRIC_ALGORITHMS,
    clockTolerance: 30,
    typ: 'at+jwt',
    requiredClaims: ['exp', 'iat', 'sub'],
  };
  const { introspectionUri, client } = s.idp;
  const basic = `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`;

  const expectCached = (r: Awaited<ReturnType<TokenVerifier['verify']>>) => {
    if (!r.active || r.source !== 'cache') throw new Error(`not a cache hit: ${JSON.stringify(r)}`);
  };
  const sides: Side[] = [
    {
      name: SIDES.get,
      ops: CACHED_OPS,
      op: async (i) => {
        if ((await redis.get(rawKeys[spread(i, n)]!)) === null) throw new Error('raw key not found');
      },
    },
    {
      name: SIDES.hmget,
      ops: CACHED_OPS,
      op: async (i) => {
        const f = await redis.hmget(recordKeys[spread(i, n)]!, 'iat', 'ih', 'j');
        if (f[0] === null) throw new Error('record not found');
      },
    },
    {
      name: SIDES.read,
      ops: CACHED_OPS,
      op: async (i) => {
        if ((await s.opaqueStore.tokens.read(refs[spread(i, n)]!)).state !== 'hit') throw new Error('miss');
      },
    },
    {
      name: SIDES.jwt,
      ops: CACHED_OPS,
      op: async (i) => expectCached(await s.jwtVerifier.verify(jwts[spread(i, n)]!)),
    },
    {
      name: SIDES.jwtMemory,
      ops: CACHED_OPS,
      op: async (i) => expectCached(await s.opaqueVerifier.verify(jwts[spread(i, n)]!)),
    },
    {
      name: SIDES.opaque,
      ops: CACHED_OPS,
      op: async (i) => expectCached(await s.opaqueVerifier.verify(opaques[spread(i, n)]!)),
    },
    {
      name: SIDES.joseJwks,
      ops: JOSE_OPS,
      op: async (i) => void (await jwtVerify(jwts[spread(i, n)]!, localJwks, joseOptions)),
    },
    {
      name: SIDES.joseKey,
      ops: JOSE_OPS,
      op: async (i) => void (await jwtVerify(jwts[spread(i, n)]!, key, joseOptions)),
    },
    {
      name: SIDES.introspect,
      ops: INTROSPECTION_OPS,
      op: async (i) => {
        const response = await fetch(introspectionUri, {
          method: 'POST',
          headers: {
            authorization: basic,
            'content-type': 'application/x-www-form-urlencoded',
            accept: 'application/json',
          },
          body: new URLSearchParams({ token: opaques[spread(i, n)]!, token_type_hint: 'access_token' }),
        });
        const answer = (await response.json()) as { active?: boolean };
        if (answer.active !== true) throw new Error(`introspection said ${JSON.stringify(answer)}`);
      },
    },
  ];
  // Warm-up: scripts loaded, V8 optimised, sockets open.
  for (const side of sides) await pool(Math.min(side.ops, 2_000), IN_FLIGHT, side.op);
  console.log(
    `\n1-3. ${ROUNDS} interleaved rounds; per round ${int(CACHED_OPS)} ops of each Redis side, ${int(JOSE_OPS)} ` +
      `of each jose side, ${int(INTROSPECTION_OPS)} introspections; ${IN_FLIGHT} in flight, one ioredis client`,
  );
  return interleaved(monitor, s.idp.pid, sides);
}

function printVerify(s: Setup, runs: Map<string, Run[]>): string[][] {
  const get = runs.get(SIDES.get)!;
  const jwt = runs.get(SIDES.jwt)!;
  const opaque = runs.get(SIDES.opaque)!;
  const jwtMemory = runs.get(SIDES.jwtMemory)!;
  const rows = [...runs.entries()].map(([name, rs]) => [
    name,
    int(med(rs, (r) => r.opsPerSec)),
    ms(med(rs, (r) => r.p50)),
    ms(med(rs, (r) => r.p99)),
    us(med(rs, (r) => r.clientUs)),
    us(med(rs, (r) => r.redisUs)),
    med(rs, (r) => r.redisCommands).toFixed(2),
    us(med(rs, (r) => r.idpUs)),
    ratioOf(rs, get, (r) => r.opsPerSec),
    ratioOf(rs, get, (r) => r.p99),
  ]);
  console.log(
    `\n   Medians over the rounds; ratios per round to the raw GET of the same round, median (min-max).\n` +
      `   raw GET value ${Math.max(s.recordBytes.jwt, s.recordBytes.opaque)} B; cached records reply ` +
      `${s.recordBytes.jwt} B (JWT) and ${s.recordBytes.opaque} B (opaque).` +
      `\n   Client CPU: this process (all its threads: jose's WebCrypto runs on the libuv pool); the IdP is a child.` +
      `\n   Redis cmds/op: INFO commandstats calls per op, the commands a script runs counted too (one round trip).`,
  );
  printTable(
    [
      'side',
      'ops/s',
      'p50 ms',
      'p99 ms',
      'client CPU µs/op',
      'Redis CPU µs/op',
      'Redis cmds/op',
      'IdP CPU µs/op',
      'ops/s ÷ GET',
      'p99 ÷ GET',
    ],
    rows,
  );
  const joseJwks = runs.get(SIDES.joseJwks)!;
  const joseKey = runs.get(SIDES.joseKey)!;
  const introspect = runs.get(SIDES.introspect)!;
  const ops = (r: Run) => r.opsPerSec;
  const summary = [
    ['verify JWT (hint) ÷ raw GET, ops/s', ratioOf(jwt, get, ops), `≥ ${TARGET_GET_RATIO}`],
    ['verify JWT (memory) ÷ raw GET, ops/s', ratioOf(jwtMemory, get, ops), `≥ ${TARGET_GET_RATIO}`],
    ['verify opaque (memory) ÷ raw GET, ops/s', ratioOf(opaque, get, ops), `≥ ${TARGET_GET_RATIO}`],
    ['verify JWT (hint) ÷ raw GET, p99', ratioOf(jwt, get, (r) => r.p99), ''],
    ['verify opaque (memory) ÷ raw GET, p99', ratioOf(opaque, get, (r) => r.p99), ''],
    ['verify JWT (hint) ÷ jose local JWKS, ops/s', ratioOf(jwt, joseJwks, ops), `≥ ${TARGET_JOSE_RATIO}`],
    ['verify JWT (hint) ÷ jose imported key, ops/s', ratioOf(jwt, joseKey, ops), ''],
    ['(bound: raw GET ÷ jose local JWKS, ops/s)', ratioOf(get, joseJwks, ops), ''],
    ['verify opaque (memory) ÷ introspection, ops/s', ratioOf(opaque, introspect, ops, 1), ''],
    ['introspection ÷ verify opaque, p99', ratioOf(introspect, opaque, (r) => r.p99, 1), ''],
  ];
  console.log('\n   Ratios (per round, median (min-max))');
  printTable(['ratio', 'this run', 'target'], summary);
  return rows;
}

// ---------------------------------------------------------------- 4: the stampede

interface VerifyChild {
  ask(count: number, token: string): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** test/support/verify-child.mjs: a second process verifying with the built library on the same Redis. */
async function startVerifyChild(s: Setup): Promise<VerifyChild> {
  const child = spawn(process.execPath, [join(root, 'test/support/verify-child.mjs')], {
    cwd: root,
    env: {
      PATH: process.env['PATH'] ?? '',
      VERIFY_CHILD: JSON.stringify({
        redisUrl: `redis://127.0.0.1:${s.redisServer.port}`,
        prefix: PREFIX,
        tagSecret: TAG_SECRET,
        issuers: s.issuers,
      }),
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const line = await lines.next();
    if (line.done) throw new Error('verify-child exited');
    return line.value as string;
  };
  if ((await next()) !== 'ready') throw new Error('verify-child did not say ready');
  return {
    ask: async (count, token) => {
      child.stdin!.write(`${count} ${token}\n`);
      return JSON.parse(await next()) as Record<string, number>;
    },
    stop: async () => {
      process.off('exit', killOnExit);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin!.end();
      await exited;
    },
  };
}

interface Stampede {
  calls: number;
  ms: number;
  here: Record<string, number>;
  there: Record<string, number>;
}

async function benchStampede(s: Setup): Promise<Stampede[]> {
  const child = await startVerifyChild(s);
  const results: Stampede[] = [];
  try {
    for (let k = 0; k < STAMPEDES; k++) {
      const [token] = await s.idp.mint('opaque', [`stampede-${k}@tokens.example`]);
      const before = await s.idp.introspections();
      const start = performance.now();
      const [there, here] = await Promise.all([
        child.ask(STAMPEDE / 2, token!),
        Promise.all(Array.from({ length: STAMPEDE / 2 }, () => s.opaqueVerifier.verify(token))),
      ]);
      const elapsed = performance.now() - start;
      const tally: Record<string, number> = {};
      for (const r of here) {
        const key = r.active ? `active:${r.source}` : `inactive:${r.reason}`;
        tally[key] = (tally[key] ?? 0) + 1;
      }
      results.push({ calls: (await s.idp.introspections()) - before, ms: elapsed, here: tally, there });
    }
  } finally {
    await child.stop();
  }
  console.log(
    `\n4. Stampede: ${STAMPEDE} concurrent verify() of one fresh opaque token, ${STAMPEDE / 2} here and ` +
      `${STAMPEDE / 2} in a second process (verify-child.mjs), ${STAMPEDES} fresh tokens`,
  );
  const show = (t: Record<string, number>) =>
    Object.entries(t)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
  printTable(
    ['token', 'introspection calls at the IdP', 'all answered in ms', 'here', 'other process'],
    results.map((r, i) => [String(i + 1), String(r.calls), ms(r.ms), show(r.here), show(r.there)]),
  );
  return results;
}

// ---------------------------------------------------------------- 5: POST /oauth2/introspect over HTTP

/** The floor of part 5: node:http, one raw GET per request, a fixed answer (run as a child). */
function runFloorServer(): void {
  const env = (name: string) => {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is required`);
    return v;
  };
  const redis = new Redis(env('REDIS_URL'));
  const key = env('FLOOR_KEY');
  const authorization = env('FLOOR_AUTHORIZATION');
  const answer = env('FLOOR_ANSWER');
  const server = createServer((req, res) => {
    if (req.url === '/health/ready') {
      res.writeHead(redis.status === 'ready' ? 200 : 503).end();
      return;
    }
    if (
      req.method !== 'POST' ||
      req.url !== '/oauth2/introspect' ||
      req.headers.authorization !== authorization
    ) {
      res.writeHead(401).end();
      return;
    }
    req.resume();
    req.on('end', () => {
      redis.get(key).then(
        (v) =>
          v === null
            ? res.writeHead(503).end()
            : res
                .writeHead(200, {
                  'content-type': 'application/json',
                  'content-length': Buffer.byteLength(answer),
                })
                .end(answer),
        () => res.writeHead(503).end(),
      );
    });
  });
  server.keepAliveTimeout = 72_000;
  server.listen(Number(env('PORT')), '127.0.0.1');
  process.once('SIGTERM', () => {
    server.close();
    redis.disconnect();
    process.exit(0);
  });
}

interface HttpRun extends OpenLoopRun {
  server: 'floor' | 'gateway';
  rate: number;
  redisCommands: number;
  /** CPU per request (µs): this process (the generator), the server process, the redis-server. */
  generatorUs: number;
  serverUs: number;
  redisUs: number;
}

const sustained = (r: HttpRun) => r.failed === 0 && r.achieved >= r.rate * 0.97 && r.p99 < 100;

/** One side at `rate` for `seconds` (open loop), with its server's, Redis's and the generator's CPU. */
async function offer(
  target: { name: 'floor' | 'gateway'; child: Child },
  monitor: Redis,
  rate: number,
  seconds: number,
  requests: Buffer[],
): Promise<HttpRun> {
  const client = await RawHttp.open(target.child.port, HTTP_CONNECTIONS, { active: true });
  const redis0 = await redisReading(monitor);
  const server0 = cpuSeconds(target.child.pid);
  const cpu0 = process.cpuUsage();
  const run = await openLoop(client, requests, rate, seconds, (a) => a.status === 200 && a.active === true);
  const cpu = process.cpuUsage(cpu0);
  const serverSeconds = cpuSeconds(target.child.pid) - server0;
  const redis1 = await redisReading(monitor);
  client.close();
  return {
    server: target.name,
    rate,
    ...run,
    generatorUs: (cpu.user + cpu.system) / run.requests,
    serverUs: (serverSeconds * 1e6) / run.requests,
    ...perOp(redis0, redis1, run.requests),
  };
}

const GATEWAY_CONTROLLER = 'dist/apps/gateway/src/tokens/introspect.controller.js';

async function startGateway(s: Setup): Promise<Child> {
  const port = await sparePort();
  const child = spawnChild('gateway', port, process.execPath, ['dist/apps/gateway/src/main.js'], {
    REDIS_URL: `redis://127.0.0.1:${s.redisServer.port}`,
    QUEUE_PREFIX: `{${PREFIX}q}`,
    SESSION_PREFIX: PREFIX,
    SESSION_TAG_SECRET: TAG_SECRET,
    PINGONE_WEBHOOK_SECRET: 'bench-tokens-webhook-secret-0123456789',
    CLOCK_SKEW_MS: '0',
    LOG_LEVEL: 'warn',
    PORT: String(port),
    EMBEDDED_WORKER: 'false',
    TOKEN_ISSUER: s.idp.issuer,
    TOKEN_AUDIENCE: JWT_RESOURCE,
    TOKEN_JWKS_URI: s.idp.jwksUri,
    TOKEN_REQUIRE_AT_JWT: 'true',
    TOKEN_GROUPS_CLAIM: 'groups',
    TOKEN_INTROSPECTION_URI: s.idp.introspectionUri,
    TOKEN_INTROSPECTION_CLIENT_ID: s.idp.client.id,
    TOKEN_INTROSPECTION_CLIENT_SECRET: s.idp.client.secret,
    TOKEN_CACHE_MAX_TTL_SECONDS: String(TOKEN_TTL_SECONDS),
    INTROSPECTION_CLIENTS: `${CALLER.id}:${createHash('sha256').update(CALLER.secret).digest('hex')}`,
  });
  await waitFor(child, httpOk(port, '/health/ready'));
  return child;
}

async function startFloor(s: Setup, authorization: string, answer: string): Promise<Child> {
  const port = await sparePort();
  const child = spawnChild(
    'floor',
    port,
    process.execPath,
    [join(root, 'dist/bench/tokens.bench.js'), 'floor'],
    {
      REDIS_URL: `redis://127.0.0.1:${s.redisServer.port}`,
      PORT: String(port),
      FLOOR_KEY: 'raw:{r0}:v',
      FLOOR_AUTHORIZATION: authorization,
      FLOOR_ANSWER: answer,
    },
  );
  await waitFor(child, httpOk(port, '/health/ready'));
  return child;
}

/** Part 5, or the reason it was skipped. */
async function benchHttp(s: Setup): Promise<{ runs: HttpRun[]; rate: number } | string> {
  if (!existsSync(join(root, GATEWAY_CONTROLLER)))
    return `skipped: endpoint missing (no ${GATEWAY_CONTROLLER})`;
  const authorization = `Basic ${Buffer.from(`${CALLER.id}:${CALLER.secret}`).toString('base64')}`;
  const gateway = await startGateway(s);
  let floor: Child | undefined;
  try {
    const url = `http://127.0.0.1:${gateway.port}/oauth2/introspect`;
    const probe = await fetch(url, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: s.jwts[0]! }),
    });
    const probeText = await probe.text();
    if (probe.status === 404) return 'skipped: endpoint missing (POST /oauth2/introspect answers 404)';
    if (probe.status !== 200 || !probeText.includes('"active":true'))
      throw new Error(`POST /oauth2/introspect answered ${probe.status} ${probeText.slice(0, 300)}`);
    // The floor answers what the gateway answered for a token, fixed.
    floor = await startFloor(s, authorization, probeText);
    const request = (port: number, token: string) => {
      const body = `token=${encodeURIComponent(token)}`;
      return Buffer.from(
        `POST /oauth2/introspect HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nauthorization: ${authorization}\r\n` +
          `content-type: application/x-www-form-urlencoded\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        'latin1',
      );
    };
    // JWTs and opaque tokens, every one cached in Redis already, alternating.
    const tokens = s.jwts.flatMap((j, i) => [j, s.opaques[i]!]);
    const targets = [
      { name: 'floor' as const, child: floor, requests: tokens.map((t) => request(floor!.port, t)) },
      { name: 'gateway' as const, child: gateway, requests: tokens.map((t) => request(gateway.port, t)) },
    ];
    // Warm-up of each: every token once (the gateway then remembers the opaque ones), then a short run.
    for (const t of targets) {
      const client = await RawHttp.open(t.child.port, HTTP_CONNECTIONS, { active: true });
      await pool(t.requests.length, HTTP_CONNECTIONS, async (i) => {
        const a = await client.send(t.requests[i]!);
        if (a.status !== 200 || !a.active) throw new Error(`${t.name} warm-up answered ${a.status}`);
      });
      client.close();
      await offer(t, s.monitor, HTTP_RATES[0]!, HTTP_WARMUP_SECONDS, t.requests);
    }
    console.log(
      `\n5. POST /oauth2/introspect, open loop: each rate ${HTTP_SECONDS} s, ${HTTP_ROUNDS} round(s) of floor and ` +
        `gateway taking turns;\n   ${HTTP_CONNECTIONS} kept-alive raw sockets, JWT and opaque tokens ` +
        `alternating (all cached), latency from when each request was due`,
    );
    const runs: HttpRun[] = [];
    let reported = HTTP_RATES.at(-1)!;
    for (const rate of HTTP_RATES) {
      const here: HttpRun[] = [];
      for (let round = 0; round < HTTP_ROUNDS; round++)
        for (let k = 0; k < targets.length; k++) {
          const t = targets[(round + k) % targets.length]!;
          const run = await offer(t, s.monitor, rate, HTTP_SECONDS, t.requests);
          here.push(run);
          console.log(
            `  ${t.name} at ${int(rate)}/s: ${int(run.achieved)}/s answered, p50 ${ms(run.p50)} p99 ${ms(run.p99)} ` +
              `max ${ms(run.max)} ms, ${run.failed} failed${sustained(run) ? '' : '  NOT sustained'}`,
          );
        }
      runs.push(...here);
      if (here.filter((r) => r.server === 'gateway').every(sustained)) {
        reported = rate;
        break;
      }
    }
    return { runs, rate: reported };
  } finally {
    await floor?.stop();
    await gateway.stop();
  }
}

function printHttp(result: { runs: HttpRun[]; rate: number }): string[][] {
  const at = result.runs.filter((r) => r.rate === result.rate);
  const floor = at.filter((r) => r.server === 'floor');
  const gateway = at.filter((r) => r.server === 'gateway');
  const rows = [floor, gateway].map((rs) => [
    rs[0]!.server === 'floor' ? 'floor (node:http + 1 GET)' : 'gateway POST /oauth2/introspect',
    int(median(rs.map((r) => r.achieved))),
    ms(median(rs.map((r) => r.p50))),
    ms(median(rs.map((r) => r.p99))),
    ms(Math.max(...rs.map((r) => r.max))),
    String(rs.reduce((n, r) => n + r.failed, 0)),
    us(median(rs.map((r) => r.serverUs))),
    us(median(rs.map((r) => r.redisUs))),
    median(rs.map((r) => r.redisCommands)).toFixed(2),
    ms(median(rs.map((r) => r.serviceP99))),
    us(median(rs.map((r) => r.generatorUs))),
    ms(Math.max(...rs.map((r) => r.sendLagP99))),
  ]);
  const pairs = gateway.map((g, i) => [g, floor[i]!] as const);
  const ratio = (pick: (r: HttpRun) => number, digits = 2) =>
    range(
      pairs.map(([g, f]) => pick(g) / pick(f)),
      digits,
    );
  console.log(`\n   at ${int(result.rate)} req/s offered (medians over rounds; max of max)`);
  printTable(
    [
      'server',
      'answered/s',
      'p50 ms',
      'p99 ms',
      'max ms',
      'failed',
      'server CPU µs/req',
      'Redis CPU µs/req',
      'Redis cmds/req',
      'p99 from write ms',
      'generator CPU µs/req',
      'send lag p99 ms',
    ],
    rows,
  );
  console.log('');
  printTable(
    ['gateway ÷ floor', 'this run'],
    [
      ['answered/s', ratio((r) => r.achieved)],
      ['p50', ratio((r) => r.p50)],
      ['p99', ratio((r) => r.p99)],
      ['server CPU per request', ratio((r) => r.serverUs, 1)],
    ],
  );
  return rows;
}

// ---------------------------------------------------------------- main

/** Microseconds per call of a synchronous step, over `n` calls. */
function perCall(n: number, fn: (i: number) => unknown): number {
  for (let i = 0; i < n / 5; i++) fn(i); // warm-up
  const start = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  return ((performance.now() - start) * 1000) / n;
}

async function main(): Promise<void> {
  const started = performance.now();
  const s = await setup();
  const cleanup = async () => {
    s.redis.disconnect();
    s.monitor.disconnect();
    await s.idp.stop();
    await s.redisServer.stop();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void cleanup().finally(() => process.exit(130)));
  try {
    const version = /redis_version:(\S+)/.exec(await s.redis.info('server'))?.[1];
    console.log(
      `bench:tokens${QUICK ? ' (BENCH_QUICK=1)' : ''}  redis-server ${version} on 127.0.0.1:${s.redisServer.port} ` +
        `(own, throw-away)  node ${process.version}  ${availableParallelism()} CPUs  ${new Date().toISOString()}\n` +
        `  ${TOKENS} JWTs (RS256, ${s.jwts[0]!.length} chars) and ${TOKENS} opaque tokens (${s.opaques[0]!.length} chars) ` +
        `of the test IdP, each verified once (cached)`,
    );
    const verifyRuns = await benchVerify(s);
    printVerify(s, verifyRuns);
    // Where a hit's client CPU goes, in part: the synchronous steps the verifier takes for each token.
    const steps = [
      ['tokenRef (SHA-256 of the JWT)', perCall(50_000, (i) => tokenRef(s.jwts[i % TOKENS]!))],
      ['tokenRef (SHA-256 of the opaque token)', perCall(50_000, (i) => tokenRef(s.opaques[i % TOKENS]!))],
      [
        'keys.userTag (HMAC-SHA-256 of the user id)',
        perCall(50_000, (i) => s.opaqueStore.keys.userTag(s.subs[i % TOKENS]!)),
      ],
      [
        'JWT payload: base64url decode + JSON.parse',
        perCall(50_000, (i) => {
          const t = s.jwts[i % TOKENS]!;
          return JSON.parse(
            Buffer.from(t.slice(t.indexOf('.') + 1, t.lastIndexOf('.')), 'base64url').toString(),
          );
        }),
      ],
    ] as const;
    console.log('\n   Synchronous steps of a hit, µs per call (this process, same run)');
    printTable(
      ['step', 'µs'],
      steps.map(([name, v]) => [name, v.toFixed(2)]),
    );

    const stampedes = await benchStampede(s);
    const http = await benchHttp(s);
    if (typeof http === 'string') console.log(`\n5. POST /oauth2/introspect: ${http}`);
    else printHttp(http);

    // The figures at a glance, in Markdown.
    const get = verifyRuns.get(SIDES.get)!;
    const ops = (r: Run) => r.opsPerSec;
    const figure = (name: string) => int(med(verifyRuns.get(name)!, ops));
    const summary: string[][] = [
      [
        'cached verify, JWT (hint), ops/s',
        figure(SIDES.jwt),
        `raw GET ${figure(SIDES.get)}`,
        ratioOf(verifyRuns.get(SIDES.jwt)!, get, ops),
        `≥ ${TARGET_GET_RATIO}`,
      ],
      [
        'cached verify, JWT (memory), ops/s',
        figure(SIDES.jwtMemory),
        `raw GET ${figure(SIDES.get)}`,
        ratioOf(verifyRuns.get(SIDES.jwtMemory)!, get, ops),
        `≥ ${TARGET_GET_RATIO}`,
      ],
      [
        'cached verify, opaque (memory), ops/s',
        figure(SIDES.opaque),
        `raw GET ${figure(SIDES.get)}`,
        ratioOf(verifyRuns.get(SIDES.opaque)!, get, ops),
        `≥ ${TARGET_GET_RATIO}`,
      ],
      [
        'cached verify, JWT, p99 ms',
        ms(med(verifyRuns.get(SIDES.jwt)!, (r) => r.p99)),
        `raw GET ${ms(med(get, (r) => r.p99))}`,
        ratioOf(verifyRuns.get(SIDES.jwt)!, get, (r) => r.p99),
        '',
      ],
      [
        'cached verify, JWT, ops/s',
        figure(SIDES.jwt),
        `jose local JWKS ${figure(SIDES.joseJwks)}`,
        ratioOf(verifyRuns.get(SIDES.jwt)!, verifyRuns.get(SIDES.joseJwks)!, ops),
        `≥ ${TARGET_JOSE_RATIO}`,
      ],
      [
        'cached verify, opaque, ops/s',
        figure(SIDES.opaque),
        `introspection ${figure(SIDES.introspect)}`,
        ratioOf(verifyRuns.get(SIDES.opaque)!, verifyRuns.get(SIDES.introspect)!, ops, 1),
        '',
      ],
      [
        `stampede of ${STAMPEDE} (2 processes), IdP calls`,
        stampedes.map((r) => r.calls).join(', '),
        '1',
        '',
        '1',
      ],
    ];
    if (typeof http === 'string') summary.push(['POST /oauth2/introspect', http, '', '', '']);
    else {
      const at = http.runs.filter((r) => r.rate === http.rate);
      const g = at.filter((r) => r.server === 'gateway');
      const f = at.filter((r) => r.server === 'floor');
      summary.push(
        [
          `POST /oauth2/introspect at ${int(http.rate)}/s offered, answered/s`,
          int(median(g.map((r) => r.achieved))),
          `floor ${int(median(f.map((r) => r.achieved)))}`,
          range(
            g.map((r, i) => r.achieved / f[i]!.achieved),
            2,
          ),
          '',
        ],
        [
          'POST /oauth2/introspect, p99 ms',
          ms(median(g.map((r) => r.p99))),
          `floor ${ms(median(f.map((r) => r.p99)))}`,
          range(
            g.map((r, i) => r.p99 / f[i]!.p99),
            2,
          ),
          '',
        ],
      );
    }
    console.log('\nSummary (Markdown; ratios per round, median (min-max))\n');
    printMarkdown(['figure', 'value', 'same-run baseline', 'ratio', 'target'], summary);
    console.log(`\nfinished in ${Math.round((performance.now() - started) / 1000)} s`);
  } finally {
    await cleanup();
  }
}

if (process.argv[2] === 'floor') runFloorServer();
else if (process.argv[2] === 'idp') void runIdpChild();
else
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
