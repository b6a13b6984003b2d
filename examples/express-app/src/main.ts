import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createApp } from './app.js';

const env = process.env;
function fail(message: string): never {
  console.error(`example app failed to start: ${message}`);
  process.exit(1);
}

const required = {
  SESSION_TAG_SECRET: 'the same value as the revocation service',
  OIDC_ISSUER: 'the OpenID Provider, e.g. https://auth.pingone.com/<environment id>/as',
  OIDC_CLIENT_ID: "this app's client id at the OpenID Provider",
  OIDC_CLIENT_SECRET: "this app's client secret at the OpenID Provider",
};
const missing = Object.entries(required).filter(([name]) => !env[name]);
if (missing.length > 0)
  fail(`missing environment variables:${missing.map(([name, what]) => `\n  ${name}: ${what}`).join('')}`);

const port = Number(env['PORT'] || 3002);
const cookieSecret = env['COOKIE_SECRET'] || randomBytes(32).toString('base64url');
if (!env['COOKIE_SECRET'])
  console.warn('COOKIE_SECRET not set: using a random one (sessions end on restart)');

const redis = new Redis(env['REDIS_URL'] || 'redis://127.0.0.1:6379');
redis.on('error', (err: Error) => console.error(`redis: ${err.message}`));

let app: ReturnType<typeof createApp>;
try {
  app = createApp({
    redis,
    prefix: env['SESSION_PREFIX'] || 'sr',
    tagSecret: env['SESSION_TAG_SECRET']!,
    cookieSecret,
    oidc: {
      issuer: env['OIDC_ISSUER']!,
      clientId: env['OIDC_CLIENT_ID']!,
      clientSecret: env['OIDC_CLIENT_SECRET']!,
      redirectUri: env['OIDC_REDIRECT_URI'] || `http://localhost:${port}/callback`,
      ...(env['OIDC_POST_LOGOUT_REDIRECT_URI']
        ? { postLogoutRedirectUri: env['OIDC_POST_LOGOUT_REDIRECT_URI'] }
        : {}),
      ...(env['OIDC_SCOPES'] ? { scopes: env['OIDC_SCOPES'] } : {}),
    },
  });
} catch (err) {
  // e.g. an http:// issuer off loopback, a tag secret under 16 characters or a bad prefix
  redis.disconnect();
  fail(err instanceof Error ? err.message : String(err));
}
const server = app.listen(port, () => console.log(`example app listening on http://localhost:${port}`));
server.on('error', (err) => fail(err.message));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close(() => void redis.quit().finally(() => process.exit(0)));
    server.closeAllConnections();
  });
}
