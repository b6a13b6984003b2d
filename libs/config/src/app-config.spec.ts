import { describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PINGONE_MAPPING as DEFAULT_PINGONE_MAPPING_FOR_TESTS } from '#identity-events';
import { ConfigError, ENV_VARIABLES, loadConfig } from './app-config.js';

/** A real P-256 key pair, as JWKs: the public half verifies, the private half must be refused. */
const ecKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const EC_PUBLIC = ecKey.publicKey.export({ format: 'jwk' });
const EC_PRIVATE = ecKey.privateKey.export({ format: 'jwk' });
const bcl = (jwks: unknown, more: Record<string, string> = {}) => ({
  OIDC_BCL_ISSUER: 'https://idp.example.com',
  OIDC_BCL_AUDIENCE: 'client-a',
  OIDC_BCL_JWKS: JSON.stringify(jwks),
  ...more,
});

describe('loadConfig', () => {
  it('has defaults for everything optional', () => {
    const config = loadConfig({});
    expect(config.port).toBe(3000);
    expect(config.redis.queueUrl).toBe(config.redis.url);
    expect(config.webhookBodyLimit).toBe(5 * 1024 * 1024);
    expect(config.pingone.mapping).toEqual(DEFAULT_PINGONE_MAPPING_FOR_TESTS);
    expect(config.pingone.secrets).toEqual([]);
  });

  it('ENQUEUE_ONE_SCRIPT: on by default, off with false or 0, anything else refused by name', () => {
    expect(loadConfig({}).enqueueOneScript).toBe(true);
    for (const off of ['false', '0'])
      expect(loadConfig({ ENQUEUE_ONE_SCRIPT: off }).enqueueOneScript).toBe(false);
    expect(() => loadConfig({ ENQUEUE_ONE_SCRIPT: 'no' })).toThrow(/ENQUEUE_ONE_SCRIPT/);
  });

  it('LOG_FORMAT: auto by default, json or pretty when given, anything else refused by name', () => {
    expect(loadConfig({}).logFormat).toBe('auto');
    expect(loadConfig({ LOG_FORMAT: 'json' }).logFormat).toBe('json');
    expect(loadConfig({ LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
    expect(() => loadConfig({ LOG_FORMAT: 'text' })).toThrow(/LOG_FORMAT/);
  });

  it('parses lists, sizes and issuers', () => {
    const jwks = JSON.stringify({ keys: [{ ...EC_PUBLIC, kid: 'k1' }] });
    const config = loadConfig({
      PINGONE_WEBHOOK_SECRET: 'new-secret, old-secret',
      PINGONE_ENVIRONMENT_IDS: 'env-a,env-b',
      WEBHOOK_BODY_LIMIT: '512kb',
      OIDC_BCL_ISSUER: 'https://idp.example.com',
      OIDC_BCL_AUDIENCE: 'client-a,client-b',
      OIDC_BCL_JWKS: jwks,
    });
    expect(config.pingone.secrets).toEqual(['new-secret', 'old-secret']);
    expect([...config.pingone.environmentIds!]).toEqual(['env-a', 'env-b']);
    expect(config.webhookBodyLimit).toBe(512 * 1024);
    expect(config.oidcIssuers).toEqual([
      { issuer: 'https://idp.example.com', audience: ['client-a', 'client-b'], jwks: JSON.parse(jwks) },
    ]);
  });

  it('reads more cluster seeds, shared with the queue when it shares REDIS_URL', () => {
    const shared = loadConfig({ REDIS_CLUSTER: 'true', REDIS_CLUSTER_NODES: '10.0.0.2:7000, [::1]:7001' });
    expect(shared.redis.clusterNodes).toEqual(['10.0.0.2:7000', '[::1]:7001']);
    expect(shared.redis.queueClusterNodes).toEqual(['10.0.0.2:7000', '[::1]:7001']);
    const apart = loadConfig({
      REDIS_CLUSTER: 'true',
      REDIS_CLUSTER_NODES: '10.0.0.2:7000',
      QUEUE_REDIS_URL: 'redis://queue:6379',
    });
    expect(apart.redis.queueClusterNodes).toEqual([]);
    // The queue is not on the cluster there, so its prefix needs no hash tag.
    expect(
      loadConfig({ REDIS_CLUSTER: 'true', QUEUE_REDIS_URL: 'redis://q:6379', QUEUE_PREFIX: 'sr' }).redis
        .queueCluster,
    ).toBe(false);
    expect(loadConfig({}).redis.clusterNodes).toEqual([]);
  });

  it.each([
    [{ PORT: 'eighty' }, /PORT/],
    [{ REDIS_URL: 'http://localhost' }, /REDIS_URL/],
    [{ SESSION_TAG_SECRET: 'short' }, /SESSION_TAG_SECRET/],
    [{ WEBHOOK_BODY_LIMIT: 'lots' }, /WEBHOOK_BODY_LIMIT/],
    [{ OIDC_BCL_ISSUER: 'https://idp' }, /OIDC_BCL_AUDIENCE/],
    [{ SSF_ISSUER: 'https://tx', SSF_AUDIENCE: 'me' }, /SSF_JWKS/],
    [{ SSF_ISSUER: 'https://tx', SSF_AUDIENCE: 'me', SSF_JWKS: '{nope' }, /SSF_JWKS/],
    [{ MEMORY_WARN_FRACTION: '2' }, /MEMORY_WARN_FRACTION/],
    [{ REDIS_CLUSTER_NODES: 'redis://10.0.0.2:7000' }, /REDIS_CLUSTER_NODES/],
    [{ QUEUE_REDIS_CLUSTER_NODES: '10.0.0.2:7000,,10.0.0.3' }, /QUEUE_REDIS_CLUSTER_NODES/],
    [{ SESSION_WAIT_REPLICAS: '-1' }, /SESSION_WAIT_REPLICAS/],
    [{ REDIS_CLUSTER: 'true', QUEUE_PREFIX: 'sr' }, /QUEUE_PREFIX/],
    [{ QUEUE_REDIS_CLUSTER: '1', QUEUE_PREFIX: 'sr{}' }, /QUEUE_PREFIX/],
    [{ QUEUE_REDIS_CLUSTER: '1', QUEUE_PREFIX: '{}{sr}' }, /QUEUE_PREFIX/],
    [{ QUEUE_REDIS_CLUSTER: '1', QUEUE_PREFIX: 'sr}{' }, /QUEUE_PREFIX/],
    [{ CONFIG_FILE: '/nonexistent/config.yaml' }, /CONFIG_FILE/],
    [
      { ...bcl({ keys: [EC_PUBLIC] }), DEDUP_WINDOW_SECONDS: '120' },
      /DEDUP_WINDOW_SECONDS: must be more than twice JWT_CLOCK_TOLERANCE_SECONDS/,
    ],
    [{ ...bcl({ keys: [EC_PUBLIC] }), OIDC_BCL_AUDIENCE: ',' }, /OIDC_BCL_AUDIENCE/],
    [bcl({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }), /OIDC_BCL_JWKS: key 0 kty must be RSA, EC or OKP/],
    [bcl({ keys: [EC_PUBLIC, EC_PRIVATE] }), /OIDC_BCL_JWKS: key 1 holds a private key/],
    [bcl({ keys: [{ ...EC_PUBLIC, x: 'x' }] }), /OIDC_BCL_JWKS: key 0 is not a valid public key/],
    [
      { SSF_ISSUER: 'https://tx', SSF_AUDIENCE: 'me', SSF_JWKS_URI: 'ftp://tx/jwks' },
      /SSF_JWKS_URI: must be an https/,
    ],
    [
      { SSF_ISSUER: 'https://tx', SSF_AUDIENCE: 'me', SSF_JWKS_URI: 'http://tx.example.com/jwks' },
      /SSF_JWKS_URI: must be an https:\/\/ URL \(http:\/\/ only to localhost, or set ALLOW_HTTP_JWKS=true\)/,
    ],
  ])('a bad value stops start-up naming it: %j', (env, name) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(name);
  });

  it('reads several issuers and the PingOne mapping from a YAML config file, validated', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sr-config-'));
    const good = join(dir, 'good.yaml');
    writeFileSync(
      good,
      [
        'oidcIssuers:',
        '  - { issuer: https://a.example, audience: a, jwksUri: https://a.example/jwks }',
        '  - { issuer: https://b.example, audience: [b], jwksUri: https://b.example/jwks }',
        'pingone:',
        '  mapping:',
        '    USER.DELETED: { target: user }',
      ].join('\n'),
    );
    const config = loadConfig({ CONFIG_FILE: good });
    expect(config.oidcIssuers.map((i) => i.issuer)).toEqual(['https://a.example', 'https://b.example']);
    expect(config.pingone.mapping).toEqual({ 'USER.DELETED': { target: 'user' } });

    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ pingone: { mapping: { 'USER.DELETED': { target: 'everyone' } } } }));
    expect(() => loadConfig({ CONFIG_FILE: bad })).toThrow(
      /CONFIG_FILE .* at pingone\.mapping\.USER\.DELETED\.target/,
    );
    const hmac = join(dir, 'hmac.json');
    writeFileSync(
      hmac,
      JSON.stringify({
        oidcIssuers: [{ issuer: 'x', audience: 'y', jwksUri: 'https://x/j', algorithms: ['HS256'] }],
      }),
    );
    expect(() => loadConfig({ CONFIG_FILE: hmac })).toThrow(/asymmetric/);
  });

  it('lets a window shorter than twice the skew be when no JWT source is configured', () => {
    expect(loadConfig({ DEDUP_WINDOW_SECONDS: '120' }).dedupWindowMs).toBe(120_000);
  });

  it('takes JWKS over http from elsewhere only with ALLOW_HTTP_JWKS', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sr-config-'));
    const file = join(dir, 'issuers.json');
    const internal = 'http://keycloak.auth.svc:8080/realms/r/protocol/openid-connect/certs';
    writeFileSync(
      file,
      JSON.stringify({ oidcIssuers: [{ issuer: 'https://kc', audience: 'a', jwksUri: internal }] }),
    );
    expect(() => loadConfig({ CONFIG_FILE: file })).toThrow(
      /CONFIG_FILE oidcIssuers\[0\]\.jwksUri: must be an https/,
    );
    expect(loadConfig({ CONFIG_FILE: file, ALLOW_HTTP_JWKS: 'true' }).oidcIssuers[0]!.jwksUri).toBe(internal);
  });

  it('takes JWKS over https, or over http from this machine only', () => {
    const ssf = (uri: string) => ({ SSF_ISSUER: 'https://tx', SSF_AUDIENCE: 'me', SSF_JWKS_URI: uri });
    for (const uri of [
      'https://tx.example.com/jwks',
      'http://127.0.0.1:8080/jwks',
      'http://localhost/jwks',
      'http://[::1]:9/jwks',
    ])
      expect(loadConfig(ssf(uri)).ssfTransmitters[0]!.jwksUri).toBe(uri);
  });

  it('refuses an issuer configured twice (env and file, or twice in the file), which one would hide', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sr-config-'));
    const file = join(dir, 'issuers.json');
    const entry = { issuer: 'https://idp.example.com', audience: 'client-b', jwks: { keys: [EC_PUBLIC] } };
    writeFileSync(file, JSON.stringify({ oidcIssuers: [entry] }));
    expect(() => loadConfig({ ...bcl({ keys: [EC_PUBLIC] }), CONFIG_FILE: file })).toThrow(
      /OIDC_BCL_ISSUER \/ CONFIG_FILE oidcIssuers: issuer https:\/\/idp\.example\.com is configured twice/,
    );
    writeFileSync(file, JSON.stringify({ ssfTransmitters: [entry, { ...entry, audience: 'other' }] }));
    expect(() => loadConfig({ CONFIG_FILE: file })).toThrow(/SSF_ISSUER \/ CONFIG_FILE ssfTransmitters/);
    // Distinct issuers are fine.
    writeFileSync(file, JSON.stringify({ oidcIssuers: [{ ...entry, issuer: 'https://other.example' }] }));
    expect(loadConfig({ ...bcl({ keys: [EC_PUBLIC] }), CONFIG_FILE: file }).oidcIssuers).toHaveLength(2);
  });

  describe('the token verifier', () => {
    const SHA = 'a'.repeat(64);
    const base = {
      SESSION_TAG_SECRET: 'tag-secret-0123456789',
      TOKEN_ISSUER: 'https://auth.pingone.eu/env/as',
      TOKEN_AUDIENCE: 'api-a,api-b',
      TOKEN_JWKS_URI: 'https://auth.pingone.eu/env/as/jwks',
    };

    it('is off without issuers, and reads one from TOKEN_* with its cache settings', () => {
      expect(loadConfig({}).tokens).toMatchObject({
        issuers: [],
        maxTtlSeconds: 300,
        negativeTtlSeconds: 10,
      });
      const config = loadConfig({
        ...base,
        TOKEN_INTROSPECTION_URI: 'https://pf.example.com/as/introspect.oauth2',
        TOKEN_INTROSPECTION_CLIENT_ID: 'rs',
        TOKEN_INTROSPECTION_CLIENT_SECRET: 's3cret',
        TOKEN_GROUPS_CLAIM: 'groups',
        TOKEN_CACHE_MAX_TTL_SECONDS: '60',
        TOKEN_WHEN_REDIS_DOWN: 'verify-jwt-unchecked',
        INTROSPECTION_CLIENTS: `kong:${SHA},envoy:${SHA.toUpperCase()}`,
      });
      expect(config.tokens).toEqual({
        issuers: [
          {
            issuer: base.TOKEN_ISSUER,
            audience: ['api-a', 'api-b'],
            jwksUri: base.TOKEN_JWKS_URI,
            groupsClaim: 'groups',
            introspection: {
              uri: 'https://pf.example.com/as/introspect.oauth2',
              clientId: 'rs',
              clientSecret: 's3cret',
              timeoutMs: 3000,
            },
          },
        ],
        maxTtlSeconds: 60,
        negativeTtlSeconds: 10,
        negativeMaxEntries: 10_000,
        whenRedisDown: 'verify-jwt-unchecked',
        introspectionClients: [
          { id: 'kong', sha256: SHA },
          { id: 'envoy', sha256: SHA },
        ],
      });
    });

    it('refuses token settings that cannot work, naming the setting', () => {
      const refusals: [Record<string, string>, RegExp][] = [
        [{ ...base, SESSION_TAG_SECRET: '' }, /^SESSION_TAG_SECRET: required with token issuers/],
        [{ TOKEN_AUDIENCE: 'x' }, /^TOKEN_ISSUER: required/],
        [{ ...base, TOKEN_JWKS_URI: '' }, /^TOKEN_ISSUER: give jwksUri, jwks or introspection/],
        [
          { ...base, TOKEN_INTROSPECTION_URI: 'https://pf.example.com/i' },
          /^TOKEN_INTROSPECTION_URI: give it with/,
        ],
        [{ ...base, TOKEN_JWKS: '{' }, /^TOKEN_JWKS: not valid JSON/],
        [{ ...base, TOKEN_JWKS_URI: 'http://idp.example.com/jwks' }, /^TOKEN_JWKS_URI: must be an https/],
        [
          {
            ...base,
            TOKEN_INTROSPECTION_URI: 'http://pf.example.com/as/introspect.oauth2',
            TOKEN_INTROSPECTION_CLIENT_ID: 'rs',
            TOKEN_INTROSPECTION_CLIENT_SECRET: 's',
          },
          /^TOKEN_INTROSPECTION_URI: must be an https/,
        ],
        [{ ...base, INTROSPECTION_CLIENTS: 'kong:not-a-digest' }, /^INTROSPECTION_CLIENTS: each entry/],
        [{ ...base, TOKEN_WHEN_REDIS_DOWN: 'open' }, /^TOKEN_WHEN_REDIS_DOWN/],
      ];
      for (const [env, message] of refusals) {
        const err = (() => {
          try {
            loadConfig(env);
          } catch (e) {
            return e;
          }
          return undefined;
        })();
        expect({ env, err: err instanceof ConfigError ? err.message : err }).toEqual({
          env,
          err: expect.stringMatching(message),
        });
      }
    });

    it('reads more issuers from tokenIssuers in CONFIG_FILE, each once', () => {
      const dir = mkdtempSync(join(tmpdir(), 'token-config-'));
      const file = join(dir, 'config.yaml');
      writeFileSync(
        file,
        [
          'tokenIssuers:',
          '  - issuer: https://pf.example.com',
          '    introspection: { uri: https://pf.example.com/as/introspect.oauth2, clientId: rs, clientSecret: s }',
          '    userClaim: username',
        ].join('\n'),
      );
      const config = loadConfig({ ...base, CONFIG_FILE: file });
      expect(config.tokens.issuers.map((i) => i.issuer)).toEqual([
        base.TOKEN_ISSUER,
        'https://pf.example.com',
      ]);
      expect(config.tokens.issuers[1]).toMatchObject({ userClaim: 'username' });
      writeFileSync(
        file,
        ['tokenIssuers:', `  - { issuer: '${base.TOKEN_ISSUER}', jwksUri: '${base.TOKEN_JWKS_URI}' }`].join(
          '\n',
        ),
      );
      expect(() => loadConfig({ ...base, CONFIG_FILE: file })).toThrow(/configured twice/);
    });

    it('sends opaque tokens to exactly one issuer: refuses a configuration that leaves it open or says it twice', () => {
      const dir = mkdtempSync(join(tmpdir(), 'token-config-'));
      const file = join(dir, 'config.yaml');
      const introspecting = {
        ...base,
        TOKEN_INTROSPECTION_URI: 'https://auth.pingone.eu/env/as/introspect',
        TOKEN_INTROSPECTION_CLIENT_ID: 'rs',
        TOKEN_INTROSPECTION_CLIENT_SECRET: 's',
        CONFIG_FILE: file,
      };
      const pf = (name: string, extra = '') =>
        `  - { issuer: https://${name}.example.com, introspection: { uri: https://pf.example.com/as/introspect.oauth2, clientId: rs, clientSecret: s }${extra} }`;
      const load = (...issuers: string[]) => {
        writeFileSync(file, ['tokenIssuers:', ...issuers].join('\n'));
        return loadConfig(introspecting);
      };
      expect(() => load(pf('pf'))).toThrow(
        /^CONFIG_FILE tokenIssuers\[\]\.opaqueTokens: several issuers introspect \(https:\/\/auth\.pingone\.eu\/env\/as \(TOKEN_ISSUER\), https:\/\/pf\.example\.com \(CONFIG_FILE tokenIssuers\[0\]\)\)/,
      );
      expect(() => load(pf('pf', ', opaqueTokens: true'), pf('pf2', ', opaqueTokens: true'))).toThrow(
        /^CONFIG_FILE tokenIssuers\[1\]\.opaqueTokens: set on several issuers/,
      );
      expect(() =>
        load(
          '  - { issuer: https://jwt.example.com, jwksUri: https://jwt.example.com/jwks, opaqueTokens: true }',
        ),
      ).toThrow(/at tokenIssuers\.0\.opaqueTokens: opaqueTokens: true needs introspection/);
      // Saying which takes them, or that the others do not, is enough; it reaches the verifier as given.
      expect(load(pf('pf', ', opaqueTokens: true')).tokens.issuers[1]).toMatchObject({ opaqueTokens: true });
      expect(load(pf('pf', ', opaqueTokens: false')).tokens.issuers[1]).toMatchObject({
        opaqueTokens: false,
      });
      // One introspecting issuer needs no word: it takes them.
      expect(loadConfig({ ...introspecting, CONFIG_FILE: '' }).tokens.issuers).toHaveLength(1);
    });
  });

  it('reads the forward-auth cookie name and refuses one that is not a cookie name', () => {
    expect(loadConfig({}).edge).toMatchObject({ cookieName: '__Host-session', passAccessToken: false });
    expect(loadConfig({ EDGE_COOKIE_SECURE: 'false' }).edge).toMatchObject({ cookieName: 'session' });
    expect(loadConfig({ EDGE_COOKIE_NAME: 'sid', EDGE_PASS_ACCESS_TOKEN: 'true' }).edge).toMatchObject({
      cookieName: 'sid',
      passAccessToken: true,
    });
    expect(() => loadConfig({ EDGE_COOKIE_NAME: 'bad name;' })).toThrow(
      /^EDGE_COOKIE_NAME: must be a cookie name/,
    );
  });

  it('turns the edge login on with OIDC_ISSUER, checking what it needs', () => {
    const oidc = {
      SESSION_TAG_SECRET: 'tag-secret-0123456789',
      OIDC_ISSUER: 'https://auth.pingone.eu/env/as',
      OIDC_CLIENT_ID: 'edge',
      OIDC_CLIENT_SECRET: 's3cret',
      OIDC_REDIRECT_URI: 'https://app.example.com/auth/callback',
    };
    expect(loadConfig({}).edge.oidc).toBeUndefined();
    expect(loadConfig(oidc).edge.oidc).toMatchObject({
      issuer: oidc.OIDC_ISSUER,
      scopes: 'openid profile email offline_access',
      groupsClaim: 'groups',
      insecure: false,
    });
    expect(loadConfig({ ...oidc, OIDC_ISSUER: 'http://127.0.0.1:9000' }).edge.oidc?.insecure).toBe(true);
    expect(() => loadConfig({ ...oidc, OIDC_ISSUER: 'http://idp.example.com' })).toThrow(
      /^OIDC_ISSUER: must be an https/,
    );
    expect(
      loadConfig({ ...oidc, OIDC_ISSUER: 'http://idp.example.com', ALLOW_HTTP_JWKS: 'true' }).edge.oidc
        ?.insecure,
    ).toBe(true);
    expect(() => loadConfig({ ...oidc, OIDC_CLIENT_SECRET: '' })).toThrow(/^OIDC_CLIENT_SECRET: required/);
    expect(() => loadConfig({ ...oidc, SESSION_TAG_SECRET: '' })).toThrow(
      /^SESSION_TAG_SECRET: required with OIDC_ISSUER/,
    );
    expect(() => loadConfig({ ...oidc, OIDC_SCOPES: 'profile' })).toThrow(
      /^OIDC_SCOPES: must include openid/,
    );
    expect(() => loadConfig({ ...oidc, EDGE_COOKIE_SECURE: 'false', EDGE_COOKIE_NAME: '__Host-s' })).toThrow(
      /^EDGE_COOKIE_NAME: a __Host- cookie must be Secure/,
    );
  });

  it('the README documents exactly the variables the schema reads', () => {
    const readme = readFileSync('README.md', 'utf8');
    const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## Benchmarks'));
    const documented = [...section.matchAll(/^\| `([A-Z0-9_]+)` +\|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual([...ENV_VARIABLES].sort());
  });
});
