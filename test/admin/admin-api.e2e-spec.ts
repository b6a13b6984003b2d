import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { type CryptoKey, exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { createHash, randomUUID } from 'node:crypto';
import request from 'supertest';
import { commandId, QueueKeys, REVOCATION_PRIORITY_QUEUE, type RevocationCommand } from '#revocation';
import { SessionStore } from '#session-store';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { freePorts, REDIS_URL, uniquePrefix, waitFor } from '../support/redis.js';
import { quietQueues } from '../support/reliability-redis.js';
import { SessionKeys } from '../support/session-keys.js';
import { startWorker, type TestWorker } from '../support/worker.js';

/**
 * The admin API end to end over HTTP (supertest against the real gateway app on Fastify, real Redis,
 * an in-process worker where a command must run): every endpoint's success path, and 400, 401, 403,
 * 404, 429 and 503 (Redis unreachable).
 */

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** ADMIN_API_KEY: every scope, audited as `admin`. */
const ADMIN_KEY = 'admin-api-full-key-0123456789';
/** ADMIN_API_KEYS entries with fewer scopes. */
const READER_KEY = 'admin-api-reader-key-0123456789';
const OPS_KEY = 'admin-api-ops-key-0123456789';
const PINGONE_SECRET = 'admin-api-pingone-secret';
const ISSUER = 'https://idp.example.test/as';
const AUDIENCE = 'session-revoker-admin';
const KID = 'admin-test-key-1';

const ALL_SCOPES = 'sessions:read sessions:revoke queues:admin';
const nowSec = () => Math.floor(Date.now() / 1000);

type Method = 'get' | 'post' | 'delete';
type Auth = string | null | { header: string };

/** Every admin operation, with ids that pass validation. */
const ENDPOINTS: [Method, string][] = [
  ['get', '/admin/users/u-auth/sessions'],
  ['post', '/admin/users/u-auth/revoke'],
  ['delete', '/admin/users/u-auth/sessions/AAAAAAAAAAAAAAAAAAAAAA'],
  ['post', '/admin/groups/g-auth/revoke'],
  // A well-formed id: one that could be ours is looked up (and so meets the outage).
  ['get', `/admin/commands/${commandId('admin', 'unknown')}`],
  ['get', '/admin/audit'],
  ['get', '/admin/quarantine'],
  ['post', '/admin/quarantine/0-1/replay'],
  ['get', '/admin/failed'],
  ['post', `/admin/failed/${commandId('admin', 'no-such-job')}/retry`],
];

describe('admin API', () => {
  const sessionPrefix = uniquePrefix('adm-api-s');
  const queuePrefix = `{${uniquePrefix('adm-api-q')}}`;
  let env: Record<string, string>;
  let gw: TestGateway;
  let worker: TestWorker | undefined;
  let sessionRedis: Redis;
  let store: SessionStore;
  let keys: SessionKeys;
  let urgentQueue: Queue;
  let privateKey: CryptoKey;
  let otherPrivateKey: CryptoKey;

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    privateKey = pair.privateKey;
    otherPrivateKey = (await generateKeyPair('ES256')).privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'ES256', use: 'sig' };
    env = {
      QUEUE_PREFIX: queuePrefix,
      SESSION_PREFIX: sessionPrefix,
      SESSION_TAG_SECRET: 'admin-api-tag-secret-0123456789',
      PINGONE_WEBHOOK_SECRET: PINGONE_SECRET,
      ADMIN_API_KEY: ADMIN_KEY,
      ADMIN_API_KEYS: [
        `reader:sessions:read:${sha256(READER_KEY)}`,
        `ops:sessions:read+queues:admin:${sha256(OPS_KEY)}`,
      ].join(','),
      ADMIN_JWT_ISSUER: ISSUER,
      ADMIN_JWT_AUDIENCE: AUDIENCE,
      ADMIN_JWT_JWKS: JSON.stringify({ keys: [jwk] }),
      WORKER_CONCURRENCY: '4',
      // A shared test Redis can be slow to answer: do not turn that into 503s.
      ENQUEUE_TIMEOUT_MS: '10000',
    };
    gw = await startGateway(env);
    urgentQueue = gw.app.get<Queue>(getQueueToken(REVOCATION_PRIORITY_QUEUE), { strict: false });
    sessionRedis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    store = new SessionStore({
      redis: sessionRedis,
      prefix: sessionPrefix,
      tagSecret: env.SESSION_TAG_SECRET!,
    });
    keys = new SessionKeys(store);
  });

  afterAll(async () => {
    await worker?.close();
    await gw?.close();
    await keys?.delete(sessionRedis);
    sessionRedis?.disconnect();
  });

  const server = () => gw.app.getHttpServer();

  /** A request with `Authorization: Bearer <auth>` (null: no header; { header }: that header as is). */
  function call(method: Method, path: string, auth: Auth = ADMIN_KEY) {
    const r = request(server())[method](path);
    if (auth === null) return r;
    return r.set('Authorization', typeof auth === 'string' ? `Bearer ${auth}` : auth.header);
  }

  /** A POST with a JSON body given as text (sent byte for byte) or as a value. */
  function post(path: string, body?: unknown, auth: Auth = ADMIN_KEY) {
    const r = call('post', path, auth);
    if (body === undefined) return r;
    return r
      .set('Content-Type', 'application/json')
      .send(typeof body === 'string' ? body : JSON.stringify(body));
  }

  function jwt(claims: JWTPayload, options: { key?: CryptoKey; kid?: string; typ?: string } = {}) {
    const now = nowSec();
    return new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'ops-person', iat: now, exp: now + 300, ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: options.kid ?? KID, typ: options.typ ?? 'at+jwt' })
      .sign(options.key ?? privateKey);
  }

  const session = (userId: string, extra: { groups?: string[]; idpSessionId?: string } = {}) =>
    keys.create({ userId, ttlSeconds: 3600, ...extra });

  /** Every admin endpoint, with ids that are well-formed (so only authentication decides). */

  /** Jobs on both revocation queues, in any state. */
  const jobCount = async () => {
    const counts = await Promise.all([gw.queue, urgentQueue].map((q) => q.getJobCountByTypes()));
    return counts.reduce((a, b) => a + b, 0);
  };

  describe('authentication (401)', () => {
    it('answers 401 with WWW-Authenticate on every endpoint without credentials', async () => {
      for (const [method, path] of ENDPOINTS) {
        const res = await call(method, path, null);
        expect({ method, path, status: res.status }).toEqual({ method, path, status: 401 });
        expect(res.headers['www-authenticate']).toMatch(/^Bearer realm=/);
        expect(res.body).toMatchObject({ statusCode: 401 });
      }
    });

    it('answers 401 to a wrong key, a wrong scheme or a malformed credential', async () => {
      const wrong: Auth[] = [
        'not-the-admin-key-0123456789',
        `${ADMIN_KEY}x`,
        '',
        { header: `Token ${ADMIN_KEY}` },
        { header: ADMIN_KEY },
        { header: `Bearer` },
        { header: `Basic ${Buffer.from(ADMIN_KEY).toString('base64')}` }, // no user:password colon
        { header: `Basic ${Buffer.from('admin:wrong-password').toString('base64')}` },
        'a.b.c', // looks like a JWT
      ];
      for (const auth of wrong) {
        const res = await call('get', '/admin/users/u-auth/sessions', auth);
        expect({ auth, status: res.status }).toEqual({ auth, status: 401 });
      }
      // The right key as a Basic password is refused too: Basic is the dashboard's browser login, and
      // browsers replay it on cross-site requests (CSRF), so the API takes Bearer only.
      await call('get', '/admin/users/u-auth/sessions', {
        header: `Basic ${Buffer.from(`anyone:${ADMIN_KEY}`).toString('base64')}`,
      }).expect(401);
    });

    it('answers 401 to an expired, forged, foreign or unsigned access token', async () => {
      const now = nowSec();
      const [header, payload] = (await jwt({ scope: ALL_SCOPES })).split('.');
      const tokens: Record<string, string> = {
        expired: await jwt({ scope: ALL_SCOPES, iat: now - 7200, exp: now - 3600 }),
        'signed by another key': await jwt({ scope: ALL_SCOPES }, { key: otherPrivateKey }),
        'unknown kid': await jwt({ scope: ALL_SCOPES }, { kid: 'other-kid' }),
        'other audience': await jwt({ scope: ALL_SCOPES, aud: 'another-api' }),
        'other issuer': await jwt({ scope: ALL_SCOPES, iss: 'https://evil.example.test' }),
        'no sub': await jwt({ scope: ALL_SCOPES, sub: undefined }),
        'wrong typ': await jwt({ scope: ALL_SCOPES }, { typ: 'logout+jwt' }),
        'signature stripped': `${header}.${payload}.`,
        'alg none': `${Buffer.from(JSON.stringify({ alg: 'none', kid: KID })).toString('base64url')}.${payload}.`,
      };
      for (const [what, token] of Object.entries(tokens)) {
        const res = await call('get', '/admin/users/u-auth/sessions', token);
        expect({ what, status: res.status }).toEqual({ what, status: 401 });
      }
    });
  });

  describe('scopes (403) and access tokens', () => {
    it('answers 403 when the key lacks the endpoint scope, and 200 where it has it', async () => {
      const revokes: [Method, string, unknown?][] = [
        ['post', '/admin/users/u-scope/revoke', { reason: 'r' }],
        ['delete', '/admin/users/u-scope/sessions/AAAAAAAAAAAAAAAAAAAAAA'],
        ['post', '/admin/groups/g-scope/revoke', { reason: 'r' }],
        ['get', '/admin/quarantine'],
        ['post', '/admin/quarantine/0-1/replay'],
        ['get', '/admin/failed'],
        ['post', '/admin/failed/no-such-job/retry'],
      ];
      const before = await jobCount();
      for (const [method, path, body] of revokes) {
        const res =
          method === 'post' ? await post(path, body, READER_KEY) : await call(method, path, READER_KEY);
        expect({ path, status: res.status }).toEqual({ path, status: 403 });
        expect(res.body).toMatchObject({ statusCode: 403, message: expect.stringMatching(/scope/) });
      }
      const revoke = await post('/admin/users/u-scope/revoke', { reason: 'r' }, READER_KEY);
      expect(revoke.body.message).toBe('this needs the sessions:revoke scope');
      expect(await jobCount()).toBe(before);

      await call('get', '/admin/users/u-scope/sessions', READER_KEY).expect(200, []);
      await call('get', '/admin/audit?limit=1', READER_KEY).expect(200);
      // ops may administer the queues but not revoke.
      await call('get', '/admin/quarantine', OPS_KEY).expect(200);
      await post('/admin/users/u-scope/revoke', { reason: 'r' }, OPS_KEY).expect(403);
    });

    it('accepts an access token signed by the configured issuer, with its scopes', async () => {
      const userId = 'u-jwt';
      await session(userId);
      const reader = await jwt({ sub: 'alice@example.test', scope: 'openid sessions:read' });
      const list = await call('get', `/admin/users/${userId}/sessions`, reader).expect(200);
      expect(list.body).toHaveLength(1);

      // Lacking the scope: 403, not 401.
      const denied = await post(`/admin/users/${userId}/revoke`, { reason: 'jwt' }, reader);
      expect(denied.status).toBe(403);
      await call('get', '/admin/quarantine', reader).expect(403);

      // `scp` as an array works as well as a space-separated `scope`.
      const revoker = await jwt({ sub: 'bob@example.test', scp: ['sessions:read', 'sessions:revoke'] });
      const accepted = await post(`/admin/users/${userId}/revoke`, { reason: 'jwt' }, revoker).expect(202);
      expect(accepted.body).toEqual({ commandId: expect.stringMatching(/^admin-/) });
      const job = await urgentQueue.getJob(accepted.body.commandId);
      expect(job!.data).toMatchObject({ actor: 'jwt:bob@example.test', reason: 'jwt', source: 'admin' });

      // The audit trail names the token's subject, also for the call it was refused (403).
      const audit = await call('get', `/admin/audit?userId=${userId}&limit=10`).expect(200);
      expect(audit.body.map((a: { actor?: string; result: unknown }) => [a.actor, a.result])).toEqual([
        ['jwt:bob@example.test', 202],
        ['jwt:alice@example.test', 403],
        ['jwt:alice@example.test', 200],
      ]);
    });
  });

  describe('validation (400)', () => {
    const badRequest = { statusCode: 400, error: 'Bad Request', message: expect.any(String) };

    it('refuses malformed ids with 400 and the reason', async () => {
      const cases: [Method, string][] = [
        ['delete', '/admin/users/u-bad/sessions/short'],
        ['delete', '/admin/users/u-bad/sessions/AAAAAAAAAAAAAAAAAAAAA!'],
        ['delete', `/admin/users/u-bad/sessions/${'A'.repeat(23)}`],
        ['get', '/admin/commands/bad!id'],
        ['get', '/admin/commands/has%20space'],
        ['post', '/admin/quarantine/not-an-id/replay'],
        ['post', '/admin/quarantine/1-2-3/replay'],
        ['post', '/admin/failed/a.b/retry'],
        ['post', '/admin/failed/a%3Ab/retry'],
      ];
      for (const [method, path] of cases) {
        const res = await call(method, path);
        expect({ path, status: res.status }).toEqual({ path, status: 400 });
        expect(res.body).toEqual(badRequest);
      }
      const handle = await call('delete', '/admin/users/u-bad/sessions/short');
      expect(handle.body.message).toMatch(/22 base64url characters/);
    });

    it('refuses a user or group id over 256 characters with 400', async () => {
      const long = 'u'.repeat(257);
      const cases: [Method, string][] = [
        ['get', `/admin/users/${long}/sessions`],
        ['post', `/admin/users/${long}/revoke`],
        ['delete', `/admin/users/${long}/sessions/AAAAAAAAAAAAAAAAAAAAAA`],
        ['post', `/admin/groups/${long}/revoke`],
      ];
      const got = [];
      for (const [method, path] of cases)
        got.push({
          method,
          status: (method === 'post' ? await post(path, { reason: 'r' }) : await call(method, path)).status,
        });
      expect(got).toEqual(cases.map(([method]) => ({ method, status: 400 })));
    });

    it('serves user ids of 101 to 256 characters, which the API accepts', async () => {
      const userId = `u-${'x'.repeat(198)}`; // 200 characters: valid for the DTO and the session store
      await session(userId);
      const res = await call('get', `/admin/users/${userId}/sessions`);
      expect(res.status).toBe(200);
      expect(res.body).toHaveLength(1);
    });

    it('refuses bad bodies with 400 and queues nothing', async () => {
      const before = await jobCount();
      const bodies: [string, unknown][] = [
        ['not JSON', '{"reason":'],
        ['not JSON either', 'reason=because'],
        ['empty', undefined],
        ['empty object', {}],
        ['missing reason', { why: 'x' }],
        ['empty reason', { reason: '' }],
        ['reason not a string', { reason: 42 }],
        ['reason too long', { reason: 'r'.repeat(513) }],
        ['extra field', { reason: 'ok', userId: 'someone-else' }],
        ['array', [{ reason: 'ok' }]],
        ['null', 'null'],
      ];
      for (const path of ['/admin/users/u-body/revoke', '/admin/groups/g-body/revoke']) {
        for (const [what, body] of bodies) {
          const res = await post(path, body);
          expect({ path, what, status: res.status }).toEqual({ path, what, status: 400 });
          expect(res.body).toEqual(badRequest);
        }
      }
      const extra = await post('/admin/users/u-body/revoke', { reason: 'ok', extra: true });
      expect(extra.body.message).toMatch(/extra/);
      const missing = await post('/admin/users/u-body/revoke', {});
      expect(missing.body.message).toMatch(/reason/);
      expect(await jobCount()).toBe(before);
    });

    it('refuses bad query parameters with 400', async () => {
      const cases = [
        '/admin/audit?limit=0',
        '/admin/audit?limit=-5',
        '/admin/audit?limit=abc',
        '/admin/audit?limit=1.5',
        '/admin/audit?limit=1001',
        `/admin/audit?userId=${'u'.repeat(257)}`,
        '/admin/audit?userId=',
        '/admin/quarantine?limit=0',
        '/admin/quarantine?limit=many',
        '/admin/failed?limit=100000',
        '/admin/failed?limit=-1',
      ];
      for (const path of cases) {
        const res = await call('get', path);
        expect({ path, status: res.status }).toEqual({ path, status: 400 });
        expect(res.body).toEqual(badRequest);
      }
      const before = await jobCount();
      const wait = await post('/admin/users/u-query/revoke?wait=yes', { reason: 'r' });
      expect(wait.status).toBe(400);
      expect(await jobCount()).toBe(before);
    });
  });

  describe('sessions', () => {
    it("lists a user's live sessions by handle, never by session id", async () => {
      const userId = 'u-list';
      const a = await session(userId, { groups: ['g-blue', 'g-red'], idpSessionId: 'ping-sid-1' });
      const b = await session(userId);
      await session('u-list-other');
      const res = await call('get', `/admin/users/${userId}/sessions`, READER_KEY).expect(200);
      expect(res.headers['content-type']).toMatch(/application\/json/);
      const byHandle = new Map<string, Record<string, unknown>>(
        (res.body as Record<string, unknown>[]).map((s) => [s['handle'] as string, s]),
      );
      expect([...byHandle.keys()].sort()).toEqual([a.handle, b.handle].sort());
      expect(byHandle.get(a.handle)).toEqual({
        handle: a.handle,
        issuedAt: a.issuedAt,
        expiresAt: a.expiresAt,
        idpSessionId: 'ping-sid-1',
        groups: ['g-blue', 'g-red'],
      });
      expect(Object.keys(byHandle.get(b.handle)!).sort()).toEqual([
        'expiresAt',
        'groups',
        'handle',
        'issuedAt',
      ]);
      for (const s of [a, b]) {
        expect(res.text).not.toContain(s.sessionId);
        expect(res.text).not.toContain(s.sessionId.split('.').at(-1));
      }
      await call('get', '/admin/users/nobody-here/sessions').expect(200, []);
    });

    it('revokes one session by handle: 204, then 404', async () => {
      const userId = 'u-handle';
      const doomed = await session(userId);
      const kept = await session(userId);
      // Another user's handle does not work under this user.
      const stranger = await session('u-handle-stranger');
      const cross = await call('delete', `/admin/users/${userId}/sessions/${stranger.handle}`);
      expect(cross.status).toBe(404);
      expect(await store.getSession(stranger.sessionId)).not.toBeNull();

      const res = await call('delete', `/admin/users/${userId}/sessions/${doomed.handle}`);
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      expect(await store.getSession(doomed.sessionId)).toBeNull();
      expect(await store.getSession(kept.sessionId)).not.toBeNull();
      const list = await call('get', `/admin/users/${userId}/sessions`).expect(200);
      expect(list.body.map((s: { handle: string }) => s.handle)).toEqual([kept.handle]);

      const again = await call('delete', `/admin/users/${userId}/sessions/${doomed.handle}`);
      expect(again.status).toBe(404);
      expect(again.body).toMatchObject({ statusCode: 404, message: 'no such session' });
    });
  });

  describe('commands while no worker runs', () => {
    it('queues a user revocation: 202 {commandId}, then state queued with its timings', async () => {
      const userId = 'u-queued';
      const before = Date.now();
      const res = await post(`/admin/users/${userId}/revoke`, { reason: 'laptop stolen' });
      keys.user(userId);
      expect(res.status).toBe(202);
      expect(res.body).toEqual({ commandId: expect.stringMatching(/^admin-[A-Za-z0-9_-]+$/) });
      const { commandId: id } = res.body as { commandId: string };

      const status = await call('get', `/admin/commands/${id}`, READER_KEY).expect(200);
      expect(status.body).toEqual({
        commandId: id,
        state: 'queued',
        attempts: 0,
        timings: { queuedAt: expect.any(Number) },
      });
      expect(status.body.timings.queuedAt).toBeGreaterThanOrEqual(before);
      expect(status.body.timings.queuedAt).toBeLessThanOrEqual(Date.now());

      const job = await urgentQueue.getJob(id);
      expect(job!.data as RevocationCommand).toMatchObject({
        id,
        target: { type: 'user', userId },
        source: 'admin',
        eventType: 'admin.revoke_user',
        reason: 'laptop stolen',
        actor: 'admin',
      });
    });

    it('queues a group revocation: 202 {commandId}', async () => {
      const res = await post('/admin/groups/g-queued/revoke', { reason: 'group compromised' });
      keys.group('g-queued');
      expect(res.status).toBe(202);
      expect(res.body).toEqual({ commandId: expect.stringMatching(/^admin-/) });
      const job = await urgentQueue.getJob(res.body.commandId);
      expect(job!.data).toMatchObject({
        target: { type: 'group', groupId: 'g-queued' },
        eventType: 'admin.revoke_group',
        reason: 'group compromised',
      });
      const status = await call('get', `/admin/commands/${res.body.commandId}`).expect(200);
      expect(status.body.state).toBe('queued');
    });

    it('answers 404 for an unknown command', async () => {
      for (const id of ['admin-unknown', commandId('admin', randomUUID())]) {
        const res = await call('get', `/admin/commands/${id}`);
        expect(res.status).toBe(404);
        expect(res.body).toMatchObject({ statusCode: 404, message: 'no such command' });
      }
    });
  });

  describe('with a worker', () => {
    beforeAll(async () => {
      worker = await startWorker(env);
    });
    afterAll(async () => {
      await worker?.close();
      worker = undefined;
    });

    it('?wait=true answers 200 {revoked} once done, and the sessions are unreadable', async () => {
      const userId = 'u-wait';
      const sessions = await Promise.all([session(userId), session(userId)]);
      const other = await session('u-wait-bystander');
      const res = await post(`/admin/users/${userId}/revoke?wait=true`, { reason: 'offboarded' });
      expect(res.status).toBe(200);
      // `revoked` counts what the job's last attempt deleted: an attempt retried after its clean-up
      // (a slow Redis under load) reports 0. The sessions being unreadable is what must hold.
      expect(res.body).toEqual({ commandId: expect.any(String), revoked: expect.any(Number) });
      expect(res.body.revoked).toBeLessThanOrEqual(2);
      for (const s of sessions) expect(await store.getSession(s.sessionId)).toBeNull();
      expect(await store.getSession(other.sessionId)).not.toBeNull();
      await call('get', `/admin/users/${userId}/sessions`).expect(200, []);

      const status = await call('get', `/admin/commands/${res.body.commandId}`).expect(200);
      expect(status.body).toMatchObject({ state: 'done', result: { revoked: 2 }, attempts: 1 });
      const { queuedAt, startedAt, finishedAt } = status.body.timings;
      expect(queuedAt).toBeLessThanOrEqual(startedAt);
      expect(startedAt).toBeLessThanOrEqual(finishedAt);
    });

    it('revokes a group: every member holding a session with it', async () => {
      const group = 'g-incident';
      const members = await Promise.all([
        session('u-grp-1', { groups: [group] }),
        session('u-grp-2', { groups: [group, 'g-other'] }),
      ]);
      const outsider = await session('u-grp-3', { groups: ['g-other'] });
      const res = await post(`/admin/groups/${group}/revoke`, { reason: 'incident' }).expect(202);
      await waitForQueuesIdle([urgentQueue, gw.queue]);
      for (const s of members) expect(await store.getSession(s.sessionId)).toBeNull();
      expect(await store.getSession(outsider.sessionId)).not.toBeNull();
      const status = await call('get', `/admin/commands/${res.body.commandId}`).expect(200);
      expect(status.body).toMatchObject({ state: 'done', result: { revoked: 0, fannedOut: 2 } });
    });

    it('earlier queued commands ran once the worker started', async () => {
      await waitForQueuesIdle([urgentQueue, gw.queue]);
      const failed = await Promise.all([urgentQueue, gw.queue].map((q) => q.getJobCountByTypes('failed')));
      expect(failed).toEqual([0, 0]);
    });

    it('audit: newest first, by user, with the admin as actor and every outcome', async () => {
      const userId = 'u-audit';
      const [first] = await Promise.all([session(userId), session(userId)]);
      await call('get', `/admin/users/${userId}/sessions`, READER_KEY).expect(200);
      await call('delete', `/admin/users/${userId}/sessions/${first!.handle}`).expect(204);
      await call('delete', `/admin/users/${userId}/sessions/${first!.handle}`).expect(404);
      await post(`/admin/users/${userId}/revoke`, { reason: 'audit me', note: 'extra' }).expect(400);
      await post(`/admin/users/${userId}/revoke?wait=true`, { reason: 'audit me' }).expect(200);

      const res = await call('get', `/admin/audit?userId=${userId}&limit=10`, READER_KEY).expect(200);
      const entries = res.body as Record<string, unknown>[];
      expect(entries.map((e) => [e['eventType'], e['result'], e['actor']])).toEqual([
        ['POST /admin/users/:userId/revoke', 200, 'admin'],
        ['admin.revoke_user', 'done', 'admin'],
        ['POST /admin/users/:userId/revoke', 400, 'admin'],
        ['DELETE /admin/users/:userId/sessions/:handle', 404, 'admin'],
        ['DELETE /admin/users/:userId/sessions/:handle', 204, 'admin'],
        ['GET /admin/users/:userId/sessions', 200, 'reader'],
      ]);
      expect(entries[1]).toMatchObject({
        source: 'admin',
        target: { type: 'user', userId },
        revoked: 1,
        reason: 'audit me',
      });
      expect(entries[0]).toMatchObject({ source: 'admin', target: { userId } });
      expect(entries[4]).toMatchObject({ target: { userId, handle: first!.handle } });
      const ids = entries.map((e) => e['id'] as string);
      expect([...ids].sort(byStreamIdDesc)).toEqual(ids);
      for (const e of entries) {
        expect(e['receivedAt']).toEqual(expect.any(Number));
        expect(e['doneAt']).toBeGreaterThanOrEqual(e['receivedAt'] as number);
      }
      // Only ids in the trail: never a body, a session id or a credential.
      expect(res.text).not.toContain(ADMIN_KEY);
      expect(res.text).not.toContain(READER_KEY);
      expect(res.text).not.toContain(first!.sessionId);
      expect(res.text).not.toContain('extra');

      const one = await call('get', `/admin/audit?userId=${userId}&limit=1`).expect(200);
      expect(one.body).toEqual([entries[0]]);
      const all = await call('get', '/admin/audit?limit=1000').expect(200);
      const allIds = (all.body as { id: string }[]).map((e) => e.id);
      expect(allIds.length).toBeGreaterThan(entries.length);
      expect([...allIds].sort(byStreamIdDesc)).toEqual(allIds);
      // The audit call itself is audited (it has no user, so the filter above leaves it out).
      expect(all.body[0]).toMatchObject({ eventType: 'GET /admin/audit', result: 200, actor: 'admin' });
    });

    it('failed jobs: listed, retried back onto the queue, 404 otherwise', async () => {
      // An id of the shape the service issues, so the admin API looks it up.
      const jobId = commandId('admin', `invalid-${randomUUID()}`);
      await gw.queue.add('revoke', { id: 'bad', target: { type: 'user' } } as unknown as RevocationCommand, {
        jobId,
        attempts: 3,
      });
      await waitFor(async () => (await gw.queue.getJob(jobId))?.failedReason, 'the invalid job to fail');

      const list = await call('get', '/admin/failed?limit=10', OPS_KEY).expect(200);
      const entry = (list.body as { id: string }[]).find((j) => j.id === jobId);
      expect(entry).toEqual({
        id: jobId,
        queue: 'revocations',
        command: { id: 'bad', target: { type: 'user' } },
        failedReason: expect.stringMatching(/^invalid revocation command/),
        attempts: 1,
        failedAt: expect.any(Number),
      });

      // Stop the worker so the retried job stays on the queue to be seen there.
      await worker!.close();
      worker = undefined;
      const res = await post(`/admin/failed/${jobId}/retry`, undefined, OPS_KEY);
      expect(res.status).toBe(202);
      expect(res.body).toEqual({ retried: jobId });
      expect(await (await gw.queue.getJob(jobId))!.getState()).toBe('waiting');
      const status = await call('get', `/admin/commands/${jobId}`).expect(200);
      expect(status.body.state).toBe('queued');
      const after = await call('get', '/admin/failed?limit=10', OPS_KEY).expect(200);
      expect((after.body as { id: string }[]).map((j) => j.id)).not.toContain(jobId);

      // No longer failed, or never existed: 404.
      for (const id of [jobId, 'no-such-job']) {
        const again = await post(`/admin/failed/${id}/retry`, undefined, OPS_KEY);
        expect(again.status).toBe(404);
        expect(again.body).toMatchObject({ statusCode: 404, message: 'no such failed job' });
      }
    });
  });

  describe('quarantine', () => {
    const deliver = (events: unknown[]) =>
      request(server())
        .post('/webhooks/pingone')
        .set('Authorization', `Bearer ${PINGONE_SECRET}`)
        .set('Content-Type', 'application/json')
        .send(JSON.stringify(events));

    const event = (id: string, type: string, resources: unknown[], extra: Record<string, unknown> = {}) => ({
      id,
      recordedAt: new Date().toISOString(),
      action: { type },
      result: { status: 'SUCCESS' },
      resources,
      ...extra,
    });

    it('lists malformed PingOne events newest first; replaying one that still fails keeps it', async () => {
      const first = `q-${randomUUID()}`;
      const second = `q-${randomUUID()}`;
      // USER.DELETED naming no USER resource.
      const a = await deliver([event(first, 'USER.DELETED', [{ type: 'GROUP', id: 'g-1' }])]).expect(200);
      expect(a.body).toMatchObject({ received: 1, enqueued: 0, quarantined: 1 });
      const b = await deliver([
        event(second, 'USER.LOCKED', [{ type: 'USER', id: 'u-q' }], { recordedAt: 'yesterday' }),
      ]).expect(200);
      expect(b.body).toMatchObject({ quarantined: 1 });

      const list = await call('get', '/admin/quarantine?limit=10', OPS_KEY).expect(200);
      const entries = list.body as { id: string; eventId?: string; reason: string; raw: string }[];
      expect(entries.map((e) => e.eventId).slice(0, 2)).toEqual([second, first]);
      const entry = entries.find((e) => e.eventId === first)!;
      expect(entry).toEqual({
        id: expect.stringMatching(/^\d+-\d+$/),
        source: 'pingone',
        reason: 'event names no user',
        raw: expect.any(String),
        eventId: first,
        receivedAt: expect.any(Number),
        events: 1,
      });
      expect(JSON.parse(entry.raw)).toMatchObject({ id: first, action: { type: 'USER.DELETED' } });
      const limited = await call('get', '/admin/quarantine?limit=1', OPS_KEY).expect(200);
      expect(limited.body).toEqual([entries[0]]);

      const before = await jobCount();
      const replay = await post(`/admin/quarantine/${entry.id}/replay`, undefined, OPS_KEY);
      expect(replay.status).toBe(200);
      expect(replay.body).toEqual({ enqueued: 0, ignored: 0, quarantined: 1 });
      expect(await jobCount()).toBe(before);
      const still = await call('get', '/admin/quarantine?limit=10', OPS_KEY).expect(200);
      expect((still.body as { id: string }[]).map((e) => e.id)).toContain(entry.id);
    });

    it('replays an entry that now parses: queues its command past dedup and removes it', async () => {
      // An entry quarantined earlier (say, before the mapping was fixed) whose raw event is valid now.
      const eventId = `q-${randomUUID()}`;
      const userId = 'u-replayed';
      keys.user(userId);
      const raw = JSON.stringify(event(eventId, 'USER.DELETED', [{ type: 'USER', id: userId }]));
      const firstArrival = Date.now() - 60_000;
      const id = (await gw.redis.xadd(
        new QueueKeys(queuePrefix).quarantine,
        '*',
        'source',
        'pingone',
        'reason',
        'unmapped action type at the time',
        'receivedAt',
        String(firstArrival),
        'eventId',
        eventId,
        'raw',
        raw,
      ))!;
      // Its command id was seen before: a replay must act anyway.
      await gw.redis.set(new QueueKeys(queuePrefix).dedup(commandId('pingone', eventId)), '1', 'PX', 60_000);

      const res = await post(`/admin/quarantine/${id}/replay`, undefined, OPS_KEY);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ enqueued: 1, ignored: 0, quarantined: 0 });
      const jobs = await gw.queue.getJobs(['waiting', 'active', 'completed', 'prioritized']);
      const job = jobs.find((j) => j.id?.startsWith(`${commandId('pingone', eventId)}-r`));
      expect(job?.data).toMatchObject({ source: 'pingone', eventId, target: { type: 'user', userId } });
      // It arrived when it was first delivered, not when it was replayed.
      expect((job?.data as RevocationCommand).receivedAt).toBe(firstArrival);

      const list = await call('get', '/admin/quarantine?limit=1000', OPS_KEY).expect(200);
      expect((list.body as { id: string }[]).map((e) => e.id)).not.toContain(id);
      const again = await post(`/admin/quarantine/${id}/replay`, undefined, OPS_KEY);
      expect(again.status).toBe(404);
      expect(again.body).toMatchObject({ statusCode: 404, message: 'no such quarantine entry' });
    });

    it('answers 404 for an unknown entry', async () => {
      const res = await post('/admin/quarantine/1-0/replay', undefined, OPS_KEY);
      expect(res.status).toBe(404);
    });
  });

  describe('OpenAPI', () => {
    const OPERATIONS: [string, string, number][] = [
      ['/admin/users/{userId}/sessions', 'get', 200],
      ['/admin/users/{userId}/revoke', 'post', 202],
      ['/admin/users/{userId}/sessions/{handle}', 'delete', 204],
      ['/admin/groups/{groupId}/revoke', 'post', 202],
      ['/admin/commands/{commandId}', 'get', 200],
      ['/admin/audit', 'get', 200],
      ['/admin/quarantine', 'get', 200],
      ['/admin/quarantine/{id}/replay', 'post', 200],
      ['/admin/failed', 'get', 200],
      ['/admin/failed/{id}/retry', 'post', 202],
    ];
    type Operation = {
      parameters?: { name: string; in: string }[];
      requestBody?: { content: Record<string, { schema: Record<string, unknown> }> };
      responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
      security?: unknown[];
    };
    let doc: { paths: Record<string, Record<string, Operation>> };

    beforeAll(async () => {
      doc = (await request(server()).get('/docs/openapi.json').expect(200)).body;
    });

    it('serves Swagger UI at /docs without credentials', async () => {
      const res = await request(server()).get('/docs').redirects(1);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/text\/html/);
      expect(res.text).toMatch(/swagger-ui/i);
    });

    it('lists every admin operation with its parameters, request body and error schemas', () => {
      const adminPaths = Object.keys(doc.paths).filter((p) => p.startsWith('/admin'));
      expect(adminPaths.sort()).toEqual([...new Set(OPERATIONS.map(([p]) => p))].sort());
      for (const [path, method] of OPERATIONS) {
        const op = doc.paths[path]?.[method];
        expect({ path, method, documented: Boolean(op) }).toEqual({ path, method, documented: true });
        for (const name of path.match(/\{(\w+)\}/g)?.map((p) => p.slice(1, -1)) ?? [])
          expect(op!.parameters).toContainEqual(expect.objectContaining({ name, in: 'path' }));
        expect(Object.keys(op!.responses)).toEqual(
          expect.arrayContaining(['400', '401', '403', '429', '503']),
        );
        for (const status of ['400', '401', '403', '429', '503'])
          expect(op!.responses[status]!.content?.['application/json']?.schema).toMatchObject({
            properties: { statusCode: expect.anything() },
          });
        expect(op!.security).toBeDefined();
      }
      for (const path of ['/admin/users/{userId}/revoke', '/admin/groups/{groupId}/revoke']) {
        const schema = doc.paths[path]!['post']!.requestBody?.content['application/json']?.schema;
        expect(schema).toMatchObject({
          type: 'object',
          properties: { reason: { type: 'string', minLength: 1, maxLength: 512 } },
          required: ['reason'],
          additionalProperties: false,
        });
      }
    });

    it('documents the success response schema and the query parameters of every admin operation', () => {
      const missing = OPERATIONS.filter(
        ([path, method, success]) =>
          success !== 204 &&
          !doc.paths[path]?.[method]?.responses[String(success)]?.content?.['application/json']?.schema,
      ).map(([path, method, success]) => `${method.toUpperCase()} ${path}: no ${success} response schema`);
      const queries: [string, string, string[]][] = [
        ['/admin/users/{userId}/revoke', 'post', ['wait']],
        ['/admin/audit', 'get', ['userId', 'limit', 'before']],
        ['/admin/quarantine', 'get', ['limit']],
        ['/admin/failed', 'get', ['limit']],
      ];
      for (const [path, method, names] of queries) {
        const documented = (doc.paths[path]?.[method]?.parameters ?? [])
          .filter((p) => p.in === 'query')
          .map((p) => p.name);
        for (const name of names)
          if (!documented.includes(name))
            missing.push(`${method.toUpperCase()} ${path}: query parameter ${name} undocumented`);
      }
      expect(missing).toEqual([]);
    });
  });
});

/** Redis stream ids (`ms-seq`), newest first. */
function byStreamIdDesc(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? Number(bs - as) : bm > am ? 1 : -1;
}

describe('admin rate limit', () => {
  const KEY = 'admin-rate-limit-key-0123456789';
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startGateway({
      QUEUE_PREFIX: `{${uniquePrefix('adm-rl')}}`,
      SESSION_PREFIX: uniquePrefix('adm-rl-s'),
      SESSION_TAG_SECRET: 'admin-rate-limit-tag-secret',
      ADMIN_API_KEY: KEY,
      ADMIN_RATE_LIMIT_PER_MINUTE: '3',
      ADMIN_AUTH_FAILURES_PER_MINUTE: '2',
    });
  });
  afterAll(() => gw?.close());

  it('answers 429 with Retry-After on the 4th call in a minute', async () => {
    const server = gw.app.getHttpServer();
    const list = () =>
      request(server).get('/admin/users/u-rl/sessions').set('Authorization', `Bearer ${KEY}`);
    for (let i = 0; i < 3; i++) await list().expect(200);
    const limited = await list();
    expect({ status: limited.status, body: limited.body }).toEqual({
      status: 429,
      body: expect.objectContaining({ statusCode: 429 }),
    });
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
  });

  it('limits a key on the API and the dashboard alike, and only under /admin', async () => {
    const server = gw.app.getHttpServer();
    // The key's minute is spent (previous test): its calls are refused, on the dashboard too.
    const refused = [
      await request(server).get('/admin/users/u-rl/sessions').set('Authorization', `Bearer ${KEY}`),
      await request(server).get('/admin/queues').auth('admin', KEY),
    ];
    for (const res of refused) {
      expect(res.status).toBe(429);
      expect(res.headers['retry-after']).toMatch(/^\d+$/);
      expect(res.headers['x-ratelimit-remaining']).toBe('0');
    }
    // Not the rest of the service.
    const docs = await request(server).get('/docs/openapi.json').expect(200);
    expect(docs.headers['retry-after']).toBeUndefined();
  });

  it('counts failed authentications apart (ADMIN_AUTH_FAILURES_PER_MINUTE), on the API and the dashboard, so no password is guessed unlimited', async () => {
    // The key's spent budget is not the anonymous client's: its first failures are 401, then 429.
    const server = gw.app.getHttpServer();
    const guesses = [
      (await request(server).get('/admin/audit')).status,
      (await request(server).post('/admin/users/u-rl/revoke').set('Authorization', 'Bearer wrong')).status,
    ];
    for (let i = 0; i < 3; i++)
      guesses.push((await request(server).get('/admin/queues').auth('admin', `guess-${i}`)).status);
    expect(guesses).toEqual([401, 401, 429, 429, 429]);
  });
});

describe('admin ?wait=true without a worker', () => {
  const KEY = 'admin-wait-key-0123456789';
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startGateway({
      QUEUE_PREFIX: `{${uniquePrefix('adm-wait')}}`,
      SESSION_PREFIX: uniquePrefix('adm-wait-s'),
      SESSION_TAG_SECRET: 'admin-wait-tag-secret-0123',
      ADMIN_API_KEY: KEY,
      ADMIN_WAIT_TIMEOUT_MS: '300',
      ENQUEUE_TIMEOUT_MS: '10000',
    });
  });
  afterAll(() => gw?.close());

  it('answers 202 {commandId} when the wait is over and the command is still queued', async () => {
    const server = gw.app.getHttpServer();
    const started = Date.now();
    const res = await request(server)
      .post('/admin/users/u-wait-nobody/revoke?wait=true')
      .set('Authorization', `Bearer ${KEY}`)
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ reason: 'nobody runs it' }));
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ commandId: expect.stringMatching(/^admin-/) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    const status = await request(server)
      .get(`/admin/commands/${res.body.commandId}`)
      .set('Authorization', `Bearer ${KEY}`)
      .expect(200);
    expect(status.body.state).toBe('queued');
  });
});

describe('admin API while Redis is unreachable', () => {
  const KEY = 'admin-down-key-0123456789';
  // These read or write through the gateway's queue client, which refuses at once while it is not
  // connected: the filter answers the connection error itself. The others may also wait (BullMQ for
  // a first connection, the session client through its reconnects) until the deadline answers.
  const REFUSED_AT_ONCE = new Set([
    '/admin/users/u-auth/revoke',
    '/admin/groups/g-auth/revoke',
    '/admin/audit',
    '/admin/quarantine',
    '/admin/quarantine/0-1/replay',
  ]);
  const handles = () =>
    process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r.startsWith('TCP')).length;
  let handlesBefore: number;
  let gw: TestGateway;

  beforeAll(async () => {
    handlesBefore = handles();
    const [deadPort] = (await freePorts(1)) as [number];
    const dead = `redis://127.0.0.1:${deadPort}`;
    gw = await startGateway({
      REDIS_URL: dead,
      QUEUE_PREFIX: `{${uniquePrefix('adm-down')}}`,
      SESSION_TAG_SECRET: 'admin-down-tag-secret-0123',
      ADMIN_API_KEY: KEY,
      ENQUEUE_TIMEOUT_MS: '500',
    });
    // Expected: both clients fail to connect for the whole test.
    quietQueues(gw.app, [gw.redis, gw.queue]);
  });
  afterAll(async () => {
    await gw.app.close();
    gw.redis.disconnect();
    // ioredis ends a socket that never connected on a 2 s timer: wait for it rather than leave Jest
    // with open handles.
    await waitFor(() => handles() <= handlesBefore, "the gateway's sockets and timers to go", 5000);
  });

  it('answers 503 with Retry-After on the dashboard API too, within its deadline', async () => {
    const started = Date.now();
    const res = await request(gw.app.getHttpServer())
      .get('/admin/queues/api/queues')
      .query({ activeQueue: 'revocations', page: '1', jobsPerPage: '10' })
      .auth('admin', KEY);
    expect({ status: res.status, retryAfter: res.headers['retry-after'] }).toEqual({
      status: 503,
      retryAfter: expect.stringMatching(/^\d+$/),
    });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('answers 503 with Retry-After on every operation, never 500', async () => {
    for (const [method, path] of ENDPOINTS) {
      let r = request(gw.app.getHttpServer())[method](path).set('Authorization', `Bearer ${KEY}`);
      if (method === 'post') r = r.set('Content-Type', 'application/json').send({ reason: 'outage drill' });
      const res = await r;
      expect({
        method,
        path,
        status: res.status,
        retryAfter: res.headers['retry-after'],
        message: (res.body as { message?: string }).message,
      }).toEqual({
        method,
        path,
        status: 503,
        retryAfter: expect.stringMatching(/^\d+$/),
        message: expect.stringMatching(
          REFUSED_AT_ONCE.has(path)
            ? /^(Redis is unavailable|could not store the delivery); retry later$/
            : /^(Redis is unavailable|Redis did not answer in time); retry later$/,
        ),
      });
    }
  });
});
