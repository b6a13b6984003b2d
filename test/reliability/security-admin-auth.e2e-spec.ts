import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { createHash } from 'node:crypto';
import request from 'supertest';
import { REVOCATION_PRIORITY_QUEUE } from '#revocation';
import { SessionStore } from '#session-store';
import { startGateway, type TestGateway } from '../support/gateway.js';
import {
  createSigner,
  hs256WithPublicKey,
  nowSec,
  signJwt,
  type TestSigner,
  unsignedJwt,
} from '../support/jwt.js';
import { issuerEnv, signAccessToken } from '../support/jwt-issuers.js';
import { REDIS_URL, uniquePrefix } from '../support/redis.js';
import { signRaw } from '../support/security-fuzz.js';
import { SessionKeys } from '../support/session-keys.js';

/**
 * Admin authentication and authorisation, the gaps left by test/admin/*: access tokens (JWT) refused
 * for every classic forgery and claim error, every endpoint refusing every principal that lacks its
 * scope, the dashboard (page, API, assets and its write actions) refusing without credentials, and the
 * /admin rate limit not bypassable by percent-encoding the path.
 */

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const FULL_KEY = 'sec-admin-full-key-0123456789';
const READER_KEY = 'sec-admin-reader-key-0123456789';
const REVOKER_KEY = 'sec-admin-revoker-key-0123456789';
const OPS_KEY = 'sec-admin-ops-key-0123456789';
const ISSUER = 'https://as.example.test';
const AUDIENCE = 'session-revoker-admin';
const ALL_SCOPES = 'sessions:read sessions:revoke queues:admin';
const HANDLE = 'AAAAAAAAAAAAAAAAAAAAAA';

type Method = 'get' | 'post' | 'delete' | 'put';
type Claims = Record<string, unknown>;

describe('admin authentication and scopes', () => {
  const sessionPrefix = uniquePrefix('sec-adm-s');
  let gw: TestGateway;
  let urgent: Queue;
  let signer: TestSigner;
  let other: TestSigner;
  let impostor: TestSigner;
  let sessionRedis: Redis;
  let keys: SessionKeys;

  beforeAll(async () => {
    [signer, other, impostor] = await Promise.all([
      createSigner('admin-as-key', 'RS256'),
      createSigner('other-kid', 'RS256'),
      createSigner('admin-as-key', 'RS256'),
    ]);
    const env = {
      QUEUE_PREFIX: `{${uniquePrefix('sec-adm')}}`,
      SESSION_PREFIX: sessionPrefix,
      SESSION_TAG_SECRET: 'sec-admin-tag-secret-0123456789',
      ADMIN_API_KEY: FULL_KEY,
      ADMIN_API_KEYS: [
        `reader:sessions:read:${sha256(READER_KEY)}`,
        `revoker:sessions:revoke:${sha256(REVOKER_KEY)}`,
        `ops:queues:admin:${sha256(OPS_KEY)}`,
      ].join(','),
      ...issuerEnv('ADMIN_JWT', signer, ISSUER, AUDIENCE),
      ADMIN_RATE_LIMIT_PER_MINUTE: '100000',
      ADMIN_AUTH_FAILURES_PER_MINUTE: '100000',
      ENQUEUE_TIMEOUT_MS: '15000',
    };
    gw = await startGateway(env);
    urgent = gw.app.get<Queue>(getQueueToken(REVOCATION_PRIORITY_QUEUE), { strict: false });
    sessionRedis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    keys = new SessionKeys(
      new SessionStore({ redis: sessionRedis, prefix: sessionPrefix, tagSecret: env.SESSION_TAG_SECRET }),
    );
  });

  afterAll(async () => {
    await gw?.close();
    await keys?.delete(sessionRedis);
    sessionRedis?.disconnect();
  });

  const server = () => gw.app.getHttpServer();
  const jobCount = async () =>
    (await gw.queue.getJobCountByTypes(
      'waiting',
      'prioritized',
      'delayed',
      'active',
      'completed',
      'failed',
    )) +
    (await urgent.getJobCountByTypes('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'));

  const claims = (over: Claims = {}): Claims => {
    const now = nowSec();
    return {
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'ops-person',
      iat: now,
      exp: now + 300,
      scope: ALL_SCOPES,
      ...over,
    };
  };
  const token = (c: Claims, header: Record<string, unknown> = {}) => signAccessToken(signer, c, header);

  function call(method: Method, path: string, authorization?: string) {
    const r = request(server())[method](path);
    return authorization === undefined ? r : r.set('Authorization', authorization);
  }
  const revokeBody = (r: request.Test) =>
    r.set('Content-Type', 'application/json').send(JSON.stringify({ reason: 'security test' }));

  describe('access tokens (JWT) are refused with 401 for every forgery and claim error', () => {
    const cases: [string, () => Promise<string> | string][] = [
      ['alg none', () => unsignedJwt(claims(), { typ: 'at+jwt' })],
      ['alg none with the kid', () => unsignedJwt(claims(), { typ: 'at+jwt', kid: signer.kid })],
      [
        'alg none keeping a valid signature',
        async () => {
          const [, p, s] = (await token(claims())).split('.');
          return `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${p}.${s}`;
        },
      ],
      [
        'HS256 keyed with the public key (PEM)',
        () => hs256WithPublicKey(signer, claims(), { typ: 'at+jwt' }),
      ],
      [
        'HS256 keyed with the public JWK',
        () =>
          new SignJWT(claims())
            .setProtectedHeader({ alg: 'HS256', kid: signer.kid, typ: 'at+jwt' })
            .sign(new TextEncoder().encode(JSON.stringify(signer.publicJwk))),
      ],
      ['an unknown kid', () => signJwt(other, claims(), { header: { typ: 'at+jwt' } })],
      ['the right kid, another key', () => signJwt(impostor, claims(), { header: { typ: 'at+jwt' } })],
      [
        'an embedded jwk header carrying the attacker key',
        () => signRaw(impostor, { alg: 'RS256', typ: 'at+jwt', jwk: impostor.publicJwk }, claims()),
      ],
      [
        'a jku header pointing at the attacker JWKS',
        () =>
          signRaw(
            impostor,
            { alg: 'RS256', typ: 'at+jwt', kid: 'evil', jku: 'https://evil.example/jwks' },
            claims(),
          ),
      ],
      [
        'a tampered payload (scope escalation)',
        async () => {
          const [h, , s] = (await token(claims({ scope: 'sessions:read' }))).split('.');
          return `${h}.${Buffer.from(JSON.stringify(claims())).toString('base64url')}.${s}`;
        },
      ],
      [
        'an unknown crit header',
        () =>
          signRaw(
            signer,
            { alg: 'RS256', kid: signer.kid, typ: 'at+jwt', crit: ['x-unknown'], 'x-unknown': 1 },
            claims(),
          ),
      ],
      ['expired (beyond the 60 s skew)', () => token(claims({ iat: nowSec() - 600, exp: nowSec() - 120 }))],
      [
        'iat in the future beyond the skew',
        () => token(claims({ iat: nowSec() + 600, exp: nowSec() + 900 })),
      ],
      ['nbf in the future beyond the skew', () => token(claims({ nbf: nowSec() + 600 }))],
      ['iat older than 24 hours', () => token(claims({ iat: nowSec() - 25 * 3600, exp: nowSec() + 300 }))],
      ['no iat', () => token(claims({ iat: undefined }))],
      ['a wrong iss', () => token(claims({ iss: 'https://evil.example.test' }))],
      ['no iss', () => token(claims({ iss: undefined }))],
      ['a wrong aud', () => token(claims({ aud: 'another-api' }))],
      ['no aud', () => token(claims({ aud: undefined }))],
      ['no exp', () => token(claims({ exp: undefined }))],
      ['no sub', () => token(claims({ sub: undefined }))],
      ['typ logout+jwt', () => token(claims(), { typ: 'logout+jwt' })],
      ['typ secevent+jwt', () => token(claims(), { typ: 'secevent+jwt' })],
      ['a JWE-shaped token (5 parts)', async () => `${await token(claims())}.x.y`],
    ];

    it.each(cases)('refuses %s: 401 on the API and the dashboard, nothing queued', async (_name, make) => {
      const jwt = await make();
      const before = await jobCount();
      const read = await call('get', '/admin/audit?limit=1', `Bearer ${jwt}`);
      expect(read.status).toBe(401);
      expect(read.headers['www-authenticate']).toMatch(/^Bearer realm=/);
      expect(read.text).not.toContain(jwt.split('.')[1]);
      expect((await revokeBody(call('post', '/admin/users/u-jwt/revoke', `Bearer ${jwt}`))).status).toBe(401);
      const basic = `Basic ${Buffer.from(`x:${jwt}`).toString('base64')}`;
      expect((await call('get', '/admin/queues/api/queues', basic)).status).toBe(401);
      expect(await jobCount()).toBe(before);
    });

    it('accepts the same token correctly signed, and an iat within the skew (control)', async () => {
      await call('get', '/admin/audit?limit=1', `Bearer ${await token(claims())}`).expect(200);
      await call(
        'get',
        '/admin/audit?limit=1',
        `Bearer ${await token(claims({ iat: nowSec() + 30 }))}`,
      ).expect(200);
      await call('get', '/admin/audit?limit=1', `Bearer ${await token(claims(), { typ: undefined })}`).expect(
        200,
      );
    });
  });

  describe('every endpoint refuses every principal lacking its scope', () => {
    const ENDPOINTS: [Method, string, string][] = [
      ['get', '/admin/users/u-scope/sessions', 'sessions:read'],
      ['post', '/admin/users/u-scope/revoke', 'sessions:revoke'],
      ['delete', `/admin/users/u-scope/sessions/${HANDLE}`, 'sessions:revoke'],
      ['post', '/admin/groups/g-scope/revoke', 'sessions:revoke'],
      ['get', '/admin/commands/admin-unknown', 'sessions:read'],
      ['get', '/admin/audit', 'sessions:read'],
      ['get', '/admin/quarantine', 'queues:admin'],
      ['post', '/admin/quarantine/0-1/replay', 'queues:admin'],
      ['get', '/admin/failed', 'queues:admin'],
      ['post', '/admin/failed/no-such-job/retry', 'queues:admin'],
    ];

    /** Principals and the scopes they hold. */
    const principals = async (): Promise<[string, string, string[]][]> => [
      ['key reader', `Bearer ${READER_KEY}`, ['sessions:read']],
      ['key revoker', `Bearer ${REVOKER_KEY}`, ['sessions:revoke']],
      ['key ops', `Bearer ${OPS_KEY}`, ['queues:admin']],
      ['JWT without scope', `Bearer ${await token(claims({ scope: undefined }))}`, []],
      [
        'JWT with look-alike scopes',
        `Bearer ${await token(claims({ scope: 'sessions:read:all SESSIONS:REVOKE queues-admin sessions:*' }))}`,
        [],
      ],
      [
        'JWT with scp sessions:read only',
        `Bearer ${await token(claims({ scope: undefined, scp: ['sessions:read'] }))}`,
        ['sessions:read'],
      ],
      [
        'JWT with queues:admin only',
        `Bearer ${await token(claims({ scope: 'openid queues:admin' }))}`,
        ['queues:admin'],
      ],
    ];

    it('answers 403 naming the scope for every endpoint and principal without it, and changes nothing', async () => {
      const session = await keys.create({ userId: 'u-scope', ttlSeconds: 600 });
      const sessionPath = `/admin/users/u-scope/sessions/${session.handle}`;
      const before = await jobCount();
      const got: string[] = [];
      const want: string[] = [];
      for (const [who, authorization, scopes] of await principals()) {
        for (const [method, path, scope] of ENDPOINTS) {
          const target = method === 'delete' ? sessionPath : path;
          const req = call(method, target, authorization);
          const res = method === 'post' && path.endsWith('/revoke') ? await revokeBody(req) : await req;
          const allowed = scopes.includes(scope);
          // Allowed: whatever the endpoint answers, but never 401/403 (the control half of the table).
          got.push(
            `${who} ${method} ${path}: ${allowed ? res.status === 401 || res.status === 403 : res.status}`,
          );
          want.push(`${who} ${method} ${path}: ${allowed ? false : 403}`);
          if (!allowed)
            expect(res.body).toMatchObject({ statusCode: 403, message: `this needs the ${scope} scope` });
        }
      }
      expect(got).toEqual(want);
      // Only the principals holding sessions:revoke queued anything (2 per revoker: user and group), and
      // the session is gone only if a revoker deleted it.
      const revokers = (await principals()).filter(([, , s]) => s.includes('sessions:revoke')).length;
      expect((await jobCount()) - before).toBe(2 * revokers);
      expect(await keys.store.listUserSessions('u-scope')).toHaveLength(revokers > 0 ? 0 : 1);
    });

    it('checks credentials and scopes before input: malformed ids get 401/403, not 400', async () => {
      const malformed: [Method, string, string][] = [
        ['delete', '/admin/users/u/sessions/short', 'sessions:revoke'],
        ['get', '/admin/commands/bad!id', 'sessions:read'],
        ['post', '/admin/quarantine/not-an-id/replay', 'queues:admin'],
        ['post', '/admin/failed/a.b/retry', 'queues:admin'],
        ['get', `/admin/users/${'u'.repeat(300)}/sessions`, 'sessions:read'],
      ];
      for (const [method, path, scope] of malformed) {
        expect({ path, status: (await call(method, path)).status }).toEqual({ path, status: 401 });
        const lacking = scope === 'queues:admin' ? READER_KEY : OPS_KEY;
        expect({ path, status: (await call(method, path, `Bearer ${lacking}`)).status }).toEqual({
          path,
          status: 403,
        });
      }
    });

    it('serves a percent-encoded admin path (/%61dmin/...) as the admin API, behind the same guard', async () => {
      await call('get', '/%61dmin/audit?limit=1', `Bearer ${FULL_KEY}`).expect(200);
      await call('get', '/%61dmin/audit?limit=1').expect(401);
      await call('get', '/%61dmin/quarantine', `Bearer ${READER_KEY}`).expect(403);
    });
  });

  describe('the dashboard', () => {
    const PAGES = [
      '/admin/queues',
      '/admin/queues/',
      '/admin/queues/api/queues',
      '/admin/queues/api/redis/stats',
      '/admin/queues/queue/revocations',
      '/admin/queues/static/favicon-32x32.png',
      '/%61dmin/queues/api/queues',
    ];
    const ACTIONS: [Method, string][] = [
      ['put', '/admin/queues/api/queues/pause'],
      ['put', '/admin/queues/api/queues/revocations/pause'],
      ['put', '/admin/queues/api/queues/revocations/empty'],
      ['put', '/admin/queues/api/queues/revocations/obliterate'],
      ['put', '/admin/queues/api/queues/revocations/clean/completed'],
      ['put', '/admin/queues/api/queues/revocations/retry/failed'],
      ['put', '/admin/queues/api/queues/revocations/promote'],
      ['post', '/admin/queues/api/queues/revocations/add'],
    ];
    const basic = (user: string, password: string) =>
      `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

    it('refuses the page, its API, its assets and every write action without valid credentials or without queues:admin', async () => {
      // A job that must survive every refused action.
      await gw.queue.add('revoke', { keep: true } as never, {
        jobId: 'dashboard-survivor',
        delay: 3_600_000,
      });
      const refusals: [string, Record<string, string>, number][] = [
        ['no credentials', {}, 401],
        ['a wrong password', { Authorization: basic('admin', 'not-the-key-0123456789') }, 401],
        ['a wrong Bearer', { Authorization: 'Bearer not-the-key-0123456789' }, 401],
        ['a wrong cookie', { Cookie: 'sr_admin=not-the-key-0123456789' }, 401],
        ['an empty cookie', { Cookie: 'sr_admin=' }, 401],
        [
          'an expired access token with queues:admin',
          {
            Authorization: basic(
              'x',
              await token(claims({ iat: nowSec() - 900, exp: nowSec() - 300, scope: 'queues:admin' })),
            ),
          },
          401,
        ],
        ['the reader key', { Authorization: basic('reader', READER_KEY) }, 403],
        ['the revoker key', { Authorization: basic('revoker', REVOKER_KEY) }, 403],
        ['a key as a cookie (cookies are not credentials)', { Cookie: `sr_admin=${READER_KEY}` }, 401],
        [
          'an access token without queues:admin',
          { Authorization: basic('x', await token(claims({ scope: 'sessions:read sessions:revoke' }))) },
          403,
        ],
      ];
      const got: string[] = [];
      const want: string[] = [];
      for (const [what, headers, status] of refusals) {
        for (const [method, path] of [...PAGES.map((p): [Method, string] => ['get', p]), ...ACTIONS]) {
          let req = request(server())[method](path).set(headers);
          if (method === 'post')
            req = req
              .set('Content-Type', 'application/json')
              .send(JSON.stringify({ name: 'evil', data: {} }));
          const res = await req;
          got.push(`${what}: ${method} ${path} ${res.status}`);
          want.push(`${what}: ${method} ${path} ${status}`);
          if (status === 401) expect(res.headers['www-authenticate']).toMatch(/^Basic realm=/);
        }
      }
      expect(got).toEqual(want);
      expect(await gw.queue.isPaused()).toBe(false);
      expect(await urgent.isPaused()).toBe(false);
      expect(await gw.queue.getJob('dashboard-survivor')).toBeDefined();
      expect(
        (await gw.queue.getJobs(['waiting', 'prioritized', 'delayed'])).map((j) => j.name),
      ).not.toContain('evil');
      await (await gw.queue.getJob('dashboard-survivor'))!.remove();
    });

    it('refuses a dashboard write that says it is cross-site, even with the cached Basic login (CSRF)', async () => {
      const auth = basic('ops', OPS_KEY);
      for (const [name, value] of [
        ['Origin', 'https://evil.example'],
        ['Sec-Fetch-Site', 'cross-site'],
        ['Sec-Fetch-Site', 'same-site'],
      ] as const) {
        const res = await request(server())
          .put('/admin/queues/api/queues/revocations/pause')
          .set('Authorization', auth)
          .set(name, value);
        expect({ name, value, status: res.status }).toEqual({ name, value, status: 403 });
      }
      expect(await gw.queue.isPaused()).toBe(false);
      // Reads stay allowed cross-site (navigation), and a same-origin write goes through.
      await request(server())
        .get('/admin/queues/api/queues')
        .set('Authorization', auth)
        .set('Sec-Fetch-Site', 'cross-site')
        .expect(200);
      await request(server())
        .put('/admin/queues/api/queues/revocations/pause')
        .set('Authorization', auth)
        .set('Sec-Fetch-Site', 'same-origin')
        .expect(200);
      expect(await gw.queue.isPaused()).toBe(true);
      await gw.queue.resume();
    });

    it('serves it to queues:admin holders (control): key as Basic password, and a token', async () => {
      await call('get', '/admin/queues/api/queues', basic('ops', OPS_KEY)).expect(200);
      await call(
        'get',
        '/admin/queues/api/queues',
        basic('x', await token(claims({ scope: 'queues:admin' }))),
      ).expect(200);
    });
  });
});

describe('admin rate limit and encoded paths', () => {
  const KEY = 'sec-admin-rl-key-0123456789';
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startGateway({
      QUEUE_PREFIX: `{${uniquePrefix('sec-adm-rl')}}`,
      ADMIN_API_KEY: KEY,
      ADMIN_RATE_LIMIT_PER_MINUTE: '3',
      ADMIN_AUTH_FAILURES_PER_MINUTE: '3',
    });
  });
  afterAll(() => gw?.close());

  it('counts percent-encoded /admin paths (/%61dmin/...) against the /admin rate limit: 429, not unlimited guesses', async () => {
    const server = gw.app.getHttpServer();
    for (let i = 0; i < 3; i++)
      await request(server).get('/admin/audit').set('Authorization', `Bearer ${KEY}`).expect(200);
    for (let i = 0; i < 3; i++)
      await request(server).get('/admin/audit').set('Authorization', `Bearer guess-${i}`).expect(401);
    // Both budgets are spent: /admin is refused ...
    expect((await request(server).get('/admin/audit').set('Authorization', `Bearer ${KEY}`)).status).toBe(
      429,
    );
    expect((await request(server).get('/admin/audit').set('Authorization', 'Bearer guess-3')).status).toBe(
      429,
    );
    // ... and so must be the same routes under an encoded path, which Fastify routes to them.
    const guesses: string[] = [];
    for (const path of ['/%61dmin/audit', '/a%64min/audit', '/%61%64%6d%69%6e/audit', '/%61dmin/queues']) {
      for (let i = 0; i < 3; i++) {
        const res = await request(server)
          .get(path)
          .set('Authorization', `Basic ${Buffer.from(`admin:guess-${i}`).toString('base64')}`);
        guesses.push(`${path} ${res.status}`);
      }
    }
    expect(guesses).toEqual(
      ['/%61dmin/audit', '/a%64min/audit', '/%61%64%6d%69%6e/audit', '/%61dmin/queues'].flatMap((p) =>
        Array(3).fill(`${p} 429`),
      ),
    );
  });
});
