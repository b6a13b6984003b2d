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
  stop(): Promise<void>;
}

/**
 * A certified OpenID Provider (oidc-provider, panva) on a free port of 127.0.0.1, in this process:
 * a real JWKS, a real RFC 7662 introspection endpoint (counted), JWT access tokens for one resource
 * server and opaque ones otherwise. Tokens are minted with the provider's own AccessToken model, as
 * its token endpoint would after a login.
 */
export async function startTestIdp(): Promise<TestIdp> {
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
    ],
    features: {
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
