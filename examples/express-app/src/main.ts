import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createApp } from './app.js';

const env = process.env;
const tagSecret = env['SESSION_TAG_SECRET'];
if (!tagSecret) {
  console.error('SESSION_TAG_SECRET is required: the same value as the revocation service');
  process.exit(1);
}
const cookieSecret = env['COOKIE_SECRET'] || randomBytes(32).toString('base64url');
if (!env['COOKIE_SECRET'])
  console.warn('COOKIE_SECRET not set: using a random one (sessions end on restart)');
const port = Number(env['PORT'] || 3002);
const redis = new Redis(env['REDIS_URL'] || 'redis://127.0.0.1:6379');
redis.on('error', (err: Error) => console.error(`redis: ${err.message}`));

let app: ReturnType<typeof createApp>;
try {
  app = createApp({ redis, prefix: env['SESSION_PREFIX'] || 'sr', tagSecret, cookieSecret });
} catch (err) {
  // e.g. a tag secret under 16 characters or a bad prefix (InvalidArgumentError)
  console.error(`example app failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
const server = app.listen(port, () => console.log(`example app listening on http://localhost:${port}`));
server.on('error', (err) => {
  console.error(`example app failed to start: ${err.message}`);
  process.exit(1);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close(() => void redis.quit().finally(() => process.exit(0)));
    server.closeAllConnections();
  });
}
