import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { SessionStore } from '#session-store';
import { safeReturnPath } from '../../apps/gateway/src/edge/session-cookie.js';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { accountClaims, startTestIdp, type TestIdp } from '../support/oidc-provider.js';
import { deletePrefix, freePorts, uniquePrefix, waitFor } from '../support/redis.js';

const TAG_SECRET = 'oidc-login-tag-secret-0123456789';
const CLIENT = { id: 'edge-app', secret: 'edge-app-secret-0123456789abcdef' };

describe('the edge login (OpenID Connect relying party, openid-client)', () => {
  let idp: TestIdp;
  let gw: TestGateway;
  let store: SessionStore;
  let origin: string;
  const prefix = uniquePrefix('oidc-login');
  const agent = () => request(gw.app.getHttpServer());

  beforeAll(async () => {
    const [port] = await freePorts(1);
    origin = `http://127.0.0.1:${port}`;
    idp = await startTestIdp({
      relyingParty: {
        clientId: CLIENT.id,
        clientSecret: CLIENT.secret,
        redirectUri: `${origin}/auth/callback`,
        postLogoutRedirectUri: `${origin}/signed-out`,
        // Registered as the OP would be told to (README): its ID tokens then carry sid.
        backchannelLogoutUri: `${origin}/webhooks/oidc/backchannel-logout`,
      },
    });
    gw = await startGateway({
      SESSION_PREFIX: prefix,
      SESSION_TAG_SECRET: TAG_SECRET,
      OIDC_ISSUER: idp.issuer,
      OIDC_CLIENT_ID: CLIENT.id,
      OIDC_CLIENT_SECRET: CLIENT.secret,
      OIDC_REDIRECT_URI: `${origin}/auth/callback`,
      OIDC_POST_LOGOUT_REDIRECT_URI: `${origin}/signed-out`,
      EDGE_COOKIE_SECURE: 'false',
    });
    await gw.app.listen(port!, '127.0.0.1');
    expect((gw.app.getHttpServer().address() as AddressInfo).port).toBe(port);
    store = new SessionStore({ redis: gw.redis, prefix, tagSecret: TAG_SECRET });
  });
  afterAll(async () => {
    if (gw) {
      await deletePrefix(gw.redis, prefix);
      await gw.close();
    }
    await idp?.stop();
  });

  /** Signs `sub` in through /auth/login and the OP; returns the callback's answer and its URL. */
  async function logIn(sub: string, rd = '/orders?page=2') {
    const start = await agent()
      .get(`/auth/login?rd=${encodeURIComponent(rd)}`)
      .expect(302);
    const authorization = new URL(start.headers['location'] as string);
    expect(authorization.origin).toBe(idp.issuer);
    expect(authorization.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorization.searchParams.get('state')).toEqual(expect.any(String));
    expect(authorization.searchParams.get('nonce')).toEqual(expect.any(String));
    const back = new URL(await idp.signIn(authorization.href, sub));
    expect(back.origin + back.pathname).toBe(`${origin}/auth/callback`);
    const callback = `${back.pathname}${back.search}`;
    const res = await agent().get(callback);
    return { res, callback };
  }
  const cookieOf = (res: request.Response) => {
    const header = ([] as string[]).concat(res.headers['set-cookie'] ?? [])[0] ?? '';
    return header.split(';')[0]!;
  };

  it('signs a user in: a session born of the ID token, its cookie, and back to where they were going', async () => {
    const { res } = await logIn('ada');
    expect(res.status).toBe(302);
    expect(res.headers['location']).toBe('/orders?page=2');
    const setCookie = ([] as string[]).concat(res.headers['set-cookie'] ?? [])[0]!;
    expect(setCookie).toMatch(/^session=[A-Za-z0-9_.-]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+$/);
    const verified = await agent().get('/auth/verify').set('Cookie', cookieOf(res)).expect(200);
    const claims = accountClaims('ada');
    expect(verified.headers).toMatchObject({
      'x-auth-request-user': 'ada',
      'x-auth-request-email': claims.email,
      'x-auth-request-preferred-username': claims.preferred_username,
      'x-auth-request-groups': claims.groups.join(','),
    });
    // The session names its IdP session (sid), so a back-channel logout of it reaches it.
    const [session] = await store.listUserSessions('ada');
    expect(session?.idpSessionId).toEqual(expect.any(String));
    await store.revokeIdpSession(session!.idpSessionId!);
    await agent().get('/auth/verify').set('Cookie', cookieOf(res)).expect(401);
  });

  it('refuses a replayed callback, a missing or unknown state', async () => {
    const { res, callback } = await logIn('grace');
    expect(res.status).toBe(302);
    const replay = await agent().get(callback).expect(400);
    expect(replay.body).toMatchObject({ error: 'invalid_request' });
    await agent().get('/auth/callback?code=x').expect(400);
    await agent().get('/auth/callback?code=x&state=never-issued').expect(400);
  });

  it('keeps the ID token only sealed with a key the cookie holds; no token or code in Redis', async () => {
    const { res, callback } = await logIn('linus');
    const code = new URL(callback, origin).searchParams.get('code')!;
    const keys = await gw.redis.keys(`${prefix}:*`);
    const values = await Promise.all(
      keys.map(async (k) =>
        (await gw.redis.type(k)) === 'hash' ? JSON.stringify(await gw.redis.hgetall(k)) : '',
      ),
    );
    const everything = keys.join('\n') + values.join('\n');
    expect(everything).not.toContain(code);
    expect(everything).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ/);
    const cookieKey = cookieOf(res).split('.').at(-1)!;
    expect(everything).not.toContain(cookieKey);
    // A tampered key, or a session id alone, still finds the session; only logout needs the key.
    await agent().get('/auth/verify').set('Cookie', cookieOf(res).replace(/.$/, 'x')).expect(200);
    await agent().get('/auth/verify').set('Cookie', 'session=forged.value.x').expect(401);
  });

  it('logs out: the session is gone, the cookie cleared, and the OP told with id_token_hint', async () => {
    const { res } = await logIn('barbara');
    const cookie = cookieOf(res);
    const out = await agent().get('/auth/logout').set('Cookie', cookie).expect(302);
    const endSession = new URL(out.headers['location'] as string);
    expect(endSession.origin).toBe(idp.issuer);
    expect(endSession.searchParams.get('id_token_hint')).toMatch(/^eyJ/);
    expect(endSession.searchParams.get('post_logout_redirect_uri')).toBe(`${origin}/signed-out`);
    expect(([] as string[]).concat(out.headers['set-cookie'] ?? [])[0]).toMatch(/^session=; .*Max-Age=0$/);
    await agent().get('/auth/verify').set('Cookie', cookie).expect(401);
  });

  it('only ever returns to a path on this site', () => {
    for (const rd of [
      '//evil.example.com',
      'https://evil.example.com',
      '/\\evil.example.com',
      '\\\\evil',
      '/%2F%2Fevil.example.com',
      '/%5Cevil',
      'javascript:alert(1)',
      '',
      '/a\r\nLocation: x',
      // Dot segments the URL parser resolves into a scheme-relative URL.
      '/.//evil.example.com',
      '/a/..//evil.example.com',
      '/%2e//evil.example.com',
      '/x/%2e%2e//evil.example.com/path',
      '/./\\evil.example.com',
    ])
      expect({ rd, to: safeReturnPath(rd) }).toEqual({ rd, to: '/' });
    expect(safeReturnPath('/orders?page=2#top')).toBe('/orders?page=2#top');
    expect(safeReturnPath('/a/b%20c')).toBe('/a/b%20c');
    expect(safeReturnPath('/a/../b')).toBe('/b');
  });
});

describe('the edge login renews its tokens once across processes, and ends with the grant', () => {
  let idp: TestIdp;
  const gateways: TestGateway[] = [];
  let store: SessionStore;
  const prefix = uniquePrefix('oidc-refresh');
  const TTL = 4;

  beforeAll(async () => {
    const [port] = await freePorts(1);
    const origin = `http://127.0.0.1:${port}`;
    idp = await startTestIdp({
      relyingParty: {
        clientId: CLIENT.id,
        clientSecret: CLIENT.secret,
        redirectUri: `${origin}/auth/callback`,
      },
      accessTokenTtlSeconds: TTL,
    });
    const env = {
      SESSION_PREFIX: prefix,
      SESSION_TAG_SECRET: TAG_SECRET,
      OIDC_ISSUER: idp.issuer,
      OIDC_CLIENT_ID: CLIENT.id,
      OIDC_CLIENT_SECRET: CLIENT.secret,
      OIDC_REDIRECT_URI: `${origin}/auth/callback`,
      EDGE_COOKIE_SECURE: 'false',
      EDGE_PASS_ACCESS_TOKEN: 'true',
    };
    // Two gateways on one Redis, as two processes behind a proxy would be.
    gateways.push(await startGateway(env), await startGateway(env));
    store = new SessionStore({ redis: gateways[0]!.redis, prefix, tagSecret: TAG_SECRET });
  });
  afterAll(async () => {
    if (gateways[0]) await deletePrefix(gateways[0].redis, prefix);
    for (const gw of gateways) await gw.close();
    await idp?.stop();
  });

  const verify = (i: number, cookie: string) =>
    request(gateways[i]!.app.getHttpServer()).get('/auth/verify').set('Cookie', cookie);
  it('refreshes a session whose access token is due, once for 20 concurrent checks over two gateways', async () => {
    const start = await request(gateways[0]!.app.getHttpServer()).get('/auth/login').expect(302);
    const back = new URL(await idp.signIn(start.headers['location'] as string, 'rita'));
    const res = await request(gateways[0]!.app.getHttpServer())
      .get(`${back.pathname}${back.search}`)
      .expect(302);
    const cookie = ([] as string[]).concat(res.headers['set-cookie'] ?? [])[0]!.split(';')[0]!;
    const first = (await verify(0, cookie).expect(200)).headers['x-auth-request-access-token'];
    expect(first).toEqual(expect.any(String));
    const sessionId = cookie
      .slice(cookie.indexOf('=') + 1)
      .split('.')
      .slice(0, 2)
      .join('.');
    const due = Number((await store.getSession(sessionId))!.claims['_due']);
    expect(due).toBeGreaterThan(Date.now());
    await waitFor(() => Date.now() > due, 'the access token to be due', 10_000);
    const before = idp.refreshes();
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => verify(i % 2, cookie)));
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    expect(idp.refreshes() - before).toBe(1);
    const renewed = (await verify(0, cookie).expect(200)).headers['x-auth-request-access-token'];
    expect(renewed).not.toBe(first);
    // Nothing of the tokens is in Redis in the clear.
    const record = JSON.stringify(await store.getSession(sessionId));
    expect(record).not.toContain(renewed as string);

    // The OP ends the grant: the next refresh gets invalid_grant, and the session ends with it.
    await idp.revokeRefreshTokens('rita');
    const nextDue = Number((await store.getSession(sessionId))!.claims['_due']);
    await waitFor(() => Date.now() > nextDue, 'the renewed token to be due', 10_000);
    await verify(1, cookie).expect(401);
    expect(await store.getSession(sessionId)).toBeNull();
  });
});
