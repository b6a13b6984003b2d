import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { createSigner, nowSec, type TestSigner } from '../support/jwt.js';
import { BCL_AUD, BCL_ISS, issuerEnv, logoutClaims, signLogoutToken } from '../support/jwt-issuers.js';
import { JWT_RESOURCE, startTestIdp, type TestIdp } from '../support/oidc-provider.js';
import {
  deletePrefix,
  freePorts,
  startRedisServer,
  uniquePrefix,
  waitFor,
  type RedisProcess,
} from '../support/redis.js';
import { startWorker, type TestWorker } from '../support/worker.js';

const PATH = '/oauth2/introspect';
const TAG_SECRET = 'introspect-tag-secret-0123456789';
const CLIENT = { id: 'kong', secret: 'kong-introspection-secret-0123' };
const INTROSPECT_KEY = 'introspect-admin-key-0123456789';
const READER_KEY = 'reader-admin-key-0123456789abc';
const PINGONE_SECRET = 'pingone-webhook-secret-0123456789';
const ENV_ID = '3f1c2a7e-5b8d-4e0a-9c61-2d7f4b8e1a90';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

describe('POST /oauth2/introspect (RFC 7662)', () => {
  let idp: TestIdp;
  let bcl: TestSigner;
  let gw: TestGateway;
  let worker: TestWorker;
  let env: Record<string, string>;
  const sessionPrefix = uniquePrefix('introspect');
  let n = 0;
  const user = () => `introspect-user-${++n}`;

  const introspect = (token: string | undefined, authorization = basic(CLIENT.id, CLIENT.secret)) => {
    const req = request(gw.app.getHttpServer()).post(PATH).set('Authorization', authorization).type('form');
    return token === undefined
      ? req.send('')
      : req.send(`token=${encodeURIComponent(token)}&token_type_hint=access_token`);
  };
  const isActive = async (token: string) => (await introspect(token).expect(200)).body.active as boolean;

  beforeAll(async () => {
    idp = await startTestIdp();
    bcl = await createSigner('bcl-key');
    env = {
      QUEUE_PREFIX: `{${uniquePrefix('introspect-q')}}`,
      SESSION_PREFIX: sessionPrefix,
      SESSION_TAG_SECRET: TAG_SECRET,
      // Stamps at the event's own instant, so a token issued a second later is after it.
      CLOCK_SKEW_MS: '0',
      ENQUEUE_TIMEOUT_MS: '15000',
      PINGONE_WEBHOOK_SECRET: PINGONE_SECRET,
      ...issuerEnv('OIDC_BCL', bcl, BCL_ISS, BCL_AUD),
      TOKEN_ISSUER: idp.issuer,
      TOKEN_AUDIENCE: JWT_RESOURCE,
      TOKEN_JWKS_URI: idp.jwksUri,
      TOKEN_INTROSPECTION_URI: idp.introspectionUri,
      TOKEN_INTROSPECTION_CLIENT_ID: idp.client.id,
      TOKEN_INTROSPECTION_CLIENT_SECRET: idp.client.secret,
      INTROSPECTION_CLIENTS: `${CLIENT.id}:${sha(CLIENT.secret)}`,
      ADMIN_API_KEYS: `gateway:tokens:introspect:${sha(INTROSPECT_KEY)},ops:sessions:read+sessions:revoke:${sha(READER_KEY)}`,
    };
    gw = await startGateway(env);
    worker = await startWorker(env);
  });
  afterAll(async () => {
    await worker?.close();
    if (gw) {
      await deletePrefix(gw.redis, sessionPrefix);
      await gw.close();
    }
    await idp?.stop();
  });

  it('answers an active JWT with its claims, no-store, and the same from the cache', async () => {
    const sub = user();
    const token = await idp.jwt(sub, { sid: 'sid-answer' });
    for (let i = 0; i < 2; i++) {
      const res = await introspect(token).expect(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body).toEqual({
        active: true,
        sub,
        scope: 'api:read',
        client_id: idp.client.id,
        exp: expect.any(Number),
        iat: expect.any(Number),
        iss: idp.issuer,
        aud: JWT_RESOURCE,
        sid: 'sid-answer',
        token_type: 'Bearer',
      });
    }
  });

  it('answers an opaque token from the IdP’s introspection, asking it once', async () => {
    const sub = user();
    const token = await idp.opaque(sub);
    const before = idp.introspections();
    for (let i = 0; i < 3; i++)
      expect((await introspect(token).expect(200)).body).toMatchObject({
        active: true,
        sub,
        token_type: 'Bearer',
      });
    expect(idp.introspections() - before).toBe(1);
  });

  it('answers {"active": false} and nothing else for invalid, expired or garbage tokens', async () => {
    for (const token of [
      'garbage',
      'a.b.c',
      'x'.repeat(9000),
      await idp.opaque(user(), { ttlSeconds: 1 }).then(async (t) => {
        await idp.revoke(t);
        return t;
      }),
    ]) {
      const res = await introspect(token).expect(200);
      expect(res.body).toEqual({ active: false });
      expect(res.headers['cache-control']).toBe('no-store');
    }
  });

  it('sends an opaque token to the one issuer configured to take them, and to no other', async () => {
    // Another IdP that introspects (PingFederate, say), recording every token it is sent.
    const received: string[] = [];
    const other = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push(new URLSearchParams(body).get('token') ?? '');
        res.setHeader('content-type', 'application/json').end('{"active":false}');
      });
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const dir = mkdtempSync(join(tmpdir(), 'introspect-issuers-'));
    const file = join(dir, 'config.json');
    const issuer = {
      issuer: 'https://pingfederate.example.com',
      introspection: {
        uri: `http://127.0.0.1:${(other.address() as AddressInfo).port}/as/introspect.oauth2`,
        clientId: 'rs',
        clientSecret: 's',
      },
    };
    const two = { ...env, CONFIG_FILE: file, QUEUE_PREFIX: `{${uniquePrefix('introspect-q2')}}` };
    try {
      // Two issuers introspect and neither is said to take opaque tokens: start-up stops, naming it.
      writeFileSync(file, JSON.stringify({ tokenIssuers: [issuer] }));
      await expect(startGateway(two)).rejects.toThrow(/^CONFIG_FILE tokenIssuers\[\]\.opaqueTokens: /);
      writeFileSync(file, JSON.stringify({ tokenIssuers: [{ ...issuer, opaqueTokens: true }] }));
      const chosen = await startGateway(two);
      try {
        const token = await idp.opaque(user());
        const before = idp.introspections();
        const res = await request(chosen.app.getHttpServer())
          .post(PATH)
          .set('Authorization', basic(CLIENT.id, CLIENT.secret))
          .type('form')
          .send(`token=${encodeURIComponent(token)}`)
          .expect(200);
        // Only the chosen issuer saw it (and does not know it): the IdP that issued it was not asked.
        expect(res.body).toEqual({ active: false });
        expect(received).toEqual([token]);
        expect(idp.introspections()).toBe(before);
      } finally {
        await chosen.close();
      }
    } finally {
      await new Promise<void>((r) => other.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('authenticates its callers: 401 with WWW-Authenticate otherwise', async () => {
    const token = await idp.jwt(user());
    for (const authorization of [
      basic(CLIENT.id, 'wrong'),
      basic('someone', CLIENT.secret),
      `Bearer ${READER_KEY}`,
      'Bearer nope',
    ]) {
      const res = await introspect(token, authorization).expect(401);
      expect(res.headers['www-authenticate']).toMatch(/^Basic realm=/);
      expect(res.body).toMatchObject({ error: 'invalid_client' });
      expect(JSON.stringify(res.body)).not.toContain(token);
    }
    const anonymous = await request(gw.app.getHttpServer())
      .post(PATH)
      .type('form')
      .send(`token=${token}`)
      .expect(401);
    expect(anonymous.headers['www-authenticate']).toMatch(/^Basic/);
    // An admin key with tokens:introspect may call it too.
    expect((await introspect(token, `Bearer ${INTROSPECT_KEY}`).expect(200)).body.active).toBe(true);
  });

  it('counts failed authentications against the client’s failure budget, as /admin does', async () => {
    const limited = await startGateway({ ...env, ADMIN_AUTH_FAILURES_PER_MINUTE: '3' });
    try {
      const token = await idp.jwt(user());
      const post = (authorization: string) =>
        request(limited.app.getHttpServer())
          .post(PATH)
          .set('Authorization', authorization)
          .type('form')
          .send(`token=${encodeURIComponent(token)}`);
      for (let i = 0; i < 3; i++) await post(basic(CLIENT.id, `guess-${i}`)).expect(401);
      const refused = await post(basic(CLIENT.id, 'guess-3')).expect(429);
      expect(refused.headers['retry-after']).toMatch(/^\d+$/);
      // A caller with the right secret is not held back by the guesses.
      expect((await post(basic(CLIENT.id, CLIENT.secret)).expect(200)).body.active).toBe(true);
    } finally {
      await limited.close();
    }
  });

  it('answers 400 invalid_request without exactly one token, or without a form', async () => {
    expect((await introspect(undefined).expect(400)).body).toMatchObject({ error: 'invalid_request' });
    await request(gw.app.getHttpServer())
      .post(PATH)
      .set('Authorization', basic(CLIENT.id, CLIENT.secret))
      .type('form')
      .send('token=a&token=b')
      .expect(400);
    const json = await request(gw.app.getHttpServer())
      .post(PATH)
      .set('Authorization', basic(CLIENT.id, CLIENT.secret))
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ token: 'x' }))
      .expect(400);
    expect(json.body).toMatchObject({ error: 'invalid_request' });
  });

  /** A cached and an uncached token of each kind, and how to tell that all four are inactive. */
  async function tokensOf(sub: string, sid?: string) {
    const extra = sid ? { sid } : {};
    const cached = [await idp.jwt(sub, extra), await idp.opaque(sub, extra)];
    for (const t of cached) expect(await isActive(t)).toBe(true);
    const uncached = [await idp.jwt(sub, extra), await idp.opaque(sub, extra)];
    return { all: [...cached, ...uncached] };
  }

  /**
   * After a revocation: every token of before is inactive, and one issued later lives. JWT `iat` has
   * whole seconds, so "later" is the first second that starts after the revocation was seen.
   */
  async function expectRevokedThenLater(all: string[], sub: string, sid?: string) {
    await waitFor(async () => !(await isActive(all[0]!)), 'the cached JWT to be revoked', 20_000);
    const seen = Date.now();
    for (const t of all) expect(await isActive(t)).toBe(false);
    await waitFor(() => nowSec() * 1000 > seen + 1, 'the next second after the revocation');
    expect(await isActive(await idp.jwt(sub, sid ? { sid } : {}))).toBe(true);
    expect(await isActive(await idp.opaque(sub, sid ? { sid } : {}))).toBe(true);
  }

  it('a PingOne USER.LOCKED makes the user’s cached and uncached tokens inactive', async () => {
    const sub = user();
    const { all } = await tokensOf(sub);
    const recordedAt = Date.now();
    await request(gw.app.getHttpServer())
      .post('/webhooks/pingone')
      .set('Authorization', `Bearer ${PINGONE_SECRET}`)
      .set('Content-Type', 'application/json')
      .send(
        JSON.stringify({
          id: `evt-${sub}`,
          recordedAt: new Date(recordedAt).toISOString(),
          action: { type: 'USER.LOCKED' },
          resources: [{ type: 'USER', id: sub, environment: { id: ENV_ID } }],
          result: { status: 'SUCCESS' },
        }),
      )
      .expect((res) => expect(res.status).toBeLessThan(300));
    await expectRevokedThenLater(all, sub);
  });

  it('a back-channel logout with sid makes that IdP session’s tokens inactive, and not the user’s others', async () => {
    const sub = user();
    const { all } = await tokensOf(sub, 'sid-logout');
    const otherSession = await idp.jwt(sub, { sid: 'sid-kept' });
    expect(await isActive(otherSession)).toBe(true);
    const logout = await signLogoutToken(bcl, logoutClaims({ sub: undefined, sid: 'sid-logout' }));
    await request(gw.app.getHttpServer())
      .post('/webhooks/oidc/backchannel-logout')
      .type('form')
      .send(`logout_token=${encodeURIComponent(logout)}`)
      .expect(200);
    await expectRevokedThenLater(all, sub, 'sid-logout');
    expect(await isActive(otherSession)).toBe(true);
  });

  it('an admin revoke makes the user’s cached and uncached tokens inactive', async () => {
    const sub = user();
    const { all } = await tokensOf(sub);
    await request(gw.app.getHttpServer())
      .post(`/admin/users/${sub}/revoke?wait=true`)
      .set('Authorization', `Bearer ${READER_KEY}`)
      .send({ reason: 'offboarded' })
      .expect(200);
    for (const t of all) expect(await isActive(t)).toBe(false);
    await expectRevokedThenLater(all, sub);
  });

  it('counts verifications by source and outcome, and IdP calls, in /metrics', async () => {
    const res = await request(gw.app.getHttpServer()).get('/metrics').expect(200);
    expect(res.text).toMatch(
      /session_revoker_token_verifications_total\{source="cache",outcome="active"\} [1-9]/,
    );
    expect(res.text).toMatch(
      /session_revoker_token_verifications_total\{source="cache",outcome="revoked"\} [1-9]/,
    );
    expect(res.text).toMatch(/session_revoker_token_idp_calls_total\{outcome="active"\} [1-9]/);
    expect(res.text).toMatch(/session_revoker_token_cache_lookups_total\{result="hit"\} [1-9]/);
  });
});

describe('POST /oauth2/introspect when Redis is down', () => {
  let idp: TestIdp;
  let redis: RedisProcess;
  let dir: string;
  const gateways: TestGateway[] = [];

  beforeAll(async () => {
    idp = await startTestIdp();
    const [port] = await freePorts(1);
    dir = mkdtempSync(join(tmpdir(), 'introspect-redis-'));
    redis = await startRedisServer(port!, dir);
  });
  afterAll(async () => {
    for (const gw of gateways) await gw.close().catch(() => undefined);
    redis?.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await idp?.stop();
  });

  const boot = async (extra: Record<string, string>) => {
    const gw = await startGateway({
      REDIS_URL: `redis://127.0.0.1:${redis.port}`,
      SESSION_TAG_SECRET: TAG_SECRET,
      TOKEN_ISSUER: idp.issuer,
      TOKEN_AUDIENCE: JWT_RESOURCE,
      TOKEN_JWKS_URI: idp.jwksUri,
      INTROSPECTION_CLIENTS: `${CLIENT.id}:${sha(CLIENT.secret)}`,
      ...extra,
    });
    gateways.push(gw);
    return gw;
  };

  it('answers 503 with Retry-After (closed), or verifies JWTs unchecked when configured', async () => {
    const closed = await boot({});
    const open = await boot({ TOKEN_WHEN_REDIS_DOWN: 'verify-jwt-unchecked' });
    for (const gw of [closed, open]) gw.redis.on('error', () => undefined);
    const token = await idp.jwt('down-user');
    const post = (gw: TestGateway) =>
      request(gw.app.getHttpServer())
        .post(PATH)
        .set('Authorization', basic(CLIENT.id, CLIENT.secret))
        .type('form')
        .send(`token=${encodeURIComponent(token)}`);
    expect((await post(closed)).body.active).toBe(true);
    redis.process.kill('SIGKILL');
    await new Promise((r) => redis.process.once('exit', r));
    const fresh = await idp.jwt('down-user-2');
    const sendFresh = (gw: TestGateway) =>
      request(gw.app.getHttpServer())
        .post(PATH)
        .set('Authorization', basic(CLIENT.id, CLIENT.secret))
        .type('form')
        .send(`token=${encodeURIComponent(fresh)}`);
    const refused = await sendFresh(closed);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toMatch(/^\d+$/);
    expect(refused.body).toMatchObject({ error: 'temporarily_unavailable' });
    expect(JSON.stringify(refused.body)).not.toContain(fresh);
    const unchecked = await sendFresh(open);
    expect(unchecked.status).toBe(200);
    expect(unchecked.body).toMatchObject({ active: true, sub: 'down-user-2' });
  });
});
