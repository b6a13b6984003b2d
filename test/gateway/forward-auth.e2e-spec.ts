import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { SessionStore } from '#session-store';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { JWT_RESOURCE, startTestIdp, type TestIdp } from '../support/oidc-provider.js';
import {
  deletePrefix,
  freePorts,
  startRedisServer,
  uniquePrefix,
  type RedisProcess,
} from '../support/redis.js';

const TAG_SECRET = 'forward-auth-tag-secret-0123456789';
const COOKIE = '__Host-session';

describe('/auth/verify (forward auth for NGINX, Traefik, Envoy)', () => {
  let idp: TestIdp;
  let gw: TestGateway;
  let passing: TestGateway;
  let login: TestGateway;
  let store: SessionStore;
  const prefix = uniquePrefix('forward-auth');
  let n = 0;
  const user = () => `edge-user-${++n}@example.com`;
  const env = () => ({
    SESSION_PREFIX: prefix,
    SESSION_TAG_SECRET: TAG_SECRET,
    CLOCK_SKEW_MS: '0',
    TOKEN_ISSUER: idp.issuer,
    TOKEN_AUDIENCE: JWT_RESOURCE,
    TOKEN_JWKS_URI: idp.jwksUri,
  });
  const verify = (target: TestGateway, method: 'get' | 'post' | 'head' = 'get') =>
    request(target.app.getHttpServer())[method]('/auth/verify');

  beforeAll(async () => {
    idp = await startTestIdp();
    gw = await startGateway(env());
    passing = await startGateway({ ...env(), EDGE_PASS_ACCESS_TOKEN: 'true' });
    // Discovery happens at the first login, which this suite never starts.
    login = await startGateway({
      ...env(),
      OIDC_ISSUER: idp.issuer,
      OIDC_CLIENT_ID: 'edge',
      OIDC_CLIENT_SECRET: 'edge-secret',
      OIDC_REDIRECT_URI: 'http://127.0.0.1/auth/callback',
    });
    store = new SessionStore({ redis: gw.redis, prefix, tagSecret: TAG_SECRET });
  });
  afterAll(async () => {
    await deletePrefix(gw.redis, prefix);
    await passing?.close();
    await login?.close();
    await gw?.close();
    await idp?.stop();
  });

  it('answers a live session cookie 200 with the identity headers, no-store, any method', async () => {
    const userId = user();
    const { sessionId } = await store.createSession({
      userId,
      ttlSeconds: 600,
      groups: ['admins', 'ops'],
      claims: { email: 'ada@example.com', preferred_username: 'ada' },
    });
    for (const method of ['get', 'post', 'head'] as const) {
      const res = await verify(gw, method).set('Cookie', `other=1; ${COOKIE}=${sessionId}`).expect(200);
      expect(res.headers).toMatchObject({
        'x-auth-request-user': userId,
        'x-auth-request-email': 'ada@example.com',
        'x-auth-request-preferred-username': 'ada',
        'x-auth-request-groups': 'admins,ops',
        'cache-control': 'no-store',
      });
    }
  });

  it('answers 401 without a session, with a forged or tampered cookie, and once the user is revoked', async () => {
    const userId = user();
    const { sessionId } = await store.createSession({ userId, ttlSeconds: 600 });
    await verify(gw).expect(401);
    for (const cookie of ['garbage', `${sessionId.slice(0, -1)}x`, `${sessionId}.extra`, '"', ''])
      await verify(gw).set('Cookie', `${COOKIE}=${cookie}`).expect(401);
    await verify(gw).set('Cookie', `${COOKIE}=${sessionId}`).expect(200);
    await store.revokeUser(userId);
    const res = await verify(gw).set('Cookie', `${COOKIE}=${sessionId}`).expect(401);
    expect(JSON.stringify(res.body)).not.toContain(sessionId);
  });

  it('takes a Bearer access token through the token verifier, and refuses it once its user is revoked', async () => {
    const sub = user();
    const token = await idp.jwt(sub, { groups: ['api'] });
    const res = await verify(gw).set('Authorization', `Bearer ${token}`).expect(200);
    expect(res.headers['x-auth-request-user']).toBe(sub);
    expect(res.headers['x-auth-request-access-token']).toBeUndefined();
    // Only when configured is the token passed on.
    const passed = await verify(passing).set('Authorization', `Bearer ${token}`).expect(200);
    expect(passed.headers['x-auth-request-access-token']).toBe(token);
    await store.revokeUser(sub);
    await verify(gw).set('Authorization', `Bearer ${token}`).expect(401);
    await verify(gw).set('Authorization', 'Bearer not-a-token').expect(401);
  });

  it('sends a browser to the login with ?redirect=true (Traefik) or an appended path (Envoy); API calls get 401', async () => {
    const html = 'text/html,application/xhtml+xml';
    const traefik = await verify(login, 'get')
      .query({ redirect: 'true' })
      .set('Accept', html)
      .set('X-Forwarded-Uri', '/orders?page=2')
      .expect(302);
    expect(traefik.headers['location']).toBe(`/auth/login?rd=${encodeURIComponent('/orders?page=2')}`);
    const envoy = await request(login.app.getHttpServer())
      .get('/auth/verify/reports/q1')
      .set('Accept', html)
      .expect(302);
    expect(envoy.headers['location']).toBe(`/auth/login?rd=${encodeURIComponent('/reports/q1')}`);
    // Never off-site, whatever the proxy passes on.
    const evil = await verify(login)
      .query({ redirect: 'true' })
      .set('Accept', html)
      .set('X-Forwarded-Uri', '//evil.example.com')
      .expect(302);
    expect(evil.headers['location']).toBe(`/auth/login?rd=${encodeURIComponent('/')}`);
    await verify(login).query({ redirect: 'true' }).set('Accept', 'application/json').expect(401);
    // Without a login configured there is nowhere to send it.
    await verify(gw).query({ redirect: 'true' }).set('Accept', html).expect(401);
  });

  it('never lets a user id or claim break a header: non-ASCII and line breaks are percent-encoded', async () => {
    const userId = `ünïcode\r\nX-Injected: yes-${++n}`;
    const { sessionId } = await store.createSession({ userId, ttlSeconds: 600, groups: ['a,b', 'c'] });
    const res = await verify(gw).set('Cookie', `${COOKIE}=${sessionId}`).expect(200);
    expect(res.headers['x-injected']).toBeUndefined();
    expect(decodeURIComponent(res.headers['x-auth-request-user'] as string)).toBe(userId);
    expect(res.headers['x-auth-request-groups']).toBe('a%2Cb,c');
  });
});

describe('/auth/verify when Redis is down', () => {
  let redis: RedisProcess;
  let dir: string;
  let gw: TestGateway;

  beforeAll(async () => {
    const [port] = await freePorts(1);
    dir = mkdtempSync(join(tmpdir(), 'forward-auth-redis-'));
    redis = await startRedisServer(port!, dir);
    gw = await startGateway({ REDIS_URL: `redis://127.0.0.1:${port}`, SESSION_TAG_SECRET: TAG_SECRET });
    gw.redis.on('error', () => undefined);
  });
  afterAll(async () => {
    await gw?.close().catch(() => undefined);
    redis?.process.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 503 with Retry-After, never 200', async () => {
    const store = new SessionStore({ redis: gw.redis, prefix: 'sr', tagSecret: TAG_SECRET });
    const { sessionId } = await store.createSession({ userId: 'down-user', ttlSeconds: 600 });
    await request(gw.app.getHttpServer())
      .get('/auth/verify')
      .set('Cookie', `${COOKIE}=${sessionId}`)
      .expect(200);
    await store.destroySession(sessionId);
    redis.process.kill('SIGKILL');
    await new Promise((r) => redis.process.once('exit', r));
    const res = await request(gw.app.getHttpServer())
      .get('/auth/verify')
      .set('Cookie', `${COOKIE}=${sessionId}`);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
  });
});
