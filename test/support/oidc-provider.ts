import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

/** The resource server (audience) of every minted access token, JWT or opaque. */
export const JWT_RESOURCE = 'urn:session-revoker:test-api';

export interface TestIdp {
  issuer: string;
  jwksUri: string;
  introspectionUri: string;
  /** The resource server's client, allowed to introspect. */
  client: { id: string; secret: string };
  /** Calls the IdP's introspection endpoint has answered. */
  introspections(): number;
  /** A JWT access token for `sub` (audience JWT_RESOURCE), issued now by the IdP's own token model. */
  jwt(sub: string, extra?: { sid?: string; groups?: string[]; ttlSeconds?: number }): Promise<string>;
  /** An opaque access token for `sub`, which only introspection can read. */
  opaque(sub: string, extra?: { sid?: string; ttlSeconds?: number }): Promise<string>;
  /** Revokes a token at the IdP (introspection then says inactive). */
  revoke(token: string): Promise<void>;
  /**
   * Signs `sub` in at the OP the way a browser would (its development login and consent pages, over
   * HTTP with a cookie jar), starting from the authorization URL a relying party redirected to, and
   * returns where the OP sends the browser back (the relying party's redirect_uri with code and state).
   */
  signIn(authorizationUrl: string, sub: string): Promise<string>;
  /** Refresh-token grants the OP has answered. */
  refreshes(): number;
  /** Revokes every refresh token the OP issued to `sub` (its next use gets invalid_grant). */
  revokeRefreshTokens(sub: string): Promise<void>;
  stop(): Promise<void>;
}

/** A relying party registered at the test OP (authorization code, with back-channel logout). */
export interface TestRelyingParty {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  postLogoutRedirectUri?: string;
  backchannelLogoutUri?: string;
}

/**
 * The claims the test OP gives every account: derived from its sub, so a test knows them. A sub that
 * starts with `many-groups-` is in 400 groups of 60 characters (an ID token of over 24 KB).
 */
export const accountClaims = (sub: string) => ({
  sub,
  email: sub.includes('@') ? sub : `${sub}@example.com`,
  preferred_username: sub.split('@')[0],
  name: `User ${sub}`,
  groups: sub.startsWith('many-groups-')
    ? Array.from({ length: 400 }, (_, i) => `group-${String(i).padStart(3, '0')}-${'g'.repeat(50)}`)
    : ['staff', `team-${sub.length % 3}`],
});

/**
 * A certified OpenID Provider (oidc-provider, panva) on a free port of 127.0.0.1, in this process:
 * a real JWKS, a real RFC 7662 introspection endpoint (counted), JWT access tokens for one resource
 * server and opaque ones otherwise. Tokens are minted with the provider's own AccessToken model, as
 * its token endpoint would after a login.
 */
export async function startTestIdp(
  options: { relyingParty?: TestRelyingParty; accessTokenTtlSeconds?: number } = {},
): Promise<TestIdp> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const key = { ...(await exportJWK(privateKey)), kid: 'test-key-1', alg: 'RS256', use: 'sig' };
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = { id: 'resource-server', secret: 'resource-server-secret-0123456789' };
  // The claims each minted token carries beyond the standard ones (the provider asks per token).
  const extras = new WeakMap<object, Record<string, unknown>>();
  const provider = new Provider(issuer, {
    jwks: { keys: [key] },
    extraTokenClaims: (_ctx, token) => extras.get(token),
    clients: [
      {
        client_id: client.id,
        client_secret: client.secret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
      },
      ...(options.relyingParty
        ? [
            {
              client_id: options.relyingParty.clientId,
              client_secret: options.relyingParty.clientSecret,
              grant_types: ['authorization_code', 'refresh_token'],
              response_types: ['code' as const],
              redirect_uris: [options.relyingParty.redirectUri],
              ...(options.relyingParty.postLogoutRedirectUri
                ? { post_logout_redirect_uris: [options.relyingParty.postLogoutRedirectUri] }
                : {}),
              ...(options.relyingParty.backchannelLogoutUri
                ? {
                    backchannel_logout_uri: options.relyingParty.backchannelLogoutUri,
                    backchannel_logout_session_required: true,
                  }
                : {}),
            },
          ]
        : []),
    ],
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => accountClaims(sub) }),
    claims: { openid: ['sub'], email: ['email'], profile: ['name', 'preferred_username', 'groups'] },
    // The ID token carries the profile claims itself, as Ping's can be configured to.
    conformIdTokenClaims: false,
    // offline_access needs consent to the prompt, which the development consent page gives.
    issueRefreshToken: () => true,
    ...(options.accessTokenTtlSeconds
      ? {
          ttl: {
            AccessToken: options.accessTokenTtlSeconds,
            AuthorizationCode: 60,
            IdToken: 3600,
            RefreshToken: 3600,
            Grant: 3600,
            Session: 3600,
            Interaction: 600,
          },
        }
      : {}),
    features: {
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo: () => ({
          scope: 'api:read',
          audience: JWT_RESOURCE,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  });
  let introspections = 0;
  let refreshes = 0;
  provider.on('grant.success', (ctx: { oidc: { params?: Record<string, unknown> } }) => {
    if (ctx.oidc.params?.['grant_type'] === 'refresh_token') refreshes++;
  });
  const refreshTokens = new Map<string, { destroy(): Promise<void> }[]>();
  provider.on('refresh_token.saved', (token: { accountId: string; destroy(): Promise<void> }) => {
    refreshTokens.set(token.accountId, [...(refreshTokens.get(token.accountId) ?? []), token]);
  });
  provider.use(async (ctx, next) => {
    if (ctx.path === '/token/introspection') introspections++;
    await next();
  });
  server.on('request', provider.callback());
  const theClient = await provider.Client.find(client.id);

  const mint = async (
    sub: string,
    extra: { sid?: string; groups?: string[]; ttlSeconds?: number },
    resource: boolean,
  ): Promise<string> => {
    const token = new provider.AccessToken({
      accountId: sub,
      client: theClient,
      scope: 'api:read',
      expiresIn: extra.ttlSeconds ?? 300,
      ...(extra.sid ? { sid: extra.sid } : {}),
      resourceServer: {
        scope: 'api:read',
        audience: JWT_RESOURCE,
        accessTokenFormat: resource ? 'jwt' : 'opaque',
        ...(resource ? { jwt: { sign: { alg: 'RS256' } } } : {}),
      },
    } as never);
    (token as unknown as { setAudience(a: string): void }).setAudience(JWT_RESOURCE);
    if (resource) {
      extras.set(token, {
        ...(extra.sid ? { sid: extra.sid } : {}),
        ...(extra.groups ? { groups: extra.groups } : {}),
      });
    }
    return token.save();
  };

  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    introspectionUri: `${issuer}/token/introspection`,
    client,
    introspections: () => introspections,
    jwt: (sub, extra = {}) => mint(sub, extra, true),
    opaque: (sub, extra = {}) => mint(sub, extra, false),
    signIn: (authorizationUrl, sub) => signIn(authorizationUrl, sub),
    refreshes: () => refreshes,
    revokeRefreshTokens: async (sub) => {
      for (const token of refreshTokens.get(sub) ?? []) await token.destroy();
    },
    revoke: async (token) => {
      const found = await provider.AccessToken.find(token);
      await found?.destroy();
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

/** Follows the OP's redirects and fills its development login and consent forms (see TestIdp.signIn). */
async function signIn(authorizationUrl: string, sub: string): Promise<string> {
  const jar = new Map<string, string>();
  const origin = new URL(authorizationUrl).origin;
  const call = async (url: string, form?: Record<string, string>) => {
    const res = await fetch(url, {
      method: form ? 'POST' : 'GET',
      redirect: 'manual',
      headers: {
        cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
        ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      ...(form ? { body: new URLSearchParams(form) } : {}),
    });
    for (const cookie of res.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const eq = pair!.indexOf('=');
      jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
    }
    return res;
  };
  let url = authorizationUrl;
  for (let step = 0; step < 12; step++) {
    const res = await call(url);
    const location = res.headers.get('location');
    if (location) {
      const next = new URL(location, url).href;
      if (!next.startsWith(origin)) return next;
      url = next;
      continue;
    }
    const page = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(page)?.[1];
    if (!action) throw new Error(`unexpected page from the OP (${res.status})`);
    const target = new URL(action.replace(/&amp;/g, '&'), url).href;
    const form = page.includes('name="login"')
      ? await call(target, { prompt: 'login', login: sub, password: 'any' })
      : await call(target, { prompt: 'consent' });
    const after = form.headers.get('location');
    if (!after) throw new Error(`the OP's form answered ${form.status}`);
    url = new URL(after, url).href;
  }
  throw new Error('the OP did not send the browser back');
}
