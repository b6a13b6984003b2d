// `npm run demo`, against a service started with `npm start`: creates sessions for the users of the
// sample PingOne batch, posts the batch, and shows each user's sessions before and after, with the
// time from the webhook being accepted to each revoked session becoming unreadable.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { SessionStore, type CreatedSession } from '#session-store';

interface RunFile {
  baseUrl: string;
  redisUrl: string;
  sessionPrefix: string;
  sessionTagSecret: string;
  webhookSecret: string;
}

const USERS = {
  alice: '0b7e4d2a-9f31-4c8e-b5a6-1e2d3c4b5a69',
  bob: '5d9a1c3e-2b4f-4a6d-8e0c-7f1a2b3c4d5e',
  carol: '9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4',
};
const CAROL_PING_SESSION = '6f5e4d3c-2b1a-4098-8765-43210fedcba9';

async function main(): Promise<void> {
  if (!existsSync('.session-revoker/run.json')) {
    console.error('No running service found: start it with `npm start` in another terminal first.');
    process.exit(1);
  }
  const run = JSON.parse(readFileSync('.session-revoker/run.json', 'utf8')) as RunFile;
  const redis = new Redis(run.redisUrl);
  const store = new SessionStore({ redis, prefix: run.sessionPrefix, tagSecret: run.sessionTagSecret });

  // Logins as an application would make them (carol twice: once from the PingOne session the batch ends).
  const sessions: { user: string; label: string; session: CreatedSession }[] = [];
  const login = async (user: keyof typeof USERS, label: string, idpSessionId?: string) =>
    sessions.push({
      user,
      label,
      session: await store.createSession({
        userId: USERS[user],
        ttlSeconds: 3600,
        ...(idpSessionId ? { idpSessionId } : {}),
      }),
    });
  await login('alice', 'laptop');
  await login('alice', 'phone');
  await login('bob', 'laptop');
  await login('carol', 'from PingOne session 6f5e4d3c', CAROL_PING_SESSION);
  await login('carol', 'another device');

  const show = async (title: string) => {
    console.log(`\n${title}`);
    for (const { user, label, session } of sessions) {
      const alive = (await store.getSession(session.sessionId)) !== null;
      console.log(`  ${user.padEnd(6)} ${label.padEnd(30)} ${alive ? 'live' : 'REVOKED'}`);
    }
  };
  await show('Before the PingOne batch:');

  // The sample batch, with fresh ids and event times of now (a revocation takes effect at the event's time).
  const now = new Date().toISOString();
  const events = (
    JSON.parse(readFileSync(new URL('./batch-mixed.json', import.meta.url), 'utf8')) as Record<
      string,
      unknown
    >[]
  ).map((e) => ({ ...e, id: randomUUID(), recordedAt: now }));
  const response = await fetch(`${run.baseUrl}/webhooks/pingone`, {
    method: 'POST',
    headers: { authorization: `Bearer ${run.webhookSecret}`, 'content-type': 'application/json' },
    body: JSON.stringify(events),
  });
  const accepted = performance.now();
  console.log(`\nPOST /webhooks/pingone -> ${response.status} ${JSON.stringify(await response.json())}`);

  const expectedRevoked = sessions.filter((s) => s.user !== 'carol' || s.label.startsWith('from'));
  const latencies: string[] = [];
  await Promise.all(
    expectedRevoked.map(async ({ user, label, session }) => {
      const deadline = accepted + 10_000;
      while ((await store.getSession(session.sessionId)) !== null && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 1));
      }
      latencies.push(
        `  ${user.padEnd(6)} ${label.padEnd(30)} unreadable ${(performance.now() - accepted).toFixed(1)} ms after the 200`,
      );
    }),
  );
  await show('After:');
  console.log('\nWebhook accepted -> session unreadable:');
  for (const line of latencies.sort()) console.log(line);
  redis.disconnect();
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
