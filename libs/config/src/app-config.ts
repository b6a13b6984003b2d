import { createHash, createPublicKey, type JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_PINGONE_MAPPING, PingOneMapping } from '#identity-events';

/** A bad setting: the message names the variable (or config-file path) and what is wrong. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const list = (v: string | undefined) =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

/** A yes/no setting: true, false, 1 or 0, anything else refused by name. */
const flag = (fallback: 'true' | 'false') =>
  z
    .enum(['true', 'false', '1', '0'])
    .default(fallback)
    .transform((v) => v === 'true' || v === '1');

const redisUrl = z
  .string()
  .url()
  .refine((u) => /^rediss?:$/.test(new URL(u).protocol), 'must be a redis:// or rediss:// URL');

/** `5mb`, `512kb` or a number of bytes. */
const byteSize = z
  .string()
  .regex(/^\d+(\.\d+)?\s*(b|kb|mb|gb)?$/i, 'must be a size like 5mb, 512kb or 1048576')
  .transform((s) => {
    const [, n, unit] = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(s.trim())!;
    const mult = { '': 1, b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[unit!.toLowerCase()]!;
    return Math.floor(Number(n) * mult);
  });

/**
 * Why a JWKS key cannot verify a token, or undefined if it can: a public key (RSA, EC or OKP) that
 * Node can load. A symmetric (`oct`) key would allow HMAC tokens, and a private key does not belong in
 * a verifier's configuration.
 */
function unusableJwk(key: Record<string, unknown>): string | undefined {
  if (key['kty'] !== 'RSA' && key['kty'] !== 'EC' && key['kty'] !== 'OKP')
    return `kty must be RSA, EC or OKP (public keys only), got ${JSON.stringify(key['kty'])}`;
  if ('d' in key) return 'holds a private key (d): give the public key only';
  try {
    createPublicKey({ key: key as JsonWebKey, format: 'jwk' });
    return undefined;
  } catch {
    return 'is not a valid public key';
  }
}

const jwks = z
  .object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) })
  .passthrough()
  .superRefine((set, ctx) => {
    set.keys.forEach((key, i) => {
      const why = unusableJwk(key);
      if (why) ctx.addIssue({ code: 'custom', path: ['keys', i], message: `key ${i} ${why}` });
    });
  });

const jwksUrl = z
  .string()
  .url()
  .refine((u) => /^https?:$/.test(new URL(u).protocol), 'must be an https:// (or http://) URL');

/**
 * Keys fetched over plain HTTP could be swapped on the way: a JWKS URI is https, or http to this
 * machine, unless ALLOW_HTTP_JWKS says the network is trusted (a mesh with mTLS, a cluster-internal IdP).
 */
function checkJwksTransport(where: string, uri: string | undefined): void {
  if (!uri) return;
  const { protocol, hostname } = new URL(uri);
  if (protocol === 'http:' && !['localhost', '127.0.0.1', '[::1]'].includes(hostname))
    throw new ConfigError(
      `${where}: must be an https:// URL (http:// only to localhost, or set ALLOW_HTTP_JWKS=true), got ${uri}`,
    );
}

const JwtIssuerSchema = z
  .object({
    issuer: z.string().min(1),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    jwksUri: jwksUrl.optional(),
    jwks: jwks.optional(),
    algorithms: z
      .array(z.string().regex(/^(RS|PS|ES)(256|384|512)$|^EdDSA$/, 'asymmetric algorithms only'))
      .optional(),
  })
  .refine((i) => Boolean(i.jwksUri) !== Boolean(i.jwks), 'give exactly one of jwksUri and jwks');

/** An issuer of access tokens for the token verifier: keys for its JWTs, introspection for opaque ones. */
const TokenIssuerSchema = z
  .object({
    issuer: z.string().min(1),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    jwksUri: jwksUrl.optional(),
    jwks: jwks.optional(),
    algorithms: z
      .array(z.string().regex(/^(RS|PS|ES)(256|384|512)$|^EdDSA$/, 'asymmetric algorithms only'))
      .optional(),
    requireAtJwtTyp: z.boolean().optional(),
    userClaim: z.string().min(1).optional(),
    groupsClaim: z.string().min(1).optional(),
    introspection: z
      .object({
        uri: z.string().url(),
        clientId: z.string().min(1),
        clientSecret: z.string().min(1),
        timeoutMs: z.number().int().min(100).max(60_000).optional(),
        allowMissingIat: z.boolean().optional(),
      })
      .strict()
      .optional(),
    /** Opaque tokens are introspected here (and at no other issuer): see checkOpaqueTokenIssuer. */
    opaqueTokens: z.boolean().optional(),
  })
  .strict()
  .refine((i) => !(i.jwksUri && i.jwks), 'give at most one of jwksUri and jwks')
  .refine((i) => i.jwksUri || i.jwks || i.introspection, 'give jwksUri, jwks or introspection')
  .refine((i) => i.opaqueTokens !== true || i.introspection, {
    message: 'opaqueTokens: true needs introspection',
    path: ['opaqueTokens'],
  });

export type TokenIssuerSettings = z.infer<typeof TokenIssuerSchema>;

/** What CONFIG_FILE may hold: several issuers and transmitters, and the PingOne event mapping. */
const ConfigFileSchema = z
  .object({
    oidcIssuers: z.array(JwtIssuerSchema).default([]),
    ssfTransmitters: z.array(JwtIssuerSchema).default([]),
    tokenIssuers: z.array(TokenIssuerSchema).default([]),
    pingone: z.object({ mapping: PingOneMapping.optional() }).strict().default({}),
  })
  .strict();

/** `host:port` pairs, comma-separated: more seed nodes of a Redis Cluster. */
const clusterNodes = z
  .string()
  .regex(/^\s*[A-Za-z0-9.:[\]-]+:\d{1,5}\s*(,\s*[A-Za-z0-9.:[\]-]+:\d{1,5}\s*)*$/, {
    message: 'expected host:port pairs separated by commas',
  })
  .transform((v) => v.split(',').map((n) => n.trim()));

const EnvSchema = z.object({
  PORT: int(0, 65535).default(3000),
  WORKER_PORT: int(0, 65535).default(3001),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  REDIS_URL: redisUrl.default('redis://127.0.0.1:6379'),
  REDIS_CLUSTER: flag('false'),
  REDIS_CLUSTER_NODES: clusterNodes.optional(),
  QUEUE_REDIS_URL: redisUrl.optional(),
  QUEUE_REDIS_CLUSTER: z.enum(['true', 'false', '1', '0']).optional(),
  QUEUE_REDIS_CLUSTER_NODES: clusterNodes.optional(),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_{}.-]{1,64}$/)
    .default('{sr}'),
  SESSION_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/)
    .default('sr'),
  SESSION_TAG_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  CLOCK_SKEW_MS: int(0, 600_000).default(5000),
  PINGONE_WEBHOOK_SECRET: z.string().optional(),
  PINGONE_WEBHOOK_AUTH_HEADER: z
    .string()
    .regex(/^[A-Za-z0-9-]+$/, 'must be an HTTP header name')
    .default('authorization'),
  PINGONE_ENVIRONMENT_IDS: z.string().optional(),
  WEBHOOK_BODY_LIMIT: byteSize.default(5 * 1024 * 1024),
  JWT_WEBHOOK_BODY_LIMIT: byteSize.default(64 * 1024),
  ADMIN_BODY_LIMIT: byteSize.default(64 * 1024),
  HTTP_REQUEST_TIMEOUT_MS: int(1000, 600_000).default(10_000),
  HTTP_HEADERS_TIMEOUT_MS: int(1000, 600_000).default(5000),
  TRUSTED_PROXIES: z.string().optional(),
  DEDUP_WINDOW_SECONDS: int(1).default(86_400),
  JWT_CLOCK_TOLERANCE_SECONDS: int(0, 3600).default(60),
  OIDC_BCL_ISSUER: z.string().optional(),
  OIDC_BCL_AUDIENCE: z.string().optional(),
  OIDC_BCL_JWKS_URI: z.string().url().optional(),
  OIDC_BCL_JWKS: z.string().optional(),
  SSF_ISSUER: z.string().optional(),
  SSF_AUDIENCE: z.string().optional(),
  SSF_JWKS_URI: z.string().url().optional(),
  SSF_JWKS: z.string().optional(),
  QUARANTINE_MAX_ENTRIES: int(1).default(10_000),
  QUARANTINE_MAX_BYTES: byteSize.default(64 * 1024 * 1024),
  ENQUEUE_TIMEOUT_MS: int(100, 60_000).default(2000),
  ENQUEUE_WAIT_REPLICAS: int(0, 16).default(0),
  REVOKE_ON_RECEIPT: flag('true'),
  ENQUEUE_ONE_SCRIPT: flag('true'),
  JOB_ATTEMPTS: int(1, 100).default(8),
  JOB_BACKOFF_MS: int(1).default(500),
  COMPLETED_JOBS_MAX_AGE_SECONDS: int(1).default(3600),
  COMPLETED_JOBS_MAX_COUNT: int(0).default(10_000),
  WORKER_CONCURRENCY: int(1, 1000).default(16),
  SHUTDOWN_GRACE_MS: int(0, 600_000).default(10_000),
  LOCK_DURATION_MS: int(1000).default(30_000),
  STALLED_INTERVAL_MS: int(500).default(30_000),
  SESSION_WAIT_REPLICAS: int(0, 16).default(0),
  SESSION_WAIT_TIMEOUT_MS: int(1, 60_000).default(500),
  SWEEP_EVERY_MS: int(1000).default(60_000),
  SWEEP_KEYS_PER_RUN: int(0).default(200_000),
  MEMORY_WATCH_EVERY_MS: int(1000).default(15_000),
  MEMORY_WARN_FRACTION: z.coerce.number().gt(0).max(1).default(0.9),
  AUDIT_MAX_ENTRIES: int(1).default(100_000),
  EMBEDDED_WORKER: flag('true'),
  ALLOW_HTTP_JWKS: flag('false'),
  ALLOW_EVICTING_QUEUE_REDIS: flag('false'),
  ADMIN_API_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  ADMIN_API_KEYS: z.string().optional(),
  ADMIN_JWT_ISSUER: z.string().optional(),
  ADMIN_JWT_AUDIENCE: z.string().optional(),
  ADMIN_JWT_JWKS_URI: z.string().url().optional(),
  ADMIN_JWT_JWKS: z.string().optional(),
  ADMIN_RATE_LIMIT_PER_MINUTE: int(1).default(600),
  ADMIN_AUTH_FAILURES_PER_MINUTE: int(1).default(30),
  ADMIN_WAIT_TIMEOUT_MS: int(100, 120_000).default(10_000),
  TOKEN_ISSUER: z.string().optional(),
  TOKEN_AUDIENCE: z.string().optional(),
  TOKEN_JWKS_URI: z.string().url().optional(),
  TOKEN_JWKS: z.string().optional(),
  TOKEN_INTROSPECTION_URI: z.string().url().optional(),
  TOKEN_INTROSPECTION_CLIENT_ID: z.string().optional(),
  TOKEN_INTROSPECTION_CLIENT_SECRET: z.string().optional(),
  TOKEN_INTROSPECTION_TIMEOUT_MS: int(100, 60_000).default(3000),
  TOKEN_REQUIRE_AT_JWT: flag('false'),
  TOKEN_GROUPS_CLAIM: z.string().optional(),
  TOKEN_CACHE_MAX_TTL_SECONDS: int(1, 86_400).default(300),
  TOKEN_NEGATIVE_CACHE_SECONDS: int(0, 3600).default(10),
  TOKEN_NEGATIVE_CACHE_MAX_ENTRIES: int(0).default(10_000),
  TOKEN_WHEN_REDIS_DOWN: z.enum(['fail-closed', 'verify-jwt-unchecked']).default('fail-closed'),
  INTROSPECTION_CLIENTS: z.string().optional(),
  EDGE_COOKIE_NAME: z
    .string()
    .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/, 'must be a cookie name')
    .optional(),
  EDGE_COOKIE_SECURE: flag('true'),
  EDGE_SESSION_TTL_SECONDS: int(60, 30 * 86_400).default(28_800),
  OIDC_ISSUER: z.string().url().optional(),
  OIDC_CLIENT_ID: z.string().optional(),
  OIDC_CLIENT_SECRET: z.string().optional(),
  OIDC_REDIRECT_URI: z.string().url().optional(),
  OIDC_SCOPES: z.string().default('openid profile email offline_access'),
  OIDC_GROUPS_CLAIM: z.string().min(1).default('groups'),
  OIDC_POST_LOGOUT_REDIRECT_URI: z.string().url().optional(),
  EDGE_PASS_ACCESS_TOKEN: flag('false'),
  CONFIG_FILE: z.string().optional(),
});

export type JwtIssuerConfig = z.infer<typeof JwtIssuerSchema>;

/** Every setting, parsed once. Everything else receives this object, never process.env. */
export interface AppConfig {
  port: number;
  /** Health and metrics port of a standalone worker. */
  workerPort: number;
  logLevel: string;
  /** `json`, `pretty` (for a person), or `auto`: pretty on a terminal, JSON otherwise. */
  logFormat: 'auto' | 'json' | 'pretty';
  redis: {
    url: string;
    /** REDIS_URL names a seed node of a Redis Cluster. */
    cluster: boolean;
    /** More seed nodes (`host:port`) besides REDIS_URL's, so losing one does not cut the service off. */
    clusterNodes: string[];
    queueUrl: string;
    queueCluster: boolean;
    queueClusterNodes: string[];
    queuePrefix: string;
    sessionPrefix: string;
  };
  session: { tagSecret?: string; clockSkewMs: number };
  pingone: {
    secrets: string[];
    authHeader: string;
    environmentIds?: ReadonlySet<string>;
    mapping: PingOneMapping;
  };
  /** Largest body of a PingOne delivery (and the server's default). */
  webhookBodyLimit: number;
  http: {
    /** Largest body of a back-channel logout or SSF delivery: one signed token, a few KB. */
    jwtBodyLimit: number;
    /** Largest body of an admin call. */
    adminBodyLimit: number;
    /** The whole request (headers and body) must arrive within this, or 408 and the connection closes. */
    requestTimeoutMs: number;
    /** The headers must arrive within this. */
    headersTimeoutMs: number;
    /**
     * Addresses (IPs or CIDR ranges) of the reverse proxies in front: only from these is
     * X-Forwarded-For believed, so each client behind them has its own rate-limit budget.
     */
    trustedProxies: string[];
  };
  dedupWindowMs: number;
  jwtClockToleranceSec: number;
  oidcIssuers: JwtIssuerConfig[];
  ssfTransmitters: JwtIssuerConfig[];
  quarantineMaxEntries: number;
  /** Bytes of raw text the quarantine may hold (the newest entry is kept whatever its size). */
  quarantineMaxBytes: number;
  enqueueTimeoutMs: number;
  /** Replicas that must have a delivery's writes (Redis WAIT) before it is acknowledged. */
  enqueueWaitReplicas: number;
  /**
   * The gateway raises a user's not-before stamp as it queues the command (when it can reach the
   * session store), so the revocation is in force before the worker takes the job.
   */
  revokeOnReceipt: boolean;
  /**
   * Each command's dedup check, job and mark as one script (one round trip per event); false takes
   * three steps (check, jobs, marks).
   */
  enqueueOneScript: boolean;
  jobs: { attempts: number; backoffMs: number; completedMaxAgeSec: number; completedMaxCount: number };
  worker: {
    concurrency: number;
    shutdownGraceMs: number;
    /** A job's lock lives this long unless renewed: a killed worker's job is free again after it. */
    lockDurationMs: number;
    /** How often workers look for jobs whose lock expired (stalled) and take them back. */
    stalledIntervalMs: number;
    /** Replicas of the session Redis that must have a revocation (Redis WAIT) before its job completes. */
    sessionWaitReplicas: number;
    sessionWaitTimeoutMs: number;
    sweepEveryMs: number;
    /** SCAN budget of one sweep run, in keys (0: the whole keyspace); the next run resumes the walk. */
    sweepKeysPerRun: number;
    memoryWatchEveryMs: number;
    memoryWarnFraction: number;
  };
  /** The token verifier behind POST /oauth2/introspect (off when no issuer is configured). */
  tokens: {
    issuers: TokenIssuerSettings[];
    maxTtlSeconds: number;
    negativeTtlSeconds: number;
    negativeMaxEntries: number;
    whenRedisDown: 'fail-closed' | 'verify-jwt-unchecked';
    /** Resource servers allowed to call the endpoint with HTTP Basic: client id and SHA-256 of its secret. */
    introspectionClients: { id: string; sha256: string }[];
  };
  /** Forward auth for reverse proxies (GET /auth/verify), on whenever the session store is. */
  edge: {
    /** The cookie holding the session id. */
    cookieName: string;
    /** The cookie is Secure (and may then be a `__Host-` cookie). */
    cookieSecure: boolean;
    /** Pass a verified Bearer token upstream in X-Auth-Request-Access-Token. */
    passAccessToken: boolean;
    /** A session made by the login lives at most this long. */
    sessionTtlSeconds: number;
    /** The OpenID Connect relying party behind /auth/login (off without OIDC_ISSUER). */
    oidc?: {
      issuer: string;
      clientId: string;
      clientSecret: string;
      redirectUri: string;
      scopes: string;
      groupsClaim: string;
      postLogoutRedirectUri?: string;
      /** The issuer is plain http (loopback, or ALLOW_HTTP_JWKS). */
      insecure: boolean;
    };
  };
  auditMaxEntries: number;
  allowEvictingQueueRedis: boolean;
  /** Run the worker inside the gateway process (the single-process default). */
  embeddedWorker: boolean;
  admin: {
    apiKeys: AdminApiKey[];
    /** OAuth 2 access tokens (JWT) from this issuer are accepted too; scopes from `scope` / `scp`. */
    jwtIssuer?: JwtIssuerConfig;
    rateLimitPerMinute: number;
    /** Failed authentications per minute per client on /admin, counted apart from its calls. */
    authFailuresPerMinute: number;
    waitTimeoutMs: number;
  };
}

/** The names of every environment variable the service reads (the README's table is checked against it). */
export const ENV_VARIABLES = Object.keys(EnvSchema.shape);

const describeIssue = (issue: z.core.$ZodIssue, where: (path: PropertyKey[]) => string) =>
  `${where(issue.path)}: ${issue.message}`;

function readConfigFile(path: string): z.infer<typeof ConfigFileSchema> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `CONFIG_FILE: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  let raw: unknown;
  try {
    raw = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
  } catch {
    throw new ConfigError(`CONFIG_FILE: ${path} is not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}`);
  }
  const parsed = ConfigFileSchema.safeParse(raw ?? {});
  if (!parsed.success)
    throw new ConfigError(
      parsed.error.issues
        .map((i) => describeIssue(i, (p) => `CONFIG_FILE ${path} at ${p.join('.') || '(root)'}`))
        .join('; '),
    );
  return parsed.data;
}

export const ADMIN_SCOPES = [
  'sessions:read',
  'sessions:revoke',
  'queues:admin',
  'tokens:introspect',
] as const;
export type AdminScope = (typeof ADMIN_SCOPES)[number];

export interface AdminApiKey {
  name: string;
  scopes: AdminScope[];
  /** SHA-256 of the key, hex. */
  sha256: string;
}

/** `name:scopes:sha256hex`, several separated by commas; scopes joined by `+` or `|`, `*` for all. */
function parseAdminKeys(value: string | undefined, plain: string | undefined): AdminApiKey[] {
  const keys: AdminApiKey[] = list(value).map((entry) => {
    const parts = entry.split(':');
    const name = parts[0] ?? '';
    const sha256 = (parts.at(-1) ?? '').toLowerCase();
    const scopeText = parts.slice(1, -1).join(':');
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || !/^[0-9a-f]{64}$/.test(sha256) || !scopeText)
      throw new ConfigError('ADMIN_API_KEYS: each entry must be name:scopes:sha256hex (scopes joined by +)');
    const scopes = scopeText === '*' ? [...ADMIN_SCOPES] : scopeText.split(/[+|\s]+/);
    for (const scope of scopes)
      if (!(ADMIN_SCOPES as readonly string[]).includes(scope))
        throw new ConfigError(
          `ADMIN_API_KEYS: unknown scope ${scope} (known: ${ADMIN_SCOPES.join(', ')}, *)`,
        );
    return { name, scopes: scopes as AdminScope[], sha256 };
  });
  if (plain)
    keys.push({
      name: 'admin',
      scopes: [...ADMIN_SCOPES],
      sha256: createHash('sha256').update(plain).digest('hex'),
    });
  return keys;
}

/** INTROSPECTION_CLIENTS: `client_id:sha256hex`, comma-separated. */
function parseIntrospectionClients(value: string | undefined): { id: string; sha256: string }[] {
  return list(value).map((entry) => {
    const colon = entry.lastIndexOf(':');
    const id = entry.slice(0, colon);
    const sha256 = entry.slice(colon + 1).toLowerCase();
    if (colon <= 0 || !/^[\x21-\x7e]{1,128}$/.test(id) || !/^[0-9a-f]{64}$/.test(sha256))
      throw new ConfigError('INTROSPECTION_CLIENTS: each entry must be client_id:sha256hex of its secret');
    return { id, sha256 };
  });
}

/** The token issuer of the TOKEN_* settings, if any. */
function tokenIssuerFromEnv(env: z.infer<typeof EnvSchema>): TokenIssuerSettings | undefined {
  const given = Object.entries(env).filter(
    ([k, v]) => k.startsWith('TOKEN_') && v !== undefined && !TOKEN_SETTINGS_WITH_DEFAULTS.includes(k),
  );
  if (given.length === 0) return undefined;
  if (!env.TOKEN_ISSUER) throw new ConfigError('TOKEN_ISSUER: required when TOKEN_* settings are given');
  const introspection = [
    env.TOKEN_INTROSPECTION_URI,
    env.TOKEN_INTROSPECTION_CLIENT_ID,
    env.TOKEN_INTROSPECTION_CLIENT_SECRET,
  ];
  if (introspection.some(Boolean) && !introspection.every(Boolean))
    throw new ConfigError(
      'TOKEN_INTROSPECTION_URI: give it with TOKEN_INTROSPECTION_CLIENT_ID and TOKEN_INTROSPECTION_CLIENT_SECRET',
    );
  let keys: unknown;
  if (env.TOKEN_JWKS) {
    try {
      keys = JSON.parse(env.TOKEN_JWKS);
    } catch {
      throw new ConfigError('TOKEN_JWKS: not valid JSON');
    }
  }
  const audience = env.TOKEN_AUDIENCE;
  const parsed = TokenIssuerSchema.safeParse({
    issuer: env.TOKEN_ISSUER,
    ...(audience ? { audience: audience.includes(',') ? list(audience) : audience } : {}),
    ...(env.TOKEN_JWKS_URI ? { jwksUri: env.TOKEN_JWKS_URI } : {}),
    ...(keys !== undefined ? { jwks: keys } : {}),
    ...(env.TOKEN_REQUIRE_AT_JWT ? { requireAtJwtTyp: true } : {}),
    ...(env.TOKEN_GROUPS_CLAIM ? { groupsClaim: env.TOKEN_GROUPS_CLAIM } : {}),
    ...(env.TOKEN_INTROSPECTION_URI
      ? {
          introspection: {
            uri: env.TOKEN_INTROSPECTION_URI,
            clientId: env.TOKEN_INTROSPECTION_CLIENT_ID,
            clientSecret: env.TOKEN_INTROSPECTION_CLIENT_SECRET,
            timeoutMs: env.TOKEN_INTROSPECTION_TIMEOUT_MS,
          },
        }
      : {}),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name =
      { issuer: 'TOKEN_ISSUER', audience: 'TOKEN_AUDIENCE', jwksUri: 'TOKEN_JWKS_URI', jwks: 'TOKEN_JWKS' }[
        String(issue.path[0])
      ] ?? 'TOKEN_ISSUER';
    throw new ConfigError(`${name}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * An opaque token names no issuer, and a bearer token sent to an IdP that did not issue it is
 * disclosed to that IdP: the verifier sends each to exactly one issuer. That one is the issuer with
 * `opaqueTokens: true`, else the only introspecting issuer not saying `opaqueTokens: false`; a
 * configuration that chooses twice, or leaves the choice open between several, stops start-up here.
 * (The TOKEN_* issuer cannot say it: with a CONFIG_FILE issuer that introspects too, say it there.)
 */
function checkOpaqueTokenIssuer(fromEnv: TokenIssuerSettings | undefined, file: TokenIssuerSettings[]) {
  const named = [
    ...(fromEnv ? [{ issuer: fromEnv, where: 'TOKEN_ISSUER' }] : []),
    ...file.map((issuer, n) => ({ issuer, where: `CONFIG_FILE tokenIssuers[${n}]` })),
  ];
  const names = (entries: typeof named) =>
    entries.map(({ issuer, where }) => `${issuer.issuer} (${where})`).join(', ');
  const chosen = named.filter(({ issuer }) => issuer.opaqueTokens === true);
  if (chosen.length > 1)
    throw new ConfigError(
      `${chosen[1]!.where}.opaqueTokens: set on several issuers (${names(chosen)}); an opaque token is ` +
        'sent to exactly one issuer, so set opaqueTokens: true on one only',
    );
  if (chosen.length === 1) return;
  const open = named.filter(({ issuer }) => issuer.introspection && issuer.opaqueTokens !== false);
  if (open.length > 1)
    throw new ConfigError(
      `CONFIG_FILE tokenIssuers[].opaqueTokens: several issuers introspect (${names(open)}); an opaque ` +
        'token names no issuer and is sent to exactly one, so set opaqueTokens: true on the one whose ' +
        'opaque tokens are verified here (or opaqueTokens: false on all the others)',
    );
}

const TOKEN_SETTINGS_WITH_DEFAULTS = [
  'TOKEN_INTROSPECTION_TIMEOUT_MS',
  'TOKEN_REQUIRE_AT_JWT',
  'TOKEN_CACHE_MAX_TTL_SECONDS',
  'TOKEN_NEGATIVE_CACHE_SECONDS',
  'TOKEN_NEGATIVE_CACHE_MAX_ENTRIES',
  'TOKEN_WHEN_REDIS_DOWN',
];

/** The edge's OpenID Connect relying party, when OIDC_ISSUER is set: every setting it needs, checked. */
function oidcFromEnv(env: z.infer<typeof EnvSchema>): AppConfig['edge']['oidc'] {
  if (!env.OIDC_ISSUER) return undefined;
  for (const name of ['OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET', 'OIDC_REDIRECT_URI'] as const)
    if (!env[name]) throw new ConfigError(`${name}: required when OIDC_ISSUER is set`);
  if (!env.SESSION_TAG_SECRET)
    throw new ConfigError('SESSION_TAG_SECRET: required with OIDC_ISSUER (the login makes sessions)');
  if (!env.OIDC_SCOPES.split(/\s+/).includes('openid'))
    throw new ConfigError('OIDC_SCOPES: must include openid');
  if (env.EDGE_COOKIE_NAME?.startsWith('__Host-') && !env.EDGE_COOKIE_SECURE)
    throw new ConfigError('EDGE_COOKIE_NAME: a __Host- cookie must be Secure (EDGE_COOKIE_SECURE=true)');
  const { protocol, hostname } = new URL(env.OIDC_ISSUER);
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(hostname);
  if (protocol === 'http:' && !loopback && !env.ALLOW_HTTP_JWKS)
    throw new ConfigError(
      `OIDC_ISSUER: must be an https:// URL (http:// only to localhost, or set ALLOW_HTTP_JWKS=true), got ${env.OIDC_ISSUER}`,
    );
  return {
    issuer: env.OIDC_ISSUER,
    clientId: env.OIDC_CLIENT_ID!,
    clientSecret: env.OIDC_CLIENT_SECRET!,
    redirectUri: env.OIDC_REDIRECT_URI!,
    scopes: env.OIDC_SCOPES,
    groupsClaim: env.OIDC_GROUPS_CLAIM,
    ...(env.OIDC_POST_LOGOUT_REDIRECT_URI
      ? { postLogoutRedirectUri: env.OIDC_POST_LOGOUT_REDIRECT_URI }
      : {}),
    insecure: protocol === 'http:',
  };
}

/** TRUSTED_PROXIES: IP addresses and CIDR ranges, comma-separated; anything else stops start-up. */
function trustedProxies(raw: string | undefined): string[] {
  const entries = list(raw);
  for (const entry of entries) {
    const [address, bits, ...more] = entry.split('/');
    const family = isIP(address ?? '');
    const maxBits = family === 6 ? 128 : 32;
    const bitsOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= maxBits);
    if (family === 0 || !bitsOk || more.length > 0)
      throw new ConfigError(`TRUSTED_PROXIES: '${entry}' is not an IP address or CIDR range`);
  }
  return entries;
}

function issuerFromEnv(
  prefix: 'OIDC_BCL' | 'SSF' | 'ADMIN_JWT',
  env: z.infer<typeof EnvSchema>,
): JwtIssuerConfig | undefined {
  const issuer = env[`${prefix}_ISSUER`];
  const audience = env[`${prefix}_AUDIENCE`];
  const uri = env[`${prefix}_JWKS_URI`];
  const inline = env[`${prefix}_JWKS`];
  if (!issuer && !audience && !uri && !inline) return undefined;
  if (!issuer) throw new ConfigError(`${prefix}_ISSUER: required when ${prefix}_* settings are given`);
  if (!audience) throw new ConfigError(`${prefix}_AUDIENCE: required when ${prefix}_ISSUER is set`);
  if (Boolean(uri) === Boolean(inline))
    throw new ConfigError(`${prefix}_JWKS_URI / ${prefix}_JWKS: give exactly one of them`);
  let keys: unknown;
  if (inline) {
    try {
      keys = JSON.parse(inline);
    } catch {
      throw new ConfigError(`${prefix}_JWKS: not valid JSON`);
    }
  }
  const parsed = JwtIssuerSchema.safeParse({
    issuer,
    audience: audience.includes(',') ? list(audience) : audience,
    ...(uri ? { jwksUri: uri } : { jwks: keys }),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name =
      { issuer: 'ISSUER', audience: 'AUDIENCE', jwksUri: 'JWKS_URI' }[String(issue.path[0])] ?? 'JWKS';
    throw new ConfigError(`${prefix}_${name}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * The issuer from the environment and those of CONFIG_FILE, each `iss` once: tokens are matched to
 * their issuer's settings by `iss`, so a second entry for one would silently replace the first.
 */
function distinctIssuers(
  envName: string,
  fileKey: string,
  fromEnv: JwtIssuerConfig | undefined,
  fromFile: JwtIssuerConfig[],
): JwtIssuerConfig[] {
  const all = [...(fromEnv ? [fromEnv] : []), ...fromFile];
  const seen = new Set<string>();
  for (const { issuer } of all) {
    if (seen.has(issuer))
      throw new ConfigError(
        `${envName} / CONFIG_FILE ${fileKey}: issuer ${issuer} is configured twice; give it once, with every audience in one list`,
      );
    seen.add(issuer);
  }
  return all;
}

/**
 * Redis Cluster's rule: the tag is what lies between the first `{` and the first `}` after it, and
 * only if that is not empty (`{}{sr}` has none: the whole key is hashed).
 */
function hasHashTag(key: string): boolean {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1;
}

/** Parses the environment (and CONFIG_FILE) once. A bad value throws a ConfigError naming it. */
export function loadConfig(env: Record<string, string | undefined> = process.env): AppConfig {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success)
    throw new ConfigError(parsed.error.issues.map((i) => describeIssue(i, (p) => String(p[0]))).join('; '));
  const e = parsed.data;
  const file = e.CONFIG_FILE ? readConfigFile(e.CONFIG_FILE) : ConfigFileSchema.parse({});
  const bcl = issuerFromEnv('OIDC_BCL', e);
  const ssf = issuerFromEnv('SSF', e);
  const adminJwt = issuerFromEnv('ADMIN_JWT', e);
  const oidcIssuers = distinctIssuers('OIDC_BCL_ISSUER', 'oidcIssuers', bcl, file.oidcIssuers);
  const ssfTransmitters = distinctIssuers('SSF_ISSUER', 'ssfTransmitters', ssf, file.ssfTransmitters);
  const envTokenIssuer = tokenIssuerFromEnv(e);
  const tokenIssuers = [...(envTokenIssuer ? [envTokenIssuer] : []), ...file.tokenIssuers];
  const seenTokenIssuers = new Set<string>();
  for (const { issuer } of tokenIssuers) {
    if (seenTokenIssuers.has(issuer))
      throw new ConfigError(`TOKEN_ISSUER / CONFIG_FILE tokenIssuers: issuer ${issuer} is configured twice`);
    seenTokenIssuers.add(issuer);
  }
  checkOpaqueTokenIssuer(envTokenIssuer, file.tokenIssuers);
  if (tokenIssuers.length > 0 && !e.SESSION_TAG_SECRET)
    throw new ConfigError(
      'SESSION_TAG_SECRET: required with token issuers (the verifier caches tokens in the session store)',
    );
  if (!e.ALLOW_HTTP_JWKS)
    for (const [where, uri] of [
      ['OIDC_BCL_JWKS_URI', bcl?.jwksUri],
      ['SSF_JWKS_URI', ssf?.jwksUri],
      ['ADMIN_JWT_JWKS_URI', adminJwt?.jwksUri],
      ...file.oidcIssuers.map((i, n) => [`CONFIG_FILE oidcIssuers[${n}].jwksUri`, i.jwksUri] as const),
      ...file.ssfTransmitters.map(
        (i, n) => [`CONFIG_FILE ssfTransmitters[${n}].jwksUri`, i.jwksUri] as const,
      ),
      ['TOKEN_JWKS_URI', envTokenIssuer?.jwksUri],
      ...file.tokenIssuers.map((i, n) => [`CONFIG_FILE tokenIssuers[${n}].jwksUri`, i.jwksUri] as const),
      // The client secret goes to the introspection endpoint: the same rule as for keys.
      ['TOKEN_INTROSPECTION_URI', envTokenIssuer?.introspection?.uri],
      ...file.tokenIssuers.map(
        (i, n) => [`CONFIG_FILE tokenIssuers[${n}].introspection.uri`, i.introspection?.uri] as const,
      ),
    ] as [string, string | undefined][])
      checkJwksTransport(where, uri);
  const oidc = oidcFromEnv(e);
  if (e.HTTP_HEADERS_TIMEOUT_MS > e.HTTP_REQUEST_TIMEOUT_MS)
    throw new ConfigError('HTTP_HEADERS_TIMEOUT_MS: must not be longer than HTTP_REQUEST_TIMEOUT_MS');
  const envIds = list(e.PINGONE_ENVIRONMENT_IDS);
  const queueCluster =
    e.QUEUE_REDIS_CLUSTER === undefined
      ? e.QUEUE_REDIS_URL === undefined && e.REDIS_CLUSTER
      : e.QUEUE_REDIS_CLUSTER === 'true' || e.QUEUE_REDIS_CLUSTER === '1';
  // A back-channel logout or SET is accepted up to the dedup window less twice the skew after its iat
  // (so its replay always meets its mark): with such a source, that must leave some time.
  const jwtEvents = oidcIssuers.length + ssfTransmitters.length > 0;
  if (jwtEvents && e.DEDUP_WINDOW_SECONDS <= 2 * e.JWT_CLOCK_TOLERANCE_SECONDS)
    throw new ConfigError(
      `DEDUP_WINDOW_SECONDS: must be more than twice JWT_CLOCK_TOLERANCE_SECONDS (${e.JWT_CLOCK_TOLERANCE_SECONDS}), got ${e.DEDUP_WINDOW_SECONDS}`,
    );
  // BullMQ's scripts and the gateway's dedup reads touch several queue keys at once: on a cluster they
  // must share one slot, which only a hash tag in the prefix gives.
  if (queueCluster && !hasHashTag(e.QUEUE_PREFIX))
    throw new ConfigError(
      `QUEUE_PREFIX: on a Redis Cluster it needs a hash tag, like {sr}, so each queue's keys share a slot (got ${e.QUEUE_PREFIX})`,
    );
  return {
    port: e.PORT,
    workerPort: e.WORKER_PORT,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    redis: {
      url: e.REDIS_URL,
      cluster: e.REDIS_CLUSTER,
      clusterNodes: e.REDIS_CLUSTER_NODES ?? [],
      queueUrl: e.QUEUE_REDIS_URL ?? e.REDIS_URL,
      queueClusterNodes:
        e.QUEUE_REDIS_CLUSTER_NODES ?? (e.QUEUE_REDIS_URL === undefined ? (e.REDIS_CLUSTER_NODES ?? []) : []),
      queueCluster,
      queuePrefix: e.QUEUE_PREFIX,
      sessionPrefix: e.SESSION_PREFIX,
    },
    session: {
      ...(e.SESSION_TAG_SECRET ? { tagSecret: e.SESSION_TAG_SECRET } : {}),
      clockSkewMs: e.CLOCK_SKEW_MS,
    },
    pingone: {
      secrets: list(e.PINGONE_WEBHOOK_SECRET),
      authHeader: e.PINGONE_WEBHOOK_AUTH_HEADER.toLowerCase(),
      ...(envIds.length ? { environmentIds: new Set(envIds) } : {}),
      mapping: file.pingone.mapping ?? DEFAULT_PINGONE_MAPPING,
    },
    webhookBodyLimit: e.WEBHOOK_BODY_LIMIT,
    http: {
      jwtBodyLimit: e.JWT_WEBHOOK_BODY_LIMIT,
      adminBodyLimit: e.ADMIN_BODY_LIMIT,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      trustedProxies: trustedProxies(e.TRUSTED_PROXIES),
    },
    dedupWindowMs: e.DEDUP_WINDOW_SECONDS * 1000,
    jwtClockToleranceSec: e.JWT_CLOCK_TOLERANCE_SECONDS,
    oidcIssuers,
    ssfTransmitters,
    quarantineMaxEntries: e.QUARANTINE_MAX_ENTRIES,
    quarantineMaxBytes: e.QUARANTINE_MAX_BYTES,
    enqueueTimeoutMs: e.ENQUEUE_TIMEOUT_MS,
    enqueueWaitReplicas: e.ENQUEUE_WAIT_REPLICAS,
    revokeOnReceipt: e.REVOKE_ON_RECEIPT,
    enqueueOneScript: e.ENQUEUE_ONE_SCRIPT,
    jobs: {
      attempts: e.JOB_ATTEMPTS,
      backoffMs: e.JOB_BACKOFF_MS,
      completedMaxAgeSec: e.COMPLETED_JOBS_MAX_AGE_SECONDS,
      completedMaxCount: e.COMPLETED_JOBS_MAX_COUNT,
    },
    worker: {
      concurrency: e.WORKER_CONCURRENCY,
      shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
      lockDurationMs: e.LOCK_DURATION_MS,
      stalledIntervalMs: e.STALLED_INTERVAL_MS,
      sessionWaitReplicas: e.SESSION_WAIT_REPLICAS,
      sessionWaitTimeoutMs: e.SESSION_WAIT_TIMEOUT_MS,
      sweepEveryMs: e.SWEEP_EVERY_MS,
      sweepKeysPerRun: e.SWEEP_KEYS_PER_RUN,
      memoryWatchEveryMs: e.MEMORY_WATCH_EVERY_MS,
      memoryWarnFraction: e.MEMORY_WARN_FRACTION,
    },
    tokens: {
      issuers: tokenIssuers,
      maxTtlSeconds: e.TOKEN_CACHE_MAX_TTL_SECONDS,
      negativeTtlSeconds: e.TOKEN_NEGATIVE_CACHE_SECONDS,
      negativeMaxEntries: e.TOKEN_NEGATIVE_CACHE_MAX_ENTRIES,
      whenRedisDown: e.TOKEN_WHEN_REDIS_DOWN,
      introspectionClients: parseIntrospectionClients(e.INTROSPECTION_CLIENTS),
    },
    edge: {
      cookieName: e.EDGE_COOKIE_NAME ?? (e.EDGE_COOKIE_SECURE ? '__Host-session' : 'session'),
      cookieSecure: e.EDGE_COOKIE_SECURE,
      passAccessToken: e.EDGE_PASS_ACCESS_TOKEN,
      sessionTtlSeconds: e.EDGE_SESSION_TTL_SECONDS,
      ...(oidc ? { oidc } : {}),
    },
    auditMaxEntries: e.AUDIT_MAX_ENTRIES,
    allowEvictingQueueRedis: e.ALLOW_EVICTING_QUEUE_REDIS,
    embeddedWorker: e.EMBEDDED_WORKER,
    admin: {
      apiKeys: parseAdminKeys(e.ADMIN_API_KEYS, e.ADMIN_API_KEY),
      ...(adminJwt ? { jwtIssuer: adminJwt } : {}),
      rateLimitPerMinute: e.ADMIN_RATE_LIMIT_PER_MINUTE,
      authFailuresPerMinute: e.ADMIN_AUTH_FAILURES_PER_MINUTE,
      waitTimeoutMs: e.ADMIN_WAIT_TIMEOUT_MS,
    },
  };
}

/** loadConfig for a process's entry point: a bad setting prints the message naming it and exits 1. */
export function loadConfigOrExit(env: Record<string, string | undefined> = process.env): AppConfig {
  try {
    return loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`configuration error: ${err.message}`);
    process.exit(1);
  }
}
