import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { deletePrefix, REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

const ROOT = resolve('.');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

interface Ran {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects with its output when it fails. */
function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): Promise<Ran> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0
        ? resolvePromise({ stdout, stderr })
        : reject(new Error(`${command} ${args.join(' ')} exited ${code}\n${stdout}\n${stderr}`)),
    );
  });
}

/** The environment without what `npm test` exported (npm_config_*, npm_package_*): the scratch app's npm is its own. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  return { ...env, ...extra };
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path).map((f) => `${name}/${f}`) : [name];
  });
}

/** The version installed in the repository, so that the scratch install finds it in the npm cache. */
const versionOf = (name: string) =>
  (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string })
    .version;

const TSCONFIG = {
  compilerOptions: {
    target: 'es2023',
    lib: ['es2023'],
    module: 'nodenext',
    moduleResolution: 'nodenext',
    strict: true,
    // The packages' .d.ts are checked too, not taken on trust.
    skipLibCheck: false,
    noEmitOnError: true,
    types: ['node'],
    outDir: 'out',
  },
  files: ['consumer.ts'],
};

/** An application using the packages as installed: type-checked against their types, then run. */
const CONSUMER = `
import type { SessionData } from 'express-session';
import { Redis } from 'ioredis';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { InvalidArgumentError, SessionStore, type Session } from '@session-revoker/session-store';
import { ExpressSessionStore } from '@session-revoker/session-store/express';
import { LuaFolder } from '@session-revoker/session-store/lua';
import { TokenVerifier, type VerifyResult } from '@session-revoker/token-verifier';

declare module 'express-session' {
  interface SessionData {
    userId: string;
  }
}

const redis = new Redis(process.env['REDIS_URL']!, { maxRetriesPerRequest: 1 });
const prefix = process.env['PREFIX']!;
const store = new SessionStore({ redis, prefix, tagSecret: 'packages-tag-secret-0123456789' });

// The published types are real types, not any: each misuse must be refused (never run).
export function misuses() {
  // @ts-expect-error userId is a string
  void store.createSession({ userId: 42, ttlSeconds: 60 });
  // @ts-expect-error the token verifier needs a store
  void new TokenVerifier({ issuers: [] });
  // @ts-expect-error only the declared entry points exist
  void import('@session-revoker/session-store/dist/keys.js');
}

// Log in, read, revoke.
const login = await store.createSession({ userId: 'alice', ttlSeconds: 60, claims: { name: 'Alice' } });
const read: Session | null = await store.getSession(login.sessionId);
const revoked = await store.revokeUser('alice');
const afterRevoke = await store.getSession(login.sessionId);
const badInput = await store.createSession({ userId: '', ttlSeconds: 60 }).then(
  () => 'accepted',
  (err: unknown) => (err instanceof InvalidArgumentError ? 'InvalidArgumentError' : String(err)),
);

// express-session: set, get, then the user's revocation logs that browser out too.
const express = new ExpressSessionStore({ store });
const call = <T>(fn: (cb: (err?: unknown, value?: T) => void) => void) =>
  new Promise<T | undefined>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
const sid = 'express-sid-0123456789';
const data = { cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) }, userId: 'bob' };
await call<void>((cb) => express.set(sid, data as unknown as SessionData, cb));
const expressRead = await call<SessionData | null>((cb) => express.get(sid, cb));
await store.revokeUser('bob');
const expressAfterRevoke = await call<SessionData | null>((cb) => express.get(sid, cb));

// The Lua loader's entry point.
const lua = new LuaFolder(new URL('./', import.meta.url));
const expanded = lua.expand('--#include part\\nreturn 1\\n', 'inline.lua', () => 'local x = 1');

// The token verifier, with an inline JWKS issuer and a JWT signed with jose.
const { privateKey, publicKey } = await generateKeyPair('ES256');
const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
const issuer = 'https://issuer.packages.example';
const verifier = new TokenVerifier({ store, issuers: [{ issuer, audience: 'api', jwks: { keys: [jwk] } }] });
const jwt = await new SignJWT({ scope: 'api:read' })
  .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
  .setIssuer(issuer)
  .setAudience('api')
  .setSubject('carol')
  .setIssuedAt()
  .setExpirationTime('5m')
  .sign(privateKey);
const first: VerifyResult = await verifier.verify(jwt);
const second = await verifier.verify(jwt);
await store.revokeUser('carol');
const afterRevokeUser = await verifier.verify(jwt);

// At runtime too, only the declared entry points are importable.
const deep = await import('@session-revoker/session-store/dist/keys.js' as string).then(
  () => 'imported',
  (err: NodeJS.ErrnoException) => err.code,
);

await redis.quit();
console.log(
  JSON.stringify({
    read,
    revoked: revoked.revoked,
    afterRevoke,
    badInput,
    expressRead,
    expressAfterRevoke,
    expanded,
    first: first.active ? { active: true, userId: first.userId, source: first.source } : first,
    second: second.active ? { active: true, source: second.source } : second,
    afterRevokeUser,
    deep,
  }),
);
`;

/** `npm run pack:libs`' script, then the tarballs installed into an application outside the repository. */
describe('the libraries as npm packages', () => {
  const prefix = uniquePrefix('packages');
  const redis = testRedis();
  let scratch: string;
  let packages: string;
  const tarball = (dir: string) => {
    const found = readdirSync(packages).filter((f) => f.startsWith(`session-revoker-${dir}-`));
    expect(found).toHaveLength(1);
    return join(packages, found[0]!);
  };

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'sr-packages-'));
    expect(relative(ROOT, scratch).startsWith('..')).toBe(true);
    packages = join(scratch, 'packages');
    // Into the scratch directory, not dist/packages: a run of `npm run pack:libs` stays as it was.
    await run(process.execPath, ['scripts/pack-libs.mjs', '--out', packages], { cwd: ROOT });
  }, 120_000);

  afterAll(async () => {
    await deletePrefix(redis, prefix);
    redis.disconnect();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('packs each library as ESM with its types, its Lua, a README and a LICENSE, and nothing else', async () => {
    const listed = async (dir: string) =>
      (await run('tar', ['-tzf', tarball(dir)], { cwd: scratch })).stdout
        .split('\n')
        .filter(Boolean)
        .map((f) => f.replace(/^package\//, ''))
        .sort();
    const luaSources = files('libs/session-store/src').filter((f) => f.endsWith('.lua'));
    expect(luaSources.some((f) => f.startsWith('lua/include/'))).toBe(true);

    const store = await listed('session-store');
    expect(store).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json']));
    expect(store).toEqual(expect.arrayContaining(luaSources.map((f) => `dist/${f}`)));
    for (const entry of ['index', 'express-session-store', 'lua'])
      expect(store).toEqual(expect.arrayContaining([`dist/${entry}.js`, `dist/${entry}.d.ts`]));
    const verifier = await listed('token-verifier');
    expect(verifier).toEqual(
      expect.arrayContaining(['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts']),
    );
    for (const file of [...store, ...verifier])
      expect(file).toMatch(/^(LICENSE|README\.md|package\.json|dist\/.+(\.js|\.d\.ts|\.lua))$/);
    expect([...store, ...verifier].filter((f) => /spec|\.map$|(?<!\.d)\.ts$/.test(f))).toEqual([]);

    const manifest = (dir: string) =>
      JSON.parse(readFileSync(join(packages, dir, 'package.json'), 'utf8')) as Record<string, unknown>;
    const storePackage = manifest('session-store');
    const libVersion = (dir: string) =>
      (JSON.parse(readFileSync(`libs/${dir}/package.json`, 'utf8')) as { version: string }).version;
    expect(storePackage).toMatchObject({
      name: '@session-revoker/session-store',
      version: libVersion('session-store'),
      type: 'module',
      license: 'MIT',
      engines: { node: '>=20.19' },
      exports: {
        '.': { types: './dist/index.d.ts', import: './dist/index.js' },
        './express': {
          types: './dist/express-session-store.d.ts',
          import: './dist/express-session-store.js',
        },
        './lua': { types: './dist/lua.d.ts', import: './dist/lua.js' },
      },
      peerDependencies: { ioredis: expect.any(String), 'express-session': expect.any(String) },
      peerDependenciesMeta: { 'express-session': { optional: true } },
    });
    expect(storePackage).not.toHaveProperty('dependencies');
    expect(manifest('token-verifier')).toMatchObject({
      name: '@session-revoker/token-verifier',
      version: libVersion('token-verifier'),
      type: 'module',
      engines: { node: '>=20.19' },
      exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js' } },
      imports: { '#session-store': '@session-revoker/session-store' },
      peerDependencies: {
        ioredis: expect.any(String),
        jose: expect.any(String),
        '@session-revoker/session-store': `^${libVersion('session-store')}`,
      },
    });
  });

  it('installs into an application that type-checks against the published types and runs on Redis', async () => {
    const app = join(scratch, 'app');
    mkdirSync(app);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'packages-consumer', private: true, type: 'module' }),
    );
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(TSCONFIG));
    writeFileSync(join(app, 'consumer.ts'), CONSUMER);
    const env = cleanEnv();
    const registry = ['ioredis', 'jose', 'express-session', '@types/express-session', '@types/node'].map(
      (name) => `${name}@${versionOf(name)}`,
    );
    // The npm cache first, the registry only for what it lacks.
    await run(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        tarball('session-store'),
        tarball('token-verifier'),
        ...registry,
      ],
      { cwd: app, env },
    );

    await run(process.execPath, [TSC, '-p', '.'], { cwd: app, env });
    const { stdout } = await run(process.execPath, ['out/consumer.js'], {
      cwd: app,
      env: { ...env, REDIS_URL, PREFIX: prefix },
    });
    const result = JSON.parse(stdout) as Record<string, unknown>;
    expect(result).toEqual({
      read: expect.objectContaining({ userId: 'alice', claims: { name: 'Alice' } }),
      revoked: 1,
      afterRevoke: null,
      badInput: 'InvalidArgumentError',
      expressRead: expect.objectContaining({ userId: 'bob' }),
      expressAfterRevoke: null,
      expanded: 'local x = 1\nreturn 1\n',
      first: { active: true, userId: 'carol', source: 'jwt' },
      second: { active: true, source: 'cache' },
      afterRevokeUser: { active: false, reason: 'revoked' },
      deep: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
    });
  }, 240_000);
});
