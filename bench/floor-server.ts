// The floor of the user-facing table in bench:e2e: a bare node:http server that takes a PingOne-style
// delivery and calls revokeUser straight on Redis (no Nest, no queue, no worker). Whatever the service
// adds on top of this is its own cost. Run by the bench as a child: PORT, REDIS_URL, SESSION_PREFIX,
// SESSION_TAG_SECRET and PINGONE_WEBHOOK_SECRET in its environment.
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { SessionStore } from '#session-store';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

const redis = new Redis(env('REDIS_URL'));
const store = new SessionStore({
  redis,
  prefix: env('SESSION_PREFIX'),
  tagSecret: env('SESSION_TAG_SECRET'),
  clockSkewMs: 0,
});
const authorization = `Bearer ${env('PINGONE_WEBHOOK_SECRET')}`;
/** The user of a MEMBER_OF_GROUP event sits in its resource's href. */
const USER_IN_HREF = /\/users\/([^/]+)\/memberOfGroups\//;

const server = createServer((req, res) => {
  if (req.url === '/health/ready') {
    res.writeHead(redis.status === 'ready' ? 200 : 503).end();
    return;
  }
  if (
    req.method !== 'POST' ||
    req.url !== '/webhooks/pingone' ||
    req.headers.authorization !== authorization
  ) {
    res.writeHead(401).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const userId = USER_IN_HREF.exec(Buffer.concat(chunks).toString('utf8'))?.[1];
    if (!userId) {
      res.writeHead(400).end();
      return;
    }
    store.revokeUser(userId).then(
      () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"enqueued":1}'),
      () => res.writeHead(503).end(),
    );
  });
});
server.keepAliveTimeout = 72_000;
server.listen(Number(env('PORT')), '127.0.0.1');
process.once('SIGTERM', () => {
  server.close();
  redis.disconnect();
  process.exit(0);
});
