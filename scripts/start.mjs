// `npm start`: the whole service in one process (gateway + embedded worker), ready on a fresh machine.
// With REDIS_URL unset and nothing on 127.0.0.1:6379, it starts a throw-away redis-server on a free port
// (stopped on exit). Secrets that are not configured are generated for this run and printed once.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';

const env = { ...process.env };
const children = [];
let stopping = false;

/**
 * Stops the service, then its Redis, then exits: the worker finishes its jobs against a Redis that
 * is still there (killing both at once left it waiting out its grace period against a dead Redis, and
 * outliving this launcher). Each child gets SIGTERM and, if still running after 30 s, SIGKILL.
 */
async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const child of [...children].reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
  process.exit(code);
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => void stop(0));

/** True when something answers PING on host:port. */
function redisAnswers(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host }, () => socket.write('PING\r\n'));
    socket.setTimeout(1000, () => (socket.destroy(), resolve(false)));
    socket.once('data', (d) => (socket.destroy(), resolve(d.toString().startsWith('+PONG'))));
    socket.once('error', () => resolve(false));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Where to look for a local Redis when REDIS_URL is unset (a knob for the launcher's own test).
const localPort = Number(env.START_LOCAL_REDIS_PORT ?? 6379);

async function ensureRedis() {
  if (env.REDIS_URL) return `REDIS_URL=${env.REDIS_URL}`;
  if (await redisAnswers(localPort)) {
    env.REDIS_URL = `redis://127.0.0.1:${localPort}`;
    return `the Redis on 127.0.0.1:${localPort}`;
  }
  if (spawnSync('redis-server', ['--version']).error) {
    console.error(
      'No Redis: REDIS_URL is not set, nothing answers on 127.0.0.1:6379 and redis-server is not installed.\n' +
        'Install Redis 7 (Debian/Ubuntu: `sudo apt-get install redis-server`, macOS: `brew install redis`)\n' +
        'or point REDIS_URL at one (redis://host:port).',
    );
    process.exit(1);
  }
  const port = await freePort();
  const redis = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--maxmemory-policy',
      'noeviction',
    ],
    // Its own process group: Ctrl-C in the terminal reaches the service and this launcher, which
    // stops the Redis once the service is done with it.
    { stdio: 'ignore', detached: true },
  );
  children.push(redis);
  redis.once('exit', () => void stop(1));
  for (let i = 0; i < 100 && !(await redisAnswers(port)); i++) await new Promise((r) => setTimeout(r, 50));
  env.REDIS_URL = `redis://127.0.0.1:${port}`;
  return `a local redis-server on port ${port} (stopped when this exits)`;
}

const generated = [];
function secret(name, bytes = 24) {
  if (env[name]) return;
  env[name] = randomBytes(bytes).toString('base64url');
  generated.push(name);
}

const redisNote = await ensureRedis();
if (!env.ADMIN_API_KEY && !env.ADMIN_API_KEYS) secret('ADMIN_API_KEY');
secret('SESSION_TAG_SECRET');
secret('PINGONE_WEBHOOK_SECRET');
const port = Number(env.PORT ?? 3000);
env.PORT = String(port);

const gateway = spawn(process.execPath, ['dist/apps/gateway/src/main.js'], { env, stdio: 'inherit' });
children.push(gateway);
gateway.once('exit', (code) => void stop(code ?? 1));

const base = `http://localhost:${port}`;
for (let i = 0; i < 200; i++) {
  const live = await fetch(`${base}/health/live`).then(
    (r) => r.ok,
    () => false,
  );
  if (live) break;
  await new Promise((r) => setTimeout(r, 100));
}

// For `npm run demo`: where the service is and the secrets of this run (the folder is git-ignored).
const runDir = env.START_RUN_DIR ?? '.session-revoker';
mkdirSync(runDir, { recursive: true });
writeFileSync(
  `${runDir}/run.json`,
  JSON.stringify(
    {
      baseUrl: base,
      redisUrl: env.REDIS_URL,
      sessionPrefix: env.SESSION_PREFIX ?? 'sr',
      sessionTagSecret: env.SESSION_TAG_SECRET,
      webhookSecret: env.PINGONE_WEBHOOK_SECRET?.split(',')[0],
      adminApiKey: env.ADMIN_API_KEY,
    },
    null,
    2,
  ),
  { mode: 0o600 },
);

console.log(`
Session Revoker is running (gateway + worker), using ${redisNote}.

  PingOne webhook        POST ${base}/webhooks/pingone          (Authorization: Bearer <PINGONE_WEBHOOK_SECRET>)
  Back-channel logout    POST ${base}/webhooks/oidc/backchannel-logout
  Shared Signals (SSF)   POST ${base}/webhooks/ssf
  Admin API              ${base}/admin/...                       (Authorization: Bearer <ADMIN_API_KEY>)
  Queue dashboard        ${base}/admin/queues                    (any user name, ADMIN_API_KEY as password)
  API docs               ${base}/docs
  Metrics                ${base}/metrics
  Health                 ${base}/health/live  ${base}/health/ready
`);
if (generated.length) {
  console.log('Generated for this run (set them in the environment to keep them):');
  for (const name of generated) console.log(`  ${name}=${env[name]}`);
  console.log('');
}
console.log('Try `npm run demo` in another terminal. Ctrl-C stops everything.');
