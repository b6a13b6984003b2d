// A big group, revoked: from the admin call (POST /admin/groups/:id/revoke) until every member's
// session is unreadable, with the gateway and one worker as separate processes on a throw-away
// redis-server whose slow log keeps every command over 10 ms. The floor, in the same run: the same
// number of users revoked by revokeUser straight from this process, 64 calls in flight.
// Run with `npm run bench:group` (BENCH_GROUP_MEMBERS, default 50,000).
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { SessionStore } from '#session-store';
import { type Child, httpOk, loadAverage, sparePort, spawnChild, startRedis, waitFor } from './procs.js';
import { pool } from './load.js';
import { int, ms } from './stats.js';

const MEMBERS = Number(process.env['BENCH_GROUP_MEMBERS'] ?? 50_000);
const TAG_SECRET = 'bench-group-session-tag-secret-0123456789';
const ADMIN_KEY = 'bench-group-admin-key-0123456789';
const SLOW_MICROS = 10_000;

/** `n` users with one session each holding `group`; their session ids. */
async function members(store: SessionStore, n: number, group: string): Promise<string[]> {
  const ids: string[] = new Array(n);
  await pool(n, 128, async (i) => {
    ids[i] = (
      await store.createSession({ userId: randomUUID(), ttlSeconds: 3600, groups: [group] })
    ).sessionId;
  });
  await sleep(2);
  return ids;
}

/** Milliseconds from `start` until every session reads null (all read once a round, 500 at a time). */
async function untilUnreadable(store: SessionStore, sessions: string[], start: number): Promise<number> {
  let left = sessions;
  for (;;) {
    const still: string[] = [];
    for (let i = 0; i < left.length; i += 500) {
      const batch = left.slice(i, i + 500);
      const reads = await Promise.all(batch.map((s) => store.getSession(s)));
      reads.forEach((r, j) => r && still.push(batch[j]!));
    }
    if (still.length === 0) return performance.now() - start;
    if (performance.now() - start > 120_000)
      throw new Error(`${still.length} sessions still readable after 120 s`);
    left = still;
    await sleep(5);
  }
}

async function main(): Promise<void> {
  const children: Child[] = [];
  const redisServer = await startRedis();
  children.push(redisServer);
  const redis = new Redis({ host: '127.0.0.1', port: redisServer.port });
  const probe = new Redis({ host: '127.0.0.1', port: redisServer.port });
  try {
    await redis.config('SET', 'slowlog-log-slower-than', String(SLOW_MICROS));
    const env = {
      REDIS_URL: `redis://127.0.0.1:${redisServer.port}`,
      SESSION_PREFIX: 'grp',
      SESSION_TAG_SECRET: TAG_SECRET,
      ADMIN_API_KEY: ADMIN_KEY,
      CLOCK_SKEW_MS: '0',
      LOG_LEVEL: 'warn',
    };
    const storeOn = (r: Redis) =>
      new SessionStore({ redis: r, prefix: 'grp', tagSecret: TAG_SECRET, clockSkewMs: 0 });
    const store = storeOn(redis);
    const probeStore = storeOn(probe);
    console.log(
      `bench:group  ${int(MEMBERS)} members, one session each  node ${process.version}  load avg ${loadAverage()}`,
    );

    // The floor: the same revocations, straight from here.
    const floorSessions = await members(store, MEMBERS, 'floor-group');
    const floorUsers = await store.usersInGroup('floor-group');
    const floorStart = performance.now();
    await pool(floorUsers.length, 64, async (i) => {
      await store.revokeUser(floorUsers[i]!);
    });
    const floorMs = await untilUnreadable(probeStore, floorSessions, floorStart);

    const [port, workerPort] = [await sparePort(), await sparePort()];
    const gateway = spawnChild('gateway', port, process.execPath, ['dist/apps/gateway/src/main.js'], {
      ...env,
      PORT: String(port),
      EMBEDDED_WORKER: 'false',
    });
    const worker = spawnChild('worker', workerPort, process.execPath, ['dist/apps/worker/src/main.js'], {
      ...env,
      WORKER_PORT: String(workerPort),
    });
    children.push(gateway, worker);
    await Promise.all([
      waitFor(gateway, httpOk(port, '/health/ready')),
      waitFor(worker, httpOk(workerPort, '/health/ready')),
    ]);

    const sessions = await members(store, MEMBERS, 'big-group');
    await redis.call('SLOWLOG', 'RESET');
    const start = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}/admin/groups/big-group/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'bench' }),
    });
    if (res.status !== 202) throw new Error(`the admin call answered ${res.status}: ${await res.text()}`);
    const serviceMs = await untilUnreadable(probeStore, sessions, start);
    const slow = (await redis.call('SLOWLOG', 'GET', '128')) as [number, number, number, string[]][];
    const slowest = slow.reduce((m, [, , micros]) => Math.max(m, micros), 0);

    console.log(
      `\n| ${int(MEMBERS)} members | every session unreadable after | ratio | commands over 10 ms (slowest) |`,
    );
    console.log('| --- | ---: | ---: | ---: |');
    console.log(`| floor: revokeUser from the bench, 64 in flight | ${ms(floorMs)} ms | 1.00x | - |`);
    console.log(
      `| service: admin call, gateway + worker | ${ms(serviceMs)} ms | ${(serviceMs / floorMs).toFixed(2)}x | ` +
        `${slow.length} (${slow.length ? `${ms(slowest / 1000)} ms: ${slow[0]![3].slice(0, 2).join(' ')}` : '-'}) |`,
    );
  } finally {
    redis.disconnect();
    probe.disconnect();
    for (const c of [...children].reverse()) await c.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
