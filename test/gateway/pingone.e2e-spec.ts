import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { DEFAULT_PINGONE_MAPPING } from '#identity-events';
import { commandId, QueueKeys, RevocationCommand } from '#revocation';
import { closeWithoutRedis, startGateway, type TestGateway } from '../support/gateway.js';
import { type OwnRedis, quietQueues, startOwnRedis } from '../support/reliability-redis.js';
import { freePorts, uniquePrefix, waitFor } from '../support/redis.js';

const SECRET = 's3cret-value';
const BEARER = { Authorization: `Bearer ${SECRET}` };
const ENV_ID = '3f1c2a7e-5b8d-4e0a-9c61-2d7f4b8e1a90';
const OTHER_ENV_ID = 'bbbbbbbb-0000-4000-8000-00000000000b';

const batchText = readFileSync('test/fixtures/pingone/batch-mixed.json', 'utf8');
const singleText = readFileSync('test/fixtures/pingone/member-of-group-created.json', 'utf8');
type Json = Record<string, unknown>;
const batch = (): Json[] => JSON.parse(batchText) as Json[];

const ALICE = {
  target: { type: 'user', userId: '0b7e4d2a-9f31-4c8e-b5a6-1e2d3c4b5a69' },
  source: 'pingone',
  eventType: 'USER.UPDATED',
  eventId: 'e1000001-0000-4000-8000-000000000001',
  notBefore: Date.parse('2026-11-20T10:00:00.125Z'),
};
const BOB = {
  target: { type: 'user', userId: '5d9a1c3e-2b4f-4a6d-8e0c-7f1a2b3c4d5e' },
  source: 'pingone',
  eventType: 'MEMBER_OF_GROUP.CREATED',
  eventId: 'e1000001-0000-4000-8000-000000000002',
  notBefore: Date.parse('2026-11-20T10:00:01.250Z'),
};
const CAROL = {
  target: {
    type: 'idp_session',
    idpSessionId: '6f5e4d3c-2b1a-4098-8765-43210fedcba9',
    userId: '9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4',
  },
  source: 'pingone',
  eventType: 'SESSION.DELETED',
  eventId: 'e1000001-0000-4000-8000-000000000003',
  notBefore: Date.parse('2026-11-20T10:00:02.500Z'),
};

function post(
  gw: TestGateway,
  body: string | Buffer,
  headers: Record<string, string> = BEARER,
  contentType = 'application/json',
) {
  return request(gw.app.getHttpServer())
    .post('/webhooks/pingone')
    .set({ 'Content-Type': contentType, ...headers })
    .send(body);
}

const basic = (user: string, password: string) => ({
  Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});

const byEventId = (a: { eventId: string }, b: { eventId: string }) => a.eventId.localeCompare(b.eventId);

async function sortedCommands(gw: TestGateway) {
  return (await gw.commands()).sort(byEventId);
}

interface QuarantineRecord {
  events?: string;
  source?: string;
  reason?: string;
  raw?: string;
  eventId?: string;
  receivedAt?: string;
}

async function quarantine(gw: TestGateway): Promise<QuarantineRecord[]> {
  const entries = await gw.redis.xrange(new QueueKeys(gw.config.redis.queuePrefix).quarantine, '-', '+');
  return entries.map(([, fields]) => {
    const record: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
    return record;
  });
}

async function expectNothingStored(gw: TestGateway) {
  expect(await gw.commands()).toEqual([]);
  expect(await gw.redis.xlen(new QueueKeys(gw.config.redis.queuePrefix).quarantine)).toBe(0);
}

const ALL_STATES = ['waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized'] as const;
const FIXTURE_COMMAND_IDS = [ALICE, BOB, CAROL].map((c) => commandId('pingone', c.eventId));

/**
 * Forgets what earlier tests delivered: the jobs, the quarantine, and the dedup marks of those jobs and
 * of the fixture events (`<prefix>:dedup:<command id>`, as RevocationProducer writes them). Key by key:
 * the shared test Redis holds millions of keys, so no KEYS/SCAN over it.
 */
async function reset(gw: TestGateway) {
  const prefix = gw.config.redis.queuePrefix;
  const jobIds = (await gw.queue.getJobs([...ALL_STATES])).map((j) => j.id!);
  const ids = new Set([...FIXTURE_COMMAND_IDS, ...jobIds]);
  await gw.redis.del(
    new QueueKeys(prefix).quarantine,
    ...[...ids].map((id) => new QueueKeys(prefix).dedup(id)),
  );
  await gw.queue.obliterate({ force: true });
}

/** A minimal, valid event that revokes `userId` (USER.DELETED), recorded now. */
function userDeleted(id: string, userId: string, env = ENV_ID): Json {
  return {
    id,
    recordedAt: new Date().toISOString(),
    action: { type: 'USER.DELETED' },
    resources: [{ type: 'USER', id: userId, environment: { id: env } }],
    result: { status: 'SUCCESS' },
  };
}

/** Silences the connection errors of a gateway whose Redis is (or will be) gone: they are expected. */
const quiet = (gw: TestGateway) => quietQueues(gw.app, [gw.redis, gw.queue]);

/**
 * A gateway of its own prefix. The enqueue deadline is long: the shared test Redis can stall for
 * seconds under other suites' load, and only the tests of an unreachable Redis (which set a short
 * one) are about the deadline.
 */
const gateway = (name: string, env: Record<string, string> = {}) =>
  startGateway({
    QUEUE_PREFIX: `{${uniquePrefix(name)}}`,
    PINGONE_WEBHOOK_SECRET: SECRET,
    ENQUEUE_TIMEOUT_MS: '15000',
    ...env,
  });

describe('POST /webhooks/pingone', () => {
  let main: TestGateway;
  let namedHeader: TestGateway;
  let rotating: TestGateway;
  let rotated: TestGateway;
  let noSecret: TestGateway;
  let allowlist: TestGateway;
  let limits: TestGateway;
  let redisDown: TestGateway;

  beforeAll(async () => {
    const [deadPort] = await freePorts(1);
    // The unreachable gateway's own queue logs its connection errors while it starts: expected here.
    const consoleError = console.error;
    const refused = new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${deadPort}\\b`);
    console.error = (...args: unknown[]) => {
      if (!args.some((a) => refused.test(String(a)))) consoleError(...args);
    };
    try {
      // The gateway without Redis waits (5 s) for a first connection before it starts: meanwhile the
      // others start one after another (at once, their start-up work starves each other's timers).
      const down = gateway('p1-down', {
        QUEUE_REDIS_URL: `redis://127.0.0.1:${deadPort}`,
        ENQUEUE_TIMEOUT_MS: '500',
      }).then(
        (gw) => void (redisDown = gw),
        (err: unknown) => ({ err }),
      );
      let failure: { err: unknown } | undefined;
      try {
        main = await gateway('p1-main');
        namedHeader = await gateway('p1-hdr', { PINGONE_WEBHOOK_AUTH_HEADER: 'x-webhook-secret' });
        rotating = await gateway('p1-rot', { PINGONE_WEBHOOK_SECRET: 'new-secret-1,old-secret-0' });
        rotated = await gateway('p1-new', { PINGONE_WEBHOOK_SECRET: 'new-secret-1' });
        noSecret = await gateway('p1-none', { PINGONE_WEBHOOK_SECRET: '' });
        allowlist = await gateway('p1-env', {
          PINGONE_ENVIRONMENT_IDS: `${ENV_ID},cccccccc-0000-4000-8000-00000000000c`,
        });
        limits = await gateway('p1-lim', { WEBHOOK_BODY_LIMIT: '2kb' });
      } catch (err) {
        failure = { err };
      }
      // Wait for it whatever happened, so that afterAll closes it too.
      const downFailure = await down;
      failure ??= downFailure;
      if (failure) throw failure.err;
    } finally {
      console.error = consoleError;
    }
    quiet(redisDown);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(
      [main, namedHeader, rotating, rotated, noSecret, allowlist, limits].map((gw) => gw?.close()),
    );
    if (redisDown) await closeWithoutRedis(redisDown);
  });

  describe('the fixture batch', () => {
    beforeEach(() => reset(main));

    it('enqueues exactly the three commands the fixture README lists and ignores the other two', async () => {
      const before = Date.now();
      const res = await post(main, batchText);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ received: 5, enqueued: 3, duplicates: 0, ignored: 2, quarantined: 0 });

      const commands = await sortedCommands(main);
      expect(commands).toEqual([ALICE, BOB, CAROL].map((c) => expect.objectContaining(c)));
      for (const c of commands) {
        expect(c.id).toBe(commandId('pingone', c.eventId));
        expect(c.receivedAt).toBeGreaterThanOrEqual(before);
        expect(c.receivedAt).toBeLessThanOrEqual(Date.now());
        // The subject, never the administrator in `actors`.
        expect(JSON.stringify(c.target)).not.toContain('c0ffee00');
      }
      // Job ids are the deterministic command ids.
      const jobs = await main.queue.getJobs(['waiting', 'prioritized', 'delayed']);
      expect(jobs.map((j) => j.id).sort()).toEqual(commands.map((c) => c.id).sort());
      expect(await quarantine(main)).toEqual([]);
    });

    it('accepts a single event object as the body', async () => {
      const res = await post(main, singleText);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ received: 1, enqueued: 1, duplicates: 0, ignored: 0, quarantined: 0 });
      expect(await sortedCommands(main)).toEqual([expect.objectContaining(BOB)]);
    });

    it.each(['application/json; charset=utf-8', 'text/plain', 'application/octet-stream'])(
      'reads the body as JSON whatever the content type says (%s)',
      async (type) => {
        const res = await post(main, batchText, BEARER, type);
        expect(res.status).toBe(200);
        expect(res.body).toEqual({ received: 5, enqueued: 3, duplicates: 0, ignored: 2, quarantined: 0 });
      },
    );

    it.each([
      ['{ "events": [...] }', (events: Json[]) => ({ events })],
      [
        '{ "_embedded": { "activities": [...] } }',
        (events: Json[]) => ({ _embedded: { activities: events } }),
      ],
    ])('accepts an object wrapping the array: %s', async (_name, wrap) => {
      const res = await post(main, JSON.stringify(wrap(batch())));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ received: 5, enqueued: 3, duplicates: 0, ignored: 2, quarantined: 0 });
      expect(await sortedCommands(main)).toEqual([ALICE, BOB, CAROL].map((c) => expect.objectContaining(c)));
    });
  });

  describe('authentication', () => {
    beforeEach(() => reset(main));

    it.each([
      ['Bearer', BEARER],
      ['bearer (the scheme is case-insensitive)', { Authorization: `bearer ${SECRET}` }],
      ['Basic with the secret as password', basic('pingone', SECRET)],
      ['Basic with an empty user name', basic('', SECRET)],
    ])('accepts %s', async (_name, headers) => {
      const res = await post(main, singleText, headers);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ enqueued: 1 });
      expect(await main.commands()).toHaveLength(1);
    });

    const rejected: [string, Record<string, string>][] = [
      ['no Authorization header', {}],
      ['an unknown scheme', { Authorization: `Token ${SECRET}` }],
      ['the bare secret without a scheme', { Authorization: SECRET }],
      ['a wrong secret', { Authorization: 'Bearer not-the-secret' }],
      ['a prefix of the secret', { Authorization: `Bearer ${SECRET.slice(0, -1)}` }],
      ['the secret with a suffix', { Authorization: `Bearer ${SECRET}x` }],
      ['the secret in upper case', { Authorization: `Bearer ${SECRET.toUpperCase()}` }],
      ['the secret with one letter in another case', { Authorization: `Bearer S${SECRET.slice(1)}` }],
      ['the secret after extra whitespace', { Authorization: `Bearer  ${SECRET}` }],
      ['the secret after a tab', { Authorization: `Bearer \t${SECRET}` }],
      ['Basic with the secret surrounded by spaces', basic('pingone', ` ${SECRET} `)],
      ['Basic with a wrong password', basic('pingone', 'wrong')],
      ['Basic with the secret as user name', basic(SECRET, '')],
      ['Basic without a colon', { Authorization: `Basic ${Buffer.from(SECRET).toString('base64')}` }],
      ['an empty Bearer', { Authorization: 'Bearer ' }],
      ['an empty Basic', { Authorization: 'Basic ' }],
      ['the secret in another header', { 'X-Webhook-Secret': SECRET }],
    ];
    it.each(rejected)('refuses %s with 401 and stores nothing', async (_name, headers) => {
      const res = await post(main, batchText, headers);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe(
        'Bearer realm="pingone-webhook", Basic realm="pingone-webhook"',
      );
      // An unauthenticated body must not even reach the quarantine.
      expect((await post(main, 'not json at all', headers)).status).toBe(401);
      await expectNothingStored(main);
    });

    it('accepts the secret in a configured named header, and only there', async () => {
      const ok = await post(namedHeader, singleText, { 'x-webhook-secret': SECRET });
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({ enqueued: 1 });
      await reset(namedHeader);
      const refused: Record<string, string>[] = [
        BEARER,
        { 'x-webhook-secret': `Bearer ${SECRET}` },
        { 'x-webhook-secret': SECRET.toUpperCase() },
        { 'x-webhook-secret': 'wrong' },
        {},
      ];
      for (const headers of refused) {
        expect((await post(namedHeader, singleText, headers)).status).toBe(401);
      }
      await expectNothingStored(namedHeader);
    });

    it('accepts both secrets during a rotation, and only the new one after it', async () => {
      const first = await post(rotating, singleText, { Authorization: 'Bearer new-secret-1' });
      expect(first.status).toBe(200);
      expect(first.body).toMatchObject({ enqueued: 1 });
      const second = await post(rotating, singleText, basic('pingone', 'old-secret-0'));
      expect(second.status).toBe(200);
      expect(second.body).toMatchObject({ duplicates: 1 });
      expect(
        (await post(rotating, singleText, { Authorization: 'Bearer new-secret-1,old-secret-0' })).status,
      ).toBe(401);

      expect((await post(rotated, singleText, { Authorization: 'Bearer old-secret-0' })).status).toBe(401);
      expect((await post(rotated, singleText, basic('pingone', 'old-secret-0'))).status).toBe(401);
      await expectNothingStored(rotated);
      const fresh = await post(rotated, singleText, { Authorization: 'Bearer new-secret-1' });
      expect(fresh.status).toBe(200);
      expect(fresh.body).toMatchObject({ enqueued: 1 });
    });

    it('refuses everything when no secret is configured', async () => {
      expect(noSecret.config.pingone.secrets).toEqual([]);
      for (const headers of [
        {},
        BEARER,
        { Authorization: 'Bearer ' },
        { Authorization: 'Bearer undefined' },
        basic('', ''),
        basic('pingone', SECRET),
      ]) {
        expect((await post(noSecret, batchText, headers)).status).toBe(401);
      }
      await expectNothingStored(noSecret);
    });
  });

  describe('redelivery', () => {
    beforeEach(() => reset(main));

    it('enqueues nothing new for a redelivered batch, even after its jobs were removed', async () => {
      expect((await post(main, batchText)).body).toMatchObject({ enqueued: 3, duplicates: 0 });
      const firstJobs = (await main.queue.getJobs(['waiting', 'prioritized'])).map((j) => j.id).sort();

      const again = await post(main, batchText);
      expect(again.status).toBe(200);
      expect(again.body).toEqual({ received: 5, enqueued: 0, duplicates: 3, ignored: 2, quarantined: 0 });
      expect((await main.queue.getJobs(['waiting', 'prioritized'])).map((j) => j.id).sort()).toEqual(
        firstJobs,
      );

      // The jobs are gone (processed and cleaned up, say); the dedup marks must still hold.
      await main.queue.obliterate({ force: true });
      expect(await main.commands()).toEqual([]);
      const third = await post(main, batchText);
      expect(third.status).toBe(200);
      expect(third.body).toEqual({ received: 5, enqueued: 0, duplicates: 3, ignored: 2, quarantined: 0 });
      expect(await main.commands()).toEqual([]);

      // The single-object form of bob's event is the same event.
      expect((await post(main, singleText)).body).toMatchObject({ enqueued: 0, duplicates: 1 });
      expect(await main.commands()).toEqual([]);
    });
  });

  describe('quarantine', () => {
    beforeEach(() => reset(main));

    it('keeps a body that is not JSON, and acknowledges it', async () => {
      const body = '{"id": "e-1", "action": {"type": "USER.DELETED"  <- truncated';
      const res = await post(main, body);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ received: 1, enqueued: 0, duplicates: 0, ignored: 0, quarantined: 1 });
      expect(await main.commands()).toEqual([]);
      const [entry, ...rest] = await quarantine(main);
      expect(rest).toEqual([]);
      expect(entry).toMatchObject({ source: 'pingone', raw: body, reason: expect.stringMatching(/JSON/) });
      expect(Number(entry!.receivedAt)).toBeGreaterThan(Date.now() - 60_000);
    });

    it('keeps an empty body', async () => {
      const res = await post(main, '');
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ received: 1, enqueued: 0, quarantined: 1 });
      expect(await quarantine(main)).toEqual([expect.objectContaining({ source: 'pingone', raw: '' })]);
    });

    it('keeps a body of invalid UTF-8 (losslessly) and acknowledges it', async () => {
      const bytes = Buffer.concat([
        Buffer.from('[{"id":"'),
        Buffer.from([0xff, 0xfe, 0xc3]),
        Buffer.from('"}]'),
      ]);
      const res = await post(main, bytes, BEARER, 'application/octet-stream');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ received: 1, enqueued: 0, duplicates: 0, ignored: 0, quarantined: 1 });
      const entries = await quarantine(main);
      expect(entries).toHaveLength(1);
      expect(entries[0]!.reason).toBe('body is not valid UTF-8 (raw bytes kept as base64)');
      expect(Buffer.from(entries[0]!.raw!, 'base64').equals(bytes)).toBe(true);
      expect(await main.commands()).toEqual([]);
    });

    it('quarantines the malformed events of a batch as one entry and enqueues the good ones', async () => {
      const [alice, bob, carol] = batch();
      const noAction = { id: 'e-no-action', resources: [{ type: 'USER', id: 'u-1' }] };
      const noUser = { ...userDeleted('e-no-user', 'x'), resources: [{ type: 'GROUP', id: 'g-1' }] };
      const badTime = { ...userDeleted('e-bad-time', 'u-2'), recordedAt: 'yesterday' };
      const tooLongUser = userDeleted('e-long-user', 'u'.repeat(300));
      const events = [alice, 'just a string', noAction, bob, 42, noUser, badTime, tooLongUser, carol];
      const res = await post(main, JSON.stringify(events));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ received: 9, enqueued: 3, duplicates: 0, ignored: 0, quarantined: 6 });
      expect(await sortedCommands(main)).toEqual([ALICE, BOB, CAROL].map((c) => expect.objectContaining(c)));

      // One entry for the delivery, holding the six in their order: bounded whatever the delivery holds.
      const [entry, ...rest] = await quarantine(main);
      expect(rest).toEqual([]);
      expect(entry).toMatchObject({ source: 'pingone', events: '6', eventId: '' });
      expect(JSON.parse(entry!.raw!)).toEqual(['just a string', noAction, 42, noUser, badTime, tooLongUser]);
      expect(entry!.reason).toMatch(/^6 events not understood: /);
      for (const reason of [
        'event is not an object (2)',
        'event has no id or action.type (1)',
        'event names no user (1)',
        'event has no valid recordedAt (1)',
      ])
        expect(entry!.reason).toContain(reason);
    });

    it('quarantines a JSON body that holds no events', async () => {
      for (const body of ['{"hello": "world"}', '"a string"', '12', 'null', '{"items": [1, 2, 3]}']) {
        const res = await post(main, body);
        expect(res.status).toBe(200);
        expect(res.body).toMatchObject({ received: 1, enqueued: 0, quarantined: 1 });
      }
      expect((await quarantine(main)).map((e) => e.raw)).toHaveLength(5);
      expect(await main.commands()).toEqual([]);
    });
  });

  describe('environment allowlist', () => {
    beforeEach(() => reset(allowlist));

    it('ignores (and counts) events from an environment that is not allowed', async () => {
      const foreign = batchText.replaceAll(ENV_ID, OTHER_ENV_ID);
      const res = await post(allowlist, foreign);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ received: 5, enqueued: 0, duplicates: 0, ignored: 5, quarantined: 0 });
      await expectNothingStored(allowlist);
    });

    it('acts on the allowed environments only, within one batch', async () => {
      const events = batch();
      events[0] = JSON.parse(JSON.stringify(events[0]).replaceAll(ENV_ID, OTHER_ENV_ID)) as Json;
      const noEnvironment = {
        id: 'e-no-env',
        recordedAt: new Date().toISOString(),
        action: { type: 'USER.DELETED' },
        resources: [{ type: 'USER', id: 'u-no-env' }],
        result: { status: 'SUCCESS' },
      };
      const res = await post(allowlist, JSON.stringify([...events, noEnvironment]));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ received: 6, enqueued: 2, duplicates: 0, ignored: 4, quarantined: 0 });
      expect(await sortedCommands(allowlist)).toEqual([BOB, CAROL].map((c) => expect.objectContaining(c)));
    });
  });

  describe('a mapping from CONFIG_FILE', () => {
    let dir: string;
    let mapped: TestGateway | undefined;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sr-mapping-'));
      const file = join(dir, 'config.yaml');
      // Acts on any USER.UPDATED (the default only on watched attributes), and not on USER.DELETED.
      writeFileSync(file, ['pingone:', '  mapping:', '    USER.UPDATED: { target: user }'].join('\n'));
      mapped = await gateway('p1-map', { CONFIG_FILE: file });
    });
    afterAll(async () => {
      await mapped?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('replaces the default table: what it maps is queued, what it leaves out is ignored', async () => {
      const updated = { ...userDeleted('e-map-upd', 'u-map-upd'), action: { type: 'USER.UPDATED' } };
      const deleted = userDeleted('e-map-del', 'u-map-del');
      const res = await post(mapped!, JSON.stringify([updated, deleted]));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ received: 2, enqueued: 1, duplicates: 0, ignored: 1, quarantined: 0 });
      expect((await mapped!.commands()).map((c) => [c.eventId, c.target])).toEqual([
        ['e-map-upd', { type: 'user', userId: 'u-map-upd' }],
      ]);
      // The default gateway does the opposite with the same events.
      const byDefault = await post(main, JSON.stringify([updated, deleted]));
      expect(byDefault.body).toMatchObject({ received: 2, enqueued: 1, ignored: 1 });
      expect((await main.commands()).map((c) => c.eventId)).toEqual(['e-map-del']);
    });
  });

  describe('limits', () => {
    beforeEach(() => reset(limits));

    it('takes a delivery of more events than PingOne sends (500), in several batches, each event once', async () => {
      // Refusing it would stop PingOne's stream, and acknowledging without acting would lose revocations.
      await reset(main);
      const events = Array.from({ length: 1200 }, (_, n) => userDeleted(`e-big-${n}`, `u-big-${n}`));
      const res = await post(main, JSON.stringify({ events }));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ received: 1200, enqueued: 1200, duplicates: 0, ignored: 0, quarantined: 0 });
      const ids = (await main.commands()).map((c) => c.eventId);
      expect(new Set(ids).size).toBe(1200);
      const again = await post(main, JSON.stringify(events));
      expect(again.body).toEqual({
        received: 1200,
        enqueued: 0,
        duplicates: 1200,
        ignored: 0,
        quarantined: 0,
      });
      expect(await main.commands()).toHaveLength(1200);
    });

    it('refuses a body over WEBHOOK_BODY_LIMIT with 413 and stores nothing', async () => {
      expect(Buffer.byteLength(batchText)).toBeGreaterThan(2048);
      expect((await post(limits, batchText)).status).toBe(413);
      const notJson = 'x'.repeat(3000);
      expect((await post(limits, notJson)).status).toBe(413);
      expect((await post(limits, Buffer.alloc(3000, 0xff), BEARER, 'application/octet-stream')).status).toBe(
        413,
      );
      await expectNothingStored(limits);
    });
  });

  describe('hostile bodies', () => {
    beforeEach(() => reset(main));

    it('does not let __proto__ or constructor keys pollute prototypes', async () => {
      const event = (id: string) =>
        `{"__proto__": {"polluted": "yes", "action": {"type": "USER.DELETED"}},` +
        ` "constructor": {"prototype": {"polluted": "yes"}},` +
        ` "id": "${id}", "recordedAt": "${new Date().toISOString()}",` +
        ` "action": {"type": "USER.DELETED", "__proto__": {"polluted": "yes"}},` +
        ` "resources": [{"type": "USER", "id": "u-proto", "__proto__": {"polluted": "yes"}}],` +
        ` "result": {"status": "SUCCESS", "constructor": {"prototype": {"polluted": "yes"}}}}`;
      const bodies = [
        `[${event('e-proto-1')}]`,
        `{"__proto__": [${event('e-proto-2')}], "constructor": {"prototype": {"polluted": "yes"}}}`,
        `{"events": [${event('e-proto-3')}], "__proto__": {"polluted": "yes"}}`,
      ];
      const results = [];
      for (const body of bodies) {
        const res = await post(main, body);
        expect(res.status).toBe(200);
        results.push(res.body);
      }
      expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
      expect(Object.prototype).not.toHaveProperty('polluted');
      expect(Array.prototype).not.toHaveProperty('polluted');
      expect(results[0]).toMatchObject({ received: 1, enqueued: 1 });
      // A __proto__ key is dropped, so the events under it are not found: the body is kept aside.
      expect(results[1]).toMatchObject({ received: 1, enqueued: 0, quarantined: 1 });
      expect(results[2]).toMatchObject({ received: 1, enqueued: 1 });
      const commands = await main.commands();
      for (const c of commands) expect(c.target).toEqual({ type: 'user', userId: 'u-proto' });
    });

    it.each([
      ['100000 unclosed [', '['.repeat(100_000)],
      ['100000 balanced [ ]', `${'['.repeat(100_000)}${']'.repeat(100_000)}`],
      ['100000 nested objects', `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`],
      ['an event array holding 100000 levels', `[${'['.repeat(100_000)}${']'.repeat(100_000)}]`],
    ])('quarantines deeply nested JSON (%s) without crashing', async (_name, body) => {
      const res = await post(main, body);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ enqueued: 0, quarantined: 1 });
      expect(await main.commands()).toEqual([]);
      expect(await main.redis.xlen(new QueueKeys(main.config.redis.queuePrefix).quarantine)).toBe(1);
      // Still serving.
      expect((await post(main, singleText)).body).toMatchObject({ enqueued: 1 });
    });
  });

  describe('Redis unavailable', () => {
    it('answers 503 with Retry-After, never 200, when the queue Redis is unreachable', async () => {
      for (const body of [batchText, singleText, 'not json']) {
        const res = await post(redisDown, body);
        expect(res.status).toBe(503);
        expect(res.headers['retry-after']).toMatch(/^\d+$/);
      }
      // Authentication still comes first.
      expect((await post(redisDown, batchText, { Authorization: 'Bearer wrong' })).status).toBe(401);
    });

    describe('a Redis that dies mid-test', () => {
      let server: OwnRedis | undefined;
      let gw: TestGateway | undefined;

      beforeAll(async () => {
        server = await startOwnRedis('pingone');
        gw = await gateway('p1-dies', { QUEUE_REDIS_URL: server.url, ENQUEUE_TIMEOUT_MS: '500' });
        quiet(gw);
      });

      afterAll(async () => {
        if (gw) await closeWithoutRedis(gw);
        await server?.stop();
      });

      it('answers 200 while it is up, 503 with Retry-After once it is killed, 200 again when it is back', async () => {
        const up = await post(gw!, batchText);
        expect(up.status).toBe(200);
        expect(up.body).toMatchObject({ enqueued: 3 });

        await server!.kill();

        const events = [userDeleted('e-dies-1', 'u-dies-1'), userDeleted('e-dies-2', 'u-dies-2')];
        for (const body of [JSON.stringify(events), 'not json']) {
          const res = await post(gw!, body);
          expect(res.status).toBe(503);
          expect(res.headers['retry-after']).toMatch(/^\d+$/);
        }

        await server!.restart();
        const back = await waitFor(async () => {
          const res = await post(gw!, JSON.stringify(events));
          return res.status === 200 ? res : undefined;
        }, 'the gateway to reconnect');
        expect(back?.body).toMatchObject({ received: 2, enqueued: 2 });
        expect((await gw!.commands()).map((c) => c.eventId).sort()).toEqual(['e-dies-1', 'e-dies-2']);
      });
    });
    describe.each([
      // Each event's check, job and mark are one script, which names its mark among its keys: Redis
      // refuses it whole, so neither the jobs nor the marks go in.
      { path: 'one script per event', oneScript: 'true', storedBeforeRefusal: 0 },
      // The jobs go in before the marks fail.
      { path: 'three steps', oneScript: 'false', storedBeforeRefusal: 3 },
    ])(
      'a Redis that takes the jobs but refuses the dedup marks ($path)',
      ({ oneScript, storedBeforeRefusal }) => {
        let server: OwnRedis;
        let admin: Redis;
        let gw: TestGateway;
        const prefix = `{${uniquePrefix(`p1-marks-${oneScript}`)}}`;

        beforeAll(async () => {
          server = await startOwnRedis('pingone-marks');
          admin = new Redis({ port: server.port, maxRetriesPerRequest: 1 });
          // Everything under the prefix but the dedup marks, which this user may read and not write.
          await admin.acl(
            'SETUSER',
            'gateway',
            'on',
            '>gw-pass',
            '+@all',
            `~${prefix}:[^d]*`,
            `%R~${prefix}:dedup:*`,
          );
          gw = await gateway('p1-marks', {
            QUEUE_PREFIX: prefix,
            QUEUE_REDIS_URL: `redis://gateway:gw-pass@127.0.0.1:${server.port}`,
            ENQUEUE_ONE_SCRIPT: oneScript,
          });
        });

        afterAll(async () => {
          await closeWithoutRedis(gw);
          admin.disconnect();
          await server.stop();
        });

        it('answers 503, never 200, and the retry once Redis takes them enqueues each event once', async () => {
          for (const body of [singleText, batchText]) {
            const res = await post(gw, body);
            expect(res.status).toBe(503);
            expect(res.headers['retry-after']).toMatch(/^\d+$/);
          }
          // Nothing acknowledged them. (The single event is the batch's second.)
          const before = (await gw.commands()).map((c) => c.eventId).sort();
          expect(before).toHaveLength(storedBeforeRefusal);
          expect(await admin.keys(`${prefix}:dedup:*`)).toEqual([]);

          await admin.acl('SETUSER', 'gateway', `~${prefix}:dedup:*`);
          // PingOne's retry: the marks are written now, and BullMQ keeps one job per id.
          expect((await post(gw, singleText)).body).toMatchObject({ enqueued: 1, duplicates: 0 });
          expect((await post(gw, batchText)).body).toMatchObject({ enqueued: 2, duplicates: 1 });
          expect((await post(gw, batchText)).body).toMatchObject({ enqueued: 0, duplicates: 3 });
          expect(await admin.keys(`${prefix}:dedup:*`)).toHaveLength(3);
          // One job each for the batch's three revoking events (the single is its second).
          const after = (await gw.commands()).map((c) => c.eventId).sort();
          expect(after).toEqual(['1', '2', '3'].map((n) => `e1000001-0000-4000-8000-00000000000${n}`));
          if (storedBeforeRefusal > 0) expect(after).toEqual(before);
        });
      },
    );
  });

  describe('properties', () => {
    beforeEach(() => reset(main));

    const accounted = (b: Record<string, number>) =>
      b['received'] === b['enqueued']! + b['duplicates']! + b['ignored']! + b['quarantined']!;

    it('acknowledges any authenticated JSON value with 200 and accounts for every event', async () => {
      await fc.assert(
        fc.asyncProperty(fc.json(), async (body) => {
          const res = await post(main, body);
          expect(res.status).toBe(200);
          expect(accounted(res.body as Record<string, number>)).toBe(true);
        }),
        { numRuns: 150 },
      );
      for (const c of await main.commands()) expect(RevocationCommand.safeParse(c).success).toBe(true);
    });

    const actionTypes = Object.keys(DEFAULT_PINGONE_MAPPING);
    const text = fc.oneof(fc.string(), fc.string({ unit: 'binary', maxLength: 40 }));
    const someId = fc.oneof(fc.uuid(), text);
    const href = fc.oneof(
      fc
        .tuple(someId, someId)
        .map(
          ([user, group]) =>
            `https://api.pingone.com/v1/environments/${ENV_ID}/users/${encodeURIComponent(user)}/memberOfGroups/${group}`,
        ),
      fc.tuple(someId, someId).map(([user, group]) => `/users/${user}/memberOfGroups/${group}`),
      text,
    );
    const resource = fc.record(
      {
        type: fc.oneof(fc.constantFrom('USER', 'SESSION', 'GROUP', 'MEMBER_OF_GROUP', 'POPULATION'), text),
        id: someId,
        href,
        environment: fc.record({ id: fc.oneof(fc.constant(ENV_ID), someId) }),
      },
      { requiredKeys: ['type'] },
    );
    const recordedAt = fc.oneof(
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      fc.date({ noInvalidDate: true, min: new Date(0) }).map((d) => d.toUTCString()),
      text,
      fc.integer(),
    );
    const pingOneEvent = fc.record(
      {
        id: someId,
        recordedAt,
        createdAt: recordedAt,
        action: fc.record(
          { type: fc.oneof(fc.constantFrom(...actionTypes), text), description: text },
          { requiredKeys: [] },
        ),
        resources: fc.oneof(fc.array(resource, { maxLength: 4 }), text),
        result: fc.record({ status: fc.constantFrom('SUCCESS', 'FAILED', 'success', ''), description: text }),
        _embedded: fc.record({
          modifiedAttributes: fc.array(fc.oneof(fc.constantFrom('enabled', 'population', 'name'), text)),
        }),
        actors: fc.record({ user: fc.record({ id: someId, type: fc.constant('USER') }) }),
      },
      { requiredKeys: ['action'] },
    );
    const pingOneBody = fc
      .tuple(
        fc.array(pingOneEvent, { minLength: 1, maxLength: 8 }),
        fc.constantFrom('array', 'single', 'wrapped'),
      )
      .map(([events, shape]) =>
        JSON.stringify(shape === 'array' ? events : shape === 'single' ? events[0] : { events }),
      );

    it('acknowledges any PingOne-shaped delivery with 200 and only ever enqueues valid commands', async () => {
      await fc.assert(
        fc.asyncProperty(pingOneBody, async (body) => {
          const res = await post(main, body);
          expect(res.status).toBe(200);
          expect(accounted(res.body as Record<string, number>)).toBe(true);
        }),
        { numRuns: 200 },
      );
      const commands = await main.commands();
      for (const c of commands) {
        expect(RevocationCommand.safeParse(c).success).toBe(true);
        expect(c.source).toBe('pingone');
        expect(actionTypes).toContain(c.eventType);
      }
    });

    it('enqueues a well-formed user event for its subject, whatever its ids', async () => {
      let run = 0;
      const userActions = actionTypes.filter((t) => DEFAULT_PINGONE_MAPPING[t]!.target === 'user');
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...userActions),
          fc.string({ minLength: 1, maxLength: 200 }),
          fc.string({ minLength: 1, maxLength: 256 }),
          fc.date({ noInvalidDate: true, min: new Date(0), max: new Date(4_000_000_000_000) }),
          async (type, someId, userId, when) => {
            // Unique per run: the same event id with other contents is (rightly) a duplicate.
            const id = `${someId}#${++run}`;
            const event = {
              id,
              recordedAt: when.toISOString(),
              action: { type },
              resources: [{ type: 'USER', id: userId }],
              result: { status: 'SUCCESS' },
              _embedded: { modifiedAttributes: ['enabled'] },
            };
            const res = await post(main, JSON.stringify([event]));
            expect(res.status).toBe(200);
            expect(res.body['enqueued'] + res.body['duplicates']).toBe(1);
            const job = await main.queue.getJob(commandId('pingone', id));
            const data = job?.data as RevocationCommand;
            expect(data).toMatchObject({
              target: { type: 'user', userId },
              eventType: type,
              eventId: id,
              // Its own time, or when it arrived if it claims to come from the future.
              notBefore: Math.min(when.getTime(), data.receivedAt),
            });
          },
        ),
        { numRuns: 100 },
      );
    });

    it('answers 401 to any delivery without the right credentials, and stores nothing', async () => {
      const notSecret = fc.string({ unit: fc.constantFrom(...'abcdefABCDEF0123456789-_.~+/= \t') });
      const headers = fc.oneof(
        fc.constant({}),
        notSecret.filter((s) => s.trim() !== SECRET).map((s) => ({ Authorization: `Bearer ${s}` })),
        fc
          .tuple(fc.string(), fc.string())
          .filter(([, p]) => p !== SECRET)
          .map(([u, p]) => basic(u.replaceAll(':', ''), p)),
        fc.constantFrom('Digest', 'Token', 'ApiKey', 'Bearer:', 'Basic:').map((scheme) => ({
          Authorization: `${scheme} ${SECRET}`,
        })),
        notSecret.map((s) => ({ Authorization: `Bearer ${SECRET}${s.trim()}x` })),
        notSecret.map((s) => ({ Authorization: `Bearer x${s.trim()}${SECRET}` })),
        fc.constant({ 'X-Webhook-Secret': SECRET }),
      );
      await fc.assert(
        fc.asyncProperty(
          headers,
          fc.oneof(fc.json(), pingOneBody, fc.constant(batchText)),
          async (h, body) => {
            const res = await post(main, body, h);
            expect(res.status).toBe(401);
          },
        ),
        { numRuns: 150 },
      );
      await expectNothingStored(main);
    });
  });
});
