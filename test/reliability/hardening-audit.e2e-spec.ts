import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { createHash } from 'node:crypto';
import request from 'supertest';
import { loadConfig } from '#config';
import { AuditLog, QueueKeys } from '#revocation';
import { bootGateway, logLines, startGateway, type TestGateway } from '../support/gateway.js';
import { deletePrefix, REDIS_URL, uniquePrefix, waitFor } from '../support/redis.js';

/**
 * The admin API's audit trail after the black-box attack (docs/reliability.md, "Hardening after the
 * black-box attack", findings 3, 4 and 8): anonymous refusals evict nothing, a known principal's 403 is
 * audited with its name, and a filtered read of the trail is bounded whatever the stream holds.
 */

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const ADMIN_KEY = 'hard-audit-full-key-0123456789';
const READER_KEY = 'hard-audit-reader-key-0123456789';
const OPS_KEY = 'hard-audit-ops-key-0123456789';
const WRONG_KEY = 'hard-audit-wrong-key-9f8e7d6c5b';
const HANDLE = 'AAAAAAAAAAAAAAAAAAAAAA';

type Method = 'get' | 'post' | 'delete';

describe('hardening: a small audit trail (AUDIT_MAX_ENTRIES=100)', () => {
  const prefix = `{${uniquePrefix('hard-audit')}}`;
  const { lines, stream: sink } = logLines();
  let app: NestFastifyApplication;
  let redis: Redis;
  const auditKey = new QueueKeys(prefix).audit;

  beforeAll(async () => {
    // Booted as test/support/gateway.ts does, with its log lines (warn and above) kept for inspection.
    const config = loadConfig({
      REDIS_URL,
      LOG_LEVEL: 'warn',
      QUEUE_PREFIX: prefix,
      ADMIN_API_KEY: ADMIN_KEY,
      ADMIN_API_KEYS: [
        `reader:sessions:read:${sha256(READER_KEY)}`,
        `ops:queues:admin:${sha256(OPS_KEY)}`,
      ].join(','),
      AUDIT_MAX_ENTRIES: '100',
      ADMIN_RATE_LIMIT_PER_MINUTE: '100000',
      ADMIN_AUTH_FAILURES_PER_MINUTE: '100000',
    });
    app = await bootGateway(config, { logs: sink });
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  });

  afterAll(async () => {
    await app?.close();
    if (redis) await deletePrefix(redis, prefix);
    redis?.disconnect();
  });

  const call = (method: Method, path: string, authorization?: string) => {
    const r = request(app.getHttpServer())[method](path);
    return authorization === undefined ? r : r.set('Authorization', authorization);
  };
  const post = (path: string, authorization?: string) =>
    call('post', path, authorization)
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ reason: 'hardening test' }));

  it('400 anonymous or wrong-credential calls evict no audit record: counted in /metrics, logged at warn without the credential', async () => {
    const userId = 'u-kept';
    await post(`/admin/users/${userId}/revoke`, `Bearer ${ADMIN_KEY}`).expect(202);
    const lengthBefore = await redis.xlen(auditKey);

    const jwtLike = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhdHRhY2tlciJ9.c2lnbmF0dXJl';
    const anonymous: (() => request.Test)[] = [
      () => call('get', '/admin/audit'),
      () => call('get', '/admin/quarantine', `Bearer ${WRONG_KEY}`),
      () => post(`/admin/users/${userId}/revoke`, `Bearer ${jwtLike}`),
      () =>
        call('delete', `/admin/users/${userId}/sessions/${HANDLE}`, `Basic ${btoa(`admin:${ADMIN_KEY}`)}`),
    ];
    const statuses: number[] = [];
    for (let batch = 0; batch < 16; batch++)
      statuses.push(
        ...(await Promise.all(Array.from({ length: 25 }, (_, i) => anonymous[(batch * 25 + i) % 4]!()))).map(
          (r) => r.status,
        ),
      );
    expect(statuses).toEqual(Array(400).fill(401));

    // The admin's revocation is still in the trail, and the flood wrote nothing to it.
    const audit = await call('get', `/admin/audit?userId=${userId}&limit=10`, `Bearer ${READER_KEY}`).expect(
      200,
    );
    expect(audit.body).toEqual([
      expect.objectContaining({ eventType: 'POST /admin/users/:userId/revoke', result: 202, actor: 'admin' }),
    ]);
    expect(await redis.xlen(auditKey)).toBe(lengthBefore + 1); // + the audit read just made

    // Counted, by a fixed reason, ...
    const metrics = (await request(app.getHttpServer()).get('/metrics').expect(200)).text;
    expect(metrics).toMatch(
      /session_revoker_admin_auth_failures_total\{reason="missing_credentials"\} 100\n/,
    );
    expect(metrics).toMatch(
      /session_revoker_admin_auth_failures_total\{reason="invalid_credentials"\} 300\n/,
    );
    // ... and logged at warn, one line each, with the route and never the credential.
    const refusals = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['msg'] === 'admin call refused: 401');
    expect(refusals).toHaveLength(400);
    expect(refusals[0]).toMatchObject({
      level: 40,
      reqId: expect.any(String),
      admin: {
        method: expect.any(String),
        route: expect.stringMatching(/^\/admin\//),
        reason: expect.any(String),
      },
    });
    const text = lines.join('\n');
    for (const secret of [WRONG_KEY, ADMIN_KEY, jwtLike, btoa(`admin:${ADMIN_KEY}`)])
      expect(text).not.toContain(secret);
  });

  it('a known principal refused for a missing scope (403) is audited, with its name as actor', async () => {
    const userId = 'u-403';
    await post(`/admin/users/${userId}/revoke`, `Bearer ${READER_KEY}`).expect(403);
    await call('get', `/admin/users/${userId}/sessions`, `Bearer ${OPS_KEY}`).expect(403);
    await call('delete', `/admin/users/${userId}/sessions/${HANDLE}`, `Bearer ${READER_KEY}`).expect(403);
    await call('get', '/admin/failed', `Bearer ${READER_KEY}`).expect(403);

    const byUser = await call('get', `/admin/audit?userId=${userId}&limit=10`, `Bearer ${READER_KEY}`).expect(
      200,
    );
    expect(
      (byUser.body as Record<string, unknown>[]).map((e) => [
        e['eventType'],
        e['result'],
        e['actor'],
        e['target'],
      ]),
    ).toEqual([
      ['DELETE /admin/users/:userId/sessions/:handle', 403, 'reader', { userId, handle: HANDLE }],
      ['GET /admin/users/:userId/sessions', 403, 'ops', { userId }],
      ['POST /admin/users/:userId/revoke', 403, 'reader', { userId }],
    ]);
    const latest = await call('get', '/admin/audit?limit=2', `Bearer ${ADMIN_KEY}`).expect(200);
    expect(latest.body[1]).toMatchObject({
      source: 'admin',
      eventType: 'GET /admin/failed',
      result: 403,
      actor: 'reader',
    });
    for (const key of [READER_KEY, OPS_KEY, ADMIN_KEY]) expect(byUser.text + latest.text).not.toContain(key);
    // A 403 is counted with the 401s.
    const metrics = (await request(app.getHttpServer()).get('/metrics').expect(200)).text;
    expect(metrics).toMatch(/session_revoker_admin_auth_failures_total\{reason="missing_scope"\} 4\n/);
  });
});

describe('hardening: a full audit trail (100,000 entries)', () => {
  const ENTRIES = 100_000;
  let gw: TestGateway;
  let auditKey: string;

  beforeAll(async () => {
    gw = await startGateway({
      QUEUE_PREFIX: `{${uniquePrefix('hard-audit-full')}}`,
      ADMIN_API_KEY: ADMIN_KEY,
      ADMIN_RATE_LIMIT_PER_MINUTE: '100000',
      // Room above ENTRIES: the test's own audit calls are appended, and must not trim u-oldest away.
      AUDIT_MAX_ENTRIES: String(2 * ENTRIES),
    });
    auditKey = new QueueKeys(gw.config.redis.queuePrefix).audit;
    // The oldest entry names u-oldest, the newest u-newest; the rest are other users' revocations.
    const now = Date.now();
    for (let start = 0; start < ENTRIES; start += 10_000) {
      const pipeline = gw.redis.pipeline();
      for (let i = start; i < start + 10_000; i++) {
        const userId = i === 0 ? 'u-oldest' : i === ENTRIES - 1 ? 'u-newest' : `u-other-${i}`;
        const record = {
          commandId: `pingone-${i}`,
          source: 'pingone',
          eventType: 'USER.DELETED',
          eventId: `e-${i}`,
          target: { type: 'user', userId },
          revoked: 1,
          result: 'done',
          receivedAt: now,
          doneAt: now,
        };
        pipeline.xadd(auditKey, '*', 'r', JSON.stringify(record));
      }
      await pipeline.exec();
    }
  }, 60_000);
  afterAll(() => gw?.close());

  const audit = (query: string) =>
    request(gw.app.getHttpServer()).get(`/admin/audit?${query}`).set('Authorization', `Bearer ${ADMIN_KEY}`);

  /** The entries each XREVRANGE on the audit stream asks for while `work` runs (seen with MONITOR). */
  async function entriesAskedFor(work: () => Promise<unknown>): Promise<number[]> {
    const base = new Redis(REDIS_URL);
    // ioredis monitors on a connection of its own, beside base.
    const monitor = await base.monitor();
    const marker = `${gw.config.redis.queuePrefix}:monitor-marker`;
    const counts: number[] = [];
    let markerSeen = false;
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase() === 'xrevrange' && args[1] === auditKey)
        counts.push(Number(args[5] ?? Infinity));
      if (args[1] === marker) markerSeen = true;
    });
    try {
      await work();
      // MONITOR lines come asynchronously: the marker command seen means every earlier one was.
      await gw.redis.exists(marker);
      await waitFor(() => markerSeen, 'the MONITOR marker');
    } finally {
      monitor.disconnect();
      base.disconnect();
    }
    return counts;
  }

  it('GET /admin/audit?userId=nobody&limit=1 examines a bounded number of entries and answers a cursor to page on', async () => {
    let res!: request.Response;
    const counts = await entriesAskedFor(async () => {
      res = await audit('userId=nobody&limit=1').expect(200);
    });
    expect(res.body).toEqual([]);
    expect(counts.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(AuditLog.SCAN_BUDGET);
    expect(res.headers['audit-next']).toMatch(/^\d+-\d+$/);

    // Timings, for docs/reliability.md.
    let started = Date.now();
    await audit('userId=nobody&limit=1').expect(200);
    const one = Date.now() - started;
    started = Date.now();
    await Promise.all(Array.from({ length: 8 }, () => audit('userId=nobody&limit=1').expect(200)));
    const eight = Date.now() - started;
    console.log(
      `audit read for an absent user at ${ENTRIES} entries: ${one} ms; 8 in parallel: ${eight} ms; ` +
        `${counts.reduce((a, b) => a + b, 0)} entries asked for in ${counts.length} XREVRANGE`,
    );
  }, 60_000);

  it('pages through the whole trail with the cursor, finding the oldest entry and ending without one', async () => {
    const found: { target?: { userId?: string } }[] = [];
    let before: string | undefined;
    let calls = 0;
    do {
      const res = await audit(`userId=u-oldest&limit=10${before ? `&before=${before}` : ''}`).expect(200);
      found.push(...(res.body as typeof found));
      before = res.headers['audit-next'] as string | undefined;
      calls++;
    } while (before && calls < 1000);
    expect(found).toEqual([
      expect.objectContaining({ commandId: 'pingone-0', target: { type: 'user', userId: 'u-oldest' } }),
    ]);
    expect(before).toBeUndefined();
    expect(calls).toBeLessThanOrEqual(Math.ceil((ENTRIES + 10) / AuditLog.SCAN_BUDGET) + 1);
  }, 60_000);

  it('keeps the answer of existing calls: an array, newest first, and a recent match found at once', async () => {
    const newest = await audit('userId=u-newest&limit=1').expect(200);
    expect(newest.body).toEqual([expect.objectContaining({ commandId: `pingone-${ENTRIES - 1}` })]);
    // Without a user: one page of `limit`, and the cursor resumes just past it.
    const first = await audit('limit=3').expect(200);
    expect(first.body).toHaveLength(3);
    const ids = (first.body as { id: string }[]).map((e) => e.id);
    expect(first.headers['audit-next']).toBe(ids[2]);
    const second = await audit(`limit=3&before=${ids[2]}`).expect(200);
    expect(second.body).toHaveLength(3);
    expect(byStreamId(ids[2]!, (second.body as { id: string }[])[0]!.id)).toBeGreaterThan(0);
  });

  it('refuses a malformed cursor with 400, never a 5xx; nothing is older than 0-0', async () => {
    for (const before of [
      'abc',
      '1-2-3',
      '-1-0',
      '1',
      '99999999999999999999-0',
      '1-18446744073709551616',
      `1-${'9'.repeat(30)}`,
    ]) {
      const res = await audit(`userId=nobody&before=${encodeURIComponent(before)}`);
      expect({ before, status: res.status }).toEqual({ before, status: 400 });
    }
    // 0-0 however it is spelled (Redis reads '00-0' as 0-0, and refuses a range below it).
    for (const zero of ['0-0', '0-00', '00-0', '000-000']) {
      const none = await audit(`userId=nobody&before=${zero}`).expect(200);
      expect(none.body).toEqual([]);
      expect(none.headers['audit-next']).toBeUndefined();
    }
    await audit('before=0001-0&limit=1').expect(200);
    await audit('before=18446744073709551615-18446744073709551615&limit=1').expect(200);
  });
});

/** Positive when stream id a is newer than b. */
function byStreamId(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? Number(as - bs) : am > bm ? 1 : -1;
}
