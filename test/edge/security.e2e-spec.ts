import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Redis } from 'ioredis';
import { hash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { type AppConfig, loadConfig } from '#config';
import { SessionStore } from '#session-store';
import { unseal } from '../../apps/gateway/src/edge/session-cookie.js';
import { bootGateway, logLines, startGateway, type TestGateway } from '../support/gateway.js';
import { startTestIdp, type TestIdp } from '../support/oidc-provider.js';
import {
  deletePrefix,
  freePorts,
  REDIS_URL,
  type RedisProcess,
  startRedisServer,
  testRedis,
  uniquePrefix,
  waitFor,
  waitForRedisPast,
} from '../support/redis.js';

/**
 * The edge's security, end to end against a real OP (oidc-provider) and a real Redis: an ID token
 * whose nonce is not the login's, a cookie of a revoked session, tampered and forged cookies, and
 * what the gateway writes down about all of it (JSON logs at trace, Nest's logger through pino): no
 * session id, cookie key, authorization code, state, nonce, PKCE verifier or token, in a log line or
 * in a refusal's body.
 */

const TAG_SECRET = 'edge-security-tag-secret-0123456789';
const CLIENT = { id: 'edge-sec-app', secret: 'edge-sec-app-secret-0123456789abcdef' };
const HTML = 'text/html,application/xhtml+xml';

describe('the edge refuses what it must, and writes down nothing that logs someone in', () => {
  const { lines, stream } = logLines();
  const sessionPrefix = uniquePrefix('edge-sec');
  const queuePrefix = `{${uniquePrefix('edge-sec-q')}}`;
  let idp: TestIdp;
  let app: NestFastifyApplication;
  let config: AppConfig;
  let redis: Redis;
  let store: SessionStore;
  let n = 0;
  const user = (name: string) => `${name}-${++n}@example.com`;
  const agent = () => request(app.getHttpServer());

  /** Every value seen in the flows that must never be written down, with what it is. */
  const secrets = new Map<string, string>();
  const remember = (what: string, value: string | undefined) => {
    if (value) secrets.set(value, what);
  };
  /** A token, and each segment of a JWT (a payload segment alone still carries the claims). */
  const rememberToken = (what: string, token: string | undefined) => {
    const segments = token?.split('.') ?? [];
    if (segments.length === 3)
      segments.forEach((segment, i) => segment.length >= 16 && remember(`${what} (segment ${i})`, segment));
    remember(what, token);
  };
  const leaksIn = (text: string) =>
    [...secrets].filter(([value]) => text.includes(value)).map(([, what]) => what);
  /** The refusals' bodies, checked against every secret at the end too. */
  const refusals: string[] = [];
  const refused = (res: request.Response) => {
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    refusals.push(res.text);
    return res;
  };

  beforeAll(async () => {
    const [port] = await freePorts(1);
    const origin = `http://127.0.0.1:${port}`;
    idp = await startTestIdp({
      relyingParty: {
        clientId: CLIENT.id,
        clientSecret: CLIENT.secret,
        redirectUri: `${origin}/auth/callback`,
        postLogoutRedirectUri: `${origin}/signed-out`,
      },
    });
    config = loadConfig({
      REDIS_URL,
      LOG_LEVEL: 'trace',
      LOG_FORMAT: 'json',
      QUEUE_PREFIX: queuePrefix,
      SESSION_PREFIX: sessionPrefix,
      SESSION_TAG_SECRET: TAG_SECRET,
      OIDC_ISSUER: idp.issuer,
      OIDC_CLIENT_ID: CLIENT.id,
      OIDC_CLIENT_SECRET: CLIENT.secret,
      OIDC_REDIRECT_URI: `${origin}/auth/callback`,
      OIDC_POST_LOGOUT_REDIRECT_URI: `${origin}/signed-out`,
      EDGE_COOKIE_SECURE: 'false',
      EDGE_PASS_ACCESS_TOKEN: 'true',
    });
    app = await bootGateway(config, { logs: stream, nestLogs: true });
    redis = testRedis();
    store = new SessionStore({ redis, prefix: sessionPrefix, tagSecret: TAG_SECRET });
    remember('the client secret', CLIENT.secret);
    remember('the session tag secret', TAG_SECRET);
  });
  afterAll(async () => {
    await app?.close();
    if (redis) {
      await deletePrefix(redis, sessionPrefix);
      await deletePrefix(redis, queuePrefix);
      redis.disconnect();
    }
    await idp?.stop();
  });

  /** /auth/login: the authorization URL, its state and nonce, and the PKCE verifier kept for it. */
  async function startLogin(rd = '/') {
    const res = await agent()
      .get(`/auth/login?rd=${encodeURIComponent(rd)}`)
      .expect(302);
    const url = new URL(res.headers['location'] as string);
    expect(url.origin).toBe(idp.issuer);
    const state = url.searchParams.get('state')!;
    const nonce = url.searchParams.get('nonce')!;
    expect(state).toEqual(expect.any(String));
    expect(nonce).toEqual(expect.any(String));
    const kept = await redis.get(store.keys.loginState(hash('sha256', state, 'base64url')));
    const pending = JSON.parse(kept!) as { verifier: string; nonce: string };
    expect(pending.nonce).toBe(nonce);
    remember('a login state', state);
    remember('a login nonce', nonce);
    remember('a PKCE code verifier', pending.verifier);
    return { url, state, nonce };
  }

  /** Signs `sub` in at the OP from `authorization`, then calls the gateway's callback with what it returned. */
  async function complete(authorization: URL, sub: string) {
    const back = new URL(await idp.signIn(authorization.href, sub));
    expect(back.pathname).toBe('/auth/callback');
    const code = back.searchParams.get('code')!;
    expect(code).toEqual(expect.any(String));
    remember('an authorization code', code);
    const callback = `${back.pathname}${back.search}`;
    return { res: await agent().get(callback), code, callback };
  }

  /** The session cookie a callback set, its parts, and the tokens its session keeps sealed with the key. */
  async function sessionOf(res: request.Response) {
    const setCookie = ([] as string[]).concat(res.headers['set-cookie'] ?? [])[0]!;
    const pair = setCookie.split(';')[0]!;
    expect(pair.startsWith(`${config.edge.cookieName}=`)).toBe(true);
    const value = pair.slice(pair.indexOf('=') + 1);
    const sessionId = value.slice(0, value.lastIndexOf('.'));
    const key = value.slice(value.lastIndexOf('.') + 1);
    remember('a session cookie', value);
    remember('a session id', sessionId);
    remember('the secret part of a session id', sessionId.split('.')[1]);
    remember('a cookie key', key);
    const session = await store.getSession(sessionId);
    expect(session).not.toBeNull();
    const idToken = unseal(session!.claims['_idt'], key);
    const held = JSON.parse(unseal(session!.claims['_tok'], key) ?? '{}') as {
      accessToken?: string;
      refreshToken?: string;
    };
    expect(idToken).toMatch(/^eyJ/);
    expect(held.refreshToken).toEqual(expect.any(String));
    rememberToken('an ID token', idToken);
    rememberToken('an access token', held.accessToken);
    rememberToken('a refresh token', held.refreshToken);
    return { cookie: pair, value, sessionId, key, idToken: idToken!, ...held };
  }

  /** The reasons of the logins refused since log line `since` (written as the refusal is sent). */
  async function refusalReasons(since: number) {
    const reasons = () =>
      lines
        .slice(since)
        .map((l) => JSON.parse(l) as { msg?: string; login?: { reason?: string } })
        .filter((l) => l.msg === 'login refused')
        .map((l) => l.login?.reason);
    await waitFor(() => reasons().length > 0, 'a login refusal to be logged');
    return reasons();
  }

  /** Every session record under the test prefix (what a refused login must not add to). */
  const sessionKeys = async () => (await redis.keys(`${sessionPrefix}:*`)).filter((k) => k.includes('}:s:'));

  describe('an ID token whose nonce is not the login’s', () => {
    it('is refused with 400 access_denied: no session, no cookie, nothing echoed', async () => {
      const sub = user('nonce');
      // Two logins in progress; the OP is asked for A's login with B's nonce, which it echoes in the
      // ID token, while what the gateway kept for A's state expects A's.
      const a = await startLogin('/a');
      const b = await startLogin('/b');
      expect(a.nonce).not.toBe(b.nonce);
      const swapped = new URL(a.url);
      swapped.searchParams.set('nonce', b.nonce);
      const before = await sessionKeys();
      const warned = lines.length;

      const { res, code, callback } = await complete(swapped, sub);
      expect(new URL(callback, 'http://x').searchParams.get('state')).toBe(a.state);
      refused(res);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({
        error: 'access_denied',
        error_description: 'the OpenID Provider did not complete the login',
      });
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(res.headers['cache-control']).toBe('no-store');
      for (const value of [code, a.state, a.nonce, b.nonce]) expect(res.text).not.toContain(value);
      expect(res.text).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ/);
      expect(await sessionKeys()).toEqual(before);
      expect(await store.listUserSessions(sub)).toEqual([]);
      // The refusal is openid-client's claim comparison (the nonce), not the code exchange.
      expect(await refusalReasons(warned)).toEqual(['OAUTH_JWT_CLAIM_COMPARISON_FAILED']);
      // A's state was used up by the refused callback: a second try finds nothing.
      const again = refused(await agent().get(callback));
      expect(again.status).toBe(400);
      expect(again.body).toMatchObject({ error: 'invalid_request' });

      // The same flow, its nonce left alone, signs the user in: the nonce was the refusal's cause.
      const control = await complete(b.url, sub);
      expect(control.res.status).toBe(302);
      expect(control.res.headers['location']).toBe('/b');
      const { cookie } = await sessionOf(control.res);
      await agent().get('/auth/verify').set('Cookie', cookie).expect(200);
      expect(await store.listUserSessions(sub)).toHaveLength(1);
    });

    it('is refused when the ID token carries no nonce at all', async () => {
      const sub = user('no-nonce');
      const login = await startLogin();
      const stripped = new URL(login.url);
      stripped.searchParams.delete('nonce');
      const before = await sessionKeys();
      const warned = lines.length;
      const { res } = await complete(stripped, sub);
      refused(res);
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: 'access_denied' });
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(await sessionKeys()).toEqual(before);
      expect(await store.listUserSessions(sub)).toEqual([]);
      // The nonce the login expects is required: its absence is refused (openid-client's presence check).
      expect(await refusalReasons(warned)).toEqual(['OAUTH_INVALID_RESPONSE']);
    });
  });

  describe('a cookie of a revoked session', () => {
    it('gets 401 at /auth/verify, and a browser is sent to the login (Traefik and Envoy flavours)', async () => {
      const sub = user('revoked');
      const { url } = await startLogin('/reports/q1');
      const { res } = await complete(url, sub);
      expect(res.status).toBe(302);
      const { cookie, sessionId, key, accessToken } = await sessionOf(res);
      const live = await agent().get('/auth/verify').set('Cookie', cookie).expect(200);
      expect(live.headers['x-auth-request-user']).toBe(sub);
      expect(live.headers['x-auth-request-access-token']).toBe(accessToken);

      await store.revokeUser(sub);
      const denied = refused(await agent().get('/auth/verify').set('Cookie', cookie));
      expect(denied.status).toBe(401);
      expect(denied.headers['x-auth-request-user']).toBeUndefined();
      expect(denied.headers['x-auth-request-access-token']).toBeUndefined();
      for (const value of [sessionId, key]) expect(denied.text).not.toContain(value);

      const traefik = await agent()
        .get('/auth/verify')
        .query({ redirect: 'true' })
        .set('Accept', HTML)
        .set('X-Forwarded-Uri', '/reports/q1')
        .set('Cookie', cookie)
        .expect(302);
      expect(traefik.headers['location']).toBe(`/auth/login?rd=${encodeURIComponent('/reports/q1')}`);
      expect(traefik.headers['x-auth-request-user']).toBeUndefined();
      const envoy = await agent()
        .get('/auth/verify/reports/q1')
        .set('Accept', HTML)
        .set('Cookie', cookie)
        .expect(302);
      expect(envoy.headers['location']).toBe(`/auth/login?rd=${encodeURIComponent('/reports/q1')}`);
      // An API call (no HTML) still gets the 401, redirect asked or not.
      refused(
        await agent()
          .get('/auth/verify')
          .query({ redirect: 'true' })
          .set('Accept', 'application/json')
          .set('Cookie', cookie)
          .expect(401),
      );
      // Revoked stays revoked: the session record is gone, not just hidden.
      expect(await store.getSession(sessionId)).toBeNull();
      expect(await store.listUserSessions(sub)).toEqual([]);
    });
  });

  describe('the logs and the refusals of a whole flow', () => {
    it('carry no session id, cookie key, code, state, nonce, verifier or token', async () => {
      const sub = user('leaks');
      // An open redirect attempt: the login still returns on this site only.
      const login = await startLogin('//evil.example.com/steal');
      const { res, code } = await complete(login.url, sub);
      expect(res.status).toBe(302);
      expect(res.headers['location']).toBe('/');
      const s = await sessionOf(res);
      const verified = await agent().get('/auth/verify').set('Cookie', s.cookie).expect(200);
      expect(verified.headers['x-auth-request-access-token']).toBe(s.accessToken);

      // Tampered and forged cookies: another session id is no session; another key finds the
      // session but unseals none of its tokens.
      const flip = (c: string) => (c === 'A' ? 'B' : 'A');
      const [tag, secret] = s.sessionId.split('.') as [string, string];
      const name = config.edge.cookieName;
      const tamperedId = `${tag}.${flip(secret[0]!)}${secret.slice(1)}.${s.key}`;
      const tamperedKey = `${s.sessionId}.${flip(s.key[0]!)}${s.key.slice(1)}`;
      for (const forged of [tamperedId, `${s.sessionId}x.${s.key}`, 'forged.value.x', `${s.value}.extra`]) {
        const r = refused(await agent().get('/auth/verify').set('Cookie', `${name}=${forged}`));
        expect({ forged, status: r.status }).toEqual({ forged, status: 401 });
      }
      const wrongKey = await agent().get('/auth/verify').set('Cookie', `${name}=${tamperedKey}`).expect(200);
      expect(wrongKey.headers['x-auth-request-access-token']).toBeUndefined();

      // A refresh: the access token made due, /auth/verify renews it at the OP.
      const session = await store.getSession(s.sessionId);
      expect(await store.setSessionClaims(s.sessionId, { ...session!.claims, _due: 1 })).toBe(true);
      const refreshesBefore = idp.refreshes();
      const renewed = await agent().get('/auth/verify').set('Cookie', s.cookie).expect(200);
      expect(idp.refreshes()).toBe(refreshesBefore + 1);
      const renewedToken = renewed.headers['x-auth-request-access-token'] as string;
      expect(renewedToken).toEqual(expect.any(String));
      expect(renewedToken).not.toBe(s.accessToken);
      const after = await store.getSession(s.sessionId);
      const held = JSON.parse(unseal(after!.claims['_tok'], s.key)!) as {
        accessToken: string;
        refreshToken: string;
      };
      expect(held.accessToken).toBe(renewedToken);
      rememberToken('a refreshed access token', held.accessToken);
      rememberToken('a refreshed refresh token', held.refreshToken);
      rememberToken('a refreshed ID token', unseal(after!.claims['_idt'], s.key));

      // Bad callbacks: replayed, no state, an unknown state, the OP's error for a live state.
      refused(await agent().get(`/auth/callback?code=${code}&state=${login.state}`).expect(400));
      refused(await agent().get(`/auth/callback?code=${code}`).expect(400));
      refused(await agent().get(`/auth/callback?code=${code}&state=${s.key}`).expect(400));
      const errored = await startLogin();
      refused(
        await agent()
          .get(`/auth/callback?error=access_denied&error_description=no&state=${errored.state}`)
          .expect(400),
      );
      // A wrong nonce, as above.
      const first = await startLogin();
      const second = await startLogin();
      const swapped = new URL(first.url);
      swapped.searchParams.set('nonce', second.nonce);
      refused((await complete(swapped, sub)).res);

      // Logout: the OP is told with id_token_hint (in its Location only), the session is gone.
      const out = await agent().get('/auth/logout').set('Cookie', s.cookie).expect(302);
      expect(new URL(out.headers['location'] as string).searchParams.get('id_token_hint')).toMatch(/^eyJ/);
      refused(await agent().get('/auth/verify').set('Cookie', s.cookie).expect(401));
      await agent()
        .get('/auth/verify')
        .set('Cookie', s.cookie)
        .set('x-request-id', 'edge-sec-last')
        .expect(401);

      // The last request's line is written when it is answered: wait for it, then read them all.
      await waitFor(() => lines.some((l) => l.includes('"reqId":"edge-sec-last"')), 'the last request line');
      for (const line of lines) expect(() => JSON.parse(line) as unknown).not.toThrow();
      const all = lines.join('\n');
      // The flow was logged (paths, statuses, the refusals' reasons), just none of its secrets.
      expect(all).toContain('"path":"/auth/callback"');
      expect(all).toContain('"path":"/auth/verify"');
      expect(all).toContain('"statusCode":401');
      expect(all).toContain('login refused');
      expect(lines.some((l) => l.includes('"level":10') || l.includes('"level":20'))).toBe(true);
      for (const what of [
        'a session id',
        'a cookie key',
        'an authorization code',
        'a login state',
        'a login nonce',
        'a PKCE code verifier',
        'an ID token',
        'an access token',
        'a refresh token',
      ])
        expect([...secrets.values()]).toContain(what);
      expect(leaksIn(all)).toEqual([]);
      expect(leaksIn(refusals.join('\n'))).toEqual([]);
    });
  });
});

describe('an OP out of reach when the callback redeems its code', () => {
  const prefix = uniquePrefix('edge-sec-down');
  let idp: TestIdp | undefined;
  let gw: TestGateway;

  afterAll(async () => {
    if (gw) {
      await deletePrefix(gw.redis, prefix);
      await gw.close();
    }
    await idp?.stop();
  });

  it('is 503 temporarily_unavailable with Retry-After, not a refusal or a 500, and makes no session', async () => {
    const [port] = await freePorts(1);
    const redirectUri = `http://127.0.0.1:${port}/auth/callback`;
    idp = await startTestIdp({
      relyingParty: { clientId: CLIENT.id, clientSecret: CLIENT.secret, redirectUri },
    });
    gw = await startGateway({
      SESSION_PREFIX: prefix,
      SESSION_TAG_SECRET: TAG_SECRET,
      OIDC_ISSUER: idp.issuer,
      OIDC_CLIENT_ID: CLIENT.id,
      OIDC_CLIENT_SECRET: CLIENT.secret,
      OIDC_REDIRECT_URI: redirectUri,
      EDGE_COOKIE_SECURE: 'false',
    });
    const start = await request(gw.app.getHttpServer()).get('/auth/login').expect(302);
    const back = new URL(await idp.signIn(start.headers['location'] as string, 'margaret@example.com'));
    // The OP goes away between its login page and the token request.
    await idp.stop();
    idp = undefined;
    const res = await request(gw.app.getHttpServer()).get(`${back.pathname}${back.search}`);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.body).toMatchObject({ error: 'temporarily_unavailable' });
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.text).not.toContain(back.searchParams.get('code')!);
    expect((await gw.redis.keys(`${prefix}:*`)).filter((k) => k.includes('}:s:'))).toEqual([]);
  });
});

describe('a login the session store cannot take at once', () => {
  const prefix = uniquePrefix('edge-sec-store');
  let idp: TestIdp;
  let gw: TestGateway;
  let redisServer: RedisProcess;
  let downGw: TestGateway;
  let dir: string;
  let port: number;

  beforeAll(async () => {
    [port] = (await freePorts(2)) as [number, number];
    const redirectUri = `http://127.0.0.1:${port}/auth/callback`;
    idp = await startTestIdp({
      relyingParty: { clientId: CLIENT.id, clientSecret: CLIENT.secret, redirectUri },
    });
    const env = {
      SESSION_PREFIX: prefix,
      SESSION_TAG_SECRET: TAG_SECRET,
      OIDC_ISSUER: idp.issuer,
      OIDC_CLIENT_ID: CLIENT.id,
      OIDC_CLIENT_SECRET: CLIENT.secret,
      OIDC_REDIRECT_URI: redirectUri,
      EDGE_COOKIE_SECURE: 'false',
      CLOCK_SKEW_MS: '400',
    };
    gw = await startGateway(env);
    const [redisPort] = await freePorts(1);
    dir = mkdtempSync(join(tmpdir(), 'edge-sec-redis-'));
    redisServer = await startRedisServer(redisPort!, dir);
    downGw = await startGateway({ ...env, REDIS_URL: `redis://127.0.0.1:${redisPort}` });
    downGw.redis.on('error', () => undefined);
  });
  afterAll(async () => {
    if (gw) {
      await deletePrefix(gw.redis, prefix);
      await gw.close();
    }
    await downGw?.close().catch(() => undefined);
    redisServer?.process.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
    await idp?.stop();
  });

  /** /auth/login at `target`, the OP's sign-in of `sub`, and the callback's answer. */
  async function signIn(target: TestGateway, sub: string) {
    const start = await request(target.app.getHttpServer()).get('/auth/login').expect(302);
    const back = new URL(await idp.signIn(start.headers['location'] as string, sub));
    return request(target.app.getHttpServer()).get(`${back.pathname}${back.search}`);
  }

  it('refuses with 503 and Retry-After a login a revocation stamped a moment ahead covers (the clock-skew window), and takes the next one', async () => {
    const sub = 'just-revoked@example.com';
    const store = new SessionStore({ redis: gw.redis, prefix, tagSecret: TAG_SECRET, clockSkewMs: 0 });
    // As a PingOne event just now leaves it: the user's not-before a little in the future. The login's
    // tokens may have been issued before the event: refused, not waited out (invariant 1).
    const { notBefore } = await store.revokeUser(sub, { notBefore: Date.now() + 2_000 });
    const refused = await signIn(gw, sub);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toMatch(/^\d+$/);
    expect(refused.body).toMatchObject({ error: 'temporarily_unavailable' });
    expect(refused.headers['set-cookie']).toBeUndefined();
    // Started again once the stamp has passed, the login goes through.
    await waitForRedisPast(gw.redis, notBefore);
    const res = await signIn(gw, sub);
    expect(res.status).toBe(302);
    const cookie = ([] as string[]).concat(res.headers['set-cookie'] ?? [])[0]!.split(';')[0]!;
    const verified = await request(gw.app.getHttpServer())
      .get('/auth/verify')
      .set('Cookie', cookie)
      .expect(200);
    expect(verified.headers['x-auth-request-user']).toBe(sub);
  });

  it('answers 503 with Retry-After, not 500, to a login a stamp a minute ahead covers', async () => {
    const sub = 'revoked-ahead@example.com';
    const store = new SessionStore({ redis: gw.redis, prefix, tagSecret: TAG_SECRET, clockSkewMs: 0 });
    await store.revokeUser(sub, { notBefore: Date.now() + 60_000 });
    const res = await signIn(gw, sub);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.body).toMatchObject({ error: 'temporarily_unavailable' });
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  it('refuses with 400, not 500, an ID token too big for a session (the sealed copy over the claims bound)', async () => {
    const res = await signIn(gw, 'many-groups-ada@example.com');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'access_denied' });
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  it('answers 503 with Retry-After, not 500, when the session Redis is out of reach', async () => {
    // The login's state is kept, then Redis goes away before the callback.
    const start = await request(downGw.app.getHttpServer()).get('/auth/login').expect(302);
    const back = new URL(await idp.signIn(start.headers['location'] as string, 'stranded@example.com'));
    redisServer.process.kill('SIGKILL');
    await new Promise((resolve) => redisServer.process.once('exit', resolve));
    for (const path of [`${back.pathname}${back.search}`, '/auth/login']) {
      const res = await request(downGw.app.getHttpServer()).get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 503 });
      expect(res.headers['retry-after']).toMatch(/^\d+$/);
      expect(res.text).not.toContain(back.searchParams.get('code')!);
    }
  });
});
