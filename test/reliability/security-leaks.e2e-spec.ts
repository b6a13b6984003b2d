import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { createHash, randomUUID } from 'node:crypto';
import request from 'supertest';
import { loadConfig } from '#config';
import { SessionStore } from '#session-store';
import { createSigner, nowSec, signJwt, type TestSigner, unsignedJwt } from '../support/jwt.js';
import { bootGateway, logLines } from '../support/gateway.js';
import { deletePrefix, REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';
import { SessionKeys } from '../support/session-keys.js';
import { QueueKeys } from '#revocation';

/**
 * What the service writes down about the requests that failed (and those that succeeded): the JSON
 * logs at the most verbose level, with Nest's own logger on pino as main.ts wires it, /metrics and the
 * audit stream. None may carry a webhook secret, an admin key, a token (or a part of one), a Basic or
 * cookie credential, or a session id.
 */

const SECRET = 'leaks-pingone-secret-current-0001';
const PREVIOUS = 'leaks-pingone-secret-previous-0000';
const NEAR_MISS = `${SECRET}x`;
const ADMIN_KEY = 'leaks-admin-key-0123456789abcdef';
const READER_KEY = 'leaks-reader-key-0123456789abcdef';
const WRONG_KEY = 'leaks-wrong-admin-key-guess-0123';
const TAG_SECRET = 'leaks-session-tag-secret-0123456789';
const BCL_ISS = 'https://idp.example.com';
const BCL_AUD = 'client-app';
const SSF_ISS = 'https://ssf.example.com';
const SSF_AUD = 'https://receiver.example.com';
const ADMIN_ISS = 'https://as.example.com';
const ADMIN_AUD = 'session-revoker-admin';
const BCL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const IDP_SID = 'idp-session-secret-sid-7f3a9c21';
const SSF_SESSION = 'idp-session-secret-ssf-4b8e1d55';

describe('no secret, token or session id in logs, /metrics or the audit trail', () => {
  const { lines, stream: sink } = logLines();
  const queuePrefix = `{${uniquePrefix('sec-leak')}}`;
  const sessionPrefix = uniquePrefix('sec-leak-s');
  let app: NestFastifyApplication;
  let bcl: TestSigner;
  let ssf: TestSigner;
  let adminAs: TestSigner;
  let sessionRedis: Redis;
  let keys: SessionKeys;
  /** Every string that must never be written down, with what it is. */
  const secrets = new Map<string, string>();
  const remember = (what: string, value: string) => {
    secrets.set(value, what);
  };
  /** A token, and each of its three segments (a payload segment alone still carries the claims). */
  const rememberToken = (what: string, token: string) => {
    remember(what, token);
    token
      .split('.')
      .forEach((segment, i) => segment.length >= 16 && remember(`${what} (segment ${i})`, segment));
  };

  beforeAll(async () => {
    [bcl, ssf, adminAs] = await Promise.all([
      createSigner('bcl-key', 'RS256'),
      createSigner('ssf-key', 'ES256'),
      createSigner('as-key', 'ES256'),
    ]);
    const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
    const config = loadConfig({
      REDIS_URL,
      LOG_LEVEL: 'trace',
      QUEUE_PREFIX: queuePrefix,
      SESSION_PREFIX: sessionPrefix,
      SESSION_TAG_SECRET: TAG_SECRET,
      PINGONE_WEBHOOK_SECRET: `${SECRET},${PREVIOUS}`,
      ADMIN_API_KEY: ADMIN_KEY,
      ADMIN_API_KEYS: `reader:sessions:read:${sha256(READER_KEY)}`,
      ADMIN_JWT_ISSUER: ADMIN_ISS,
      ADMIN_JWT_AUDIENCE: ADMIN_AUD,
      ADMIN_JWT_JWKS: JSON.stringify(adminAs.jwks),
      OIDC_BCL_ISSUER: BCL_ISS,
      OIDC_BCL_AUDIENCE: BCL_AUD,
      OIDC_BCL_JWKS: JSON.stringify(bcl.jwks),
      SSF_ISSUER: SSF_ISS,
      SSF_AUDIENCE: SSF_AUD,
      SSF_JWKS: JSON.stringify(ssf.jwks),
      WEBHOOK_BODY_LIMIT: '64kb',
      ENQUEUE_TIMEOUT_MS: '15000',
    });
    app = await bootGateway(config, { logs: sink, nestLogs: true });
    sessionRedis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    keys = new SessionKeys(
      new SessionStore({ redis: sessionRedis, prefix: sessionPrefix, tagSecret: TAG_SECRET }),
    );

    for (const [what, value] of [
      ['the PingOne secret', SECRET],
      ['the previous PingOne secret (still accepted during a rotation)', PREVIOUS],
      ['a near miss of the PingOne secret', NEAR_MISS],
      ['the admin key', ADMIN_KEY],
      ['the reader key', READER_KEY],
      ['a wrong admin key', WRONG_KEY],
      ['the session tag secret', TAG_SECRET],
      ['an IdP session id (back-channel sid)', IDP_SID],
      ['an IdP session id (SSF session)', SSF_SESSION],
      ['the Basic credential of the admin key', Buffer.from(`admin:${ADMIN_KEY}`).toString('base64')],
      ['the Basic credential of a wrong key', Buffer.from(`admin:${WRONG_KEY}`).toString('base64')],
      ['the Basic credential of the PingOne secret', Buffer.from(`pingone:${SECRET}`).toString('base64')],
    ])
      remember(what!, value!);
  });

  afterAll(async () => {
    await app?.close();
    const redis = testRedis();
    await deletePrefix(redis, queuePrefix);
    redis.disconnect();
    await keys?.delete(sessionRedis);
    sessionRedis?.disconnect();
  });

  const server = () => app.getHttpServer();
  const basic = (user: string, password: string) =>
    `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

  async function exercise() {
    const s = server();
    // PingOne: wrong and near-miss credentials, both secrets of a rotation, secrets in the query and body.
    const pingone = (auth: string, query = '') =>
      request(s)
        .post(`/webhooks/pingone${query}`)
        .set('Authorization', auth)
        .set('Content-Type', 'application/json')
        .send(`{"not":"an event","token":"${ADMIN_KEY}","secret":"${SECRET}"}`);
    expect((await pingone(`Bearer ${NEAR_MISS}`)).status).toBe(401);
    expect((await pingone(`Bearer ${WRONG_KEY}`, `?token=${SECRET}`)).status).toBe(401);
    expect((await pingone(basic('pingone', SECRET), `?secret=${PREVIOUS}`)).status).toBe(200);
    expect((await pingone(`Bearer ${PREVIOUS}`)).status).toBe(200);

    // Back-channel logout: accepted, validly signed but refused, unsigned, in the query, over the limit.
    const now = nowSec();
    const bclClaims = (over: Record<string, unknown> = {}) => ({
      iss: BCL_ISS,
      aud: BCL_AUD,
      iat: now,
      exp: now + 120,
      jti: randomUUID(),
      sub: 'leak-user',
      sid: IDP_SID,
      events: { [BCL_EVENT]: {} },
      ...over,
    });
    const good = await signJwt(bcl, bclClaims(), { header: { typ: 'logout+jwt' } });
    const wrongAud = await signJwt(bcl, bclClaims({ aud: 'other' }), { header: { typ: 'logout+jwt' } });
    const none = unsignedJwt(bclClaims(), { typ: 'logout+jwt' });
    rememberToken('an accepted logout token', good);
    rememberToken('a refused (wrong aud) logout token', wrongAud);
    rememberToken('an unsigned logout token', none);
    const logout = (body: string, query = '') =>
      request(s).post(`/webhooks/oidc/backchannel-logout${query}`).type('form').send(body);
    expect((await logout(`logout_token=${good}`)).status).toBe(200);
    expect((await logout(`logout_token=${wrongAud}`)).status).toBe(400);
    expect((await logout(`logout_token=${none}`)).status).toBe(400);
    expect((await logout('', `?logout_token=${wrongAud}`)).status).toBe(400);
    expect((await logout(`logout_token=${good}&pad=${'x'.repeat(70_000)}`)).status).toBe(413);

    // SSF: accepted (naming an IdP session), refused (another key), sent with the wrong type.
    const setClaims = {
      iss: SSF_ISS,
      aud: SSF_AUD,
      iat: now,
      jti: randomUUID(),
      sub_id: {
        format: 'complex',
        user: { format: 'opaque', id: 'leak-user' },
        session: { format: 'opaque', id: SSF_SESSION },
      },
      events: { 'https://schemas.openid.net/secevent/caep/event-type/session-revoked': {} },
    };
    const goodSet = await signJwt(ssf, setClaims, { header: { typ: 'secevent+jwt' } });
    const forgedSet = await signJwt(
      ssf,
      { ...setClaims, jti: randomUUID() },
      {
        header: { typ: 'secevent+jwt' },
        key: adminAs.privateKey,
      },
    );
    rememberToken('an accepted SET', goodSet);
    rememberToken('a forged SET', forgedSet);
    const push = (body: string, type = 'application/secevent+jwt') =>
      request(s).post('/webhooks/ssf').set('Content-Type', type).send(body);
    expect((await push(goodSet)).status).toBe(202);
    expect((await push(forgedSet)).status).toBe(400);
    expect((await push(goodSet, 'application/json')).status).toBe(400);

    // Admin: a session (its id must stay secret), then every kind of credential, good and bad.
    const session = await keys.create({ userId: 'leak-user', ttlSeconds: 600, idpSessionId: IDP_SID });
    remember('a session id', session.sessionId);
    remember('the secret part of a session id', session.sessionId.split('.').at(-1)!);
    const adminToken = await signJwt(
      adminAs,
      {
        iss: ADMIN_ISS,
        aud: ADMIN_AUD,
        sub: 'ops@example.com',
        iat: now,
        exp: now + 300,
        scope: 'sessions:read',
      },
      { header: { typ: 'at+jwt' } },
    );
    const refusedToken = await signJwt(
      adminAs,
      {
        iss: ADMIN_ISS,
        aud: 'another-api',
        sub: 'ops@example.com',
        iat: now,
        exp: now + 300,
        scope: 'sessions:read',
      },
      { header: { typ: 'at+jwt' } },
    );
    rememberToken('an admin access token', adminToken);
    rememberToken('a refused admin access token', refusedToken);
    const admin = (method: 'get' | 'delete', path: string, headers: Record<string, string>) =>
      request(s)[method](path).set(headers);
    const list = await admin('get', '/admin/users/leak-user/sessions', {
      Authorization: `Bearer ${ADMIN_KEY}`,
    });
    expect(list.status).toBe(200);
    expect(list.text).not.toContain(session.sessionId.split('.').at(-1)!);
    for (const [headers, status] of [
      [{ Authorization: `Bearer ${WRONG_KEY}` }, 401],
      [{ Authorization: basic('admin', WRONG_KEY) }, 401],
      [{ Cookie: `sr_admin=${WRONG_KEY}` }, 401],
      [{ Authorization: `Bearer ${refusedToken}` }, 401],
      [{ Authorization: `Bearer ${adminToken}` }, 200],
      [{ Authorization: `Bearer ${READER_KEY}` }, 200],
      [{ Cookie: `sr_admin=${ADMIN_KEY}; sid=${session.sessionId}` }, 401],
    ] as [Record<string, string>, number][])
      expect((await admin('get', '/admin/users/leak-user/sessions', headers)).status).toBe(status);
    expect((await admin('get', '/admin/quarantine', { Authorization: `Bearer ${READER_KEY}` })).status).toBe(
      403,
    );
    expect(
      (
        await admin('delete', `/admin/users/leak-user/sessions/${session.handle}`, {
          Authorization: `Bearer ${ADMIN_KEY}`,
        })
      ).status,
    ).toBe(204);
    // The dashboard: refused and served.
    expect((await admin('get', '/admin/queues', { Authorization: basic('admin', WRONG_KEY) })).status).toBe(
      401,
    );
    expect((await admin('get', '/admin/queues', { Authorization: basic('reader', READER_KEY) })).status).toBe(
      403,
    );
    expect(
      (await admin('get', '/admin/queues/api/queues', { Authorization: basic('admin', ADMIN_KEY) })).status,
    ).toBe(200);
  }

  const leaksIn = (text: string) =>
    [...secrets].filter(([value]) => text.includes(value)).map(([, what]) => what);

  it('logs JSON lines with none of them, at the trace level, with Nest logging through pino', async () => {
    await exercise();
    expect(lines.length).toBeGreaterThan(20);
    for (const line of lines) expect(() => JSON.parse(line) as unknown).not.toThrow();
    // The requests were logged (method and path), just not their credentials.
    expect(lines.some((l) => l.includes('/webhooks/oidc/backchannel-logout'))).toBe(true);
    expect(lines.some((l) => l.includes('"statusCode":401'))).toBe(true);
    expect(leaksIn(lines.join('\n'))).toEqual([]);
  });

  it('/metrics carries none of them after the failures above', async () => {
    const text = (await request(server()).get('/metrics').expect(200)).text;
    expect(text).toMatch(/session_revoker_http_request_duration_seconds_count\{[^}]*status_code="401"/);
    expect(leaksIn(text)).toEqual([]);
    expect(text).not.toContain('leak-user');
  });

  it('the audit trail names actors and ids, never a credential or session id', async () => {
    const redis = testRedis();
    try {
      const entries = await redis.xrange(new QueueKeys(queuePrefix).audit, '-', '+');
      const text = JSON.stringify(entries);
      // The five calls that authenticated (the 401s are counted in /metrics, not audited).
      expect(entries.length).toBeGreaterThanOrEqual(5);
      expect(text).toContain('jwt:ops@example.com');
      expect(leaksIn(text)).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });
});
