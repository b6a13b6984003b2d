import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { readFileSync } from 'node:fs';
import { type CreatedSession, SessionStore } from '#session-store';
import { startGateway, type TestGateway } from '../support/gateway.js';
import { waitForQueuesIdle } from '../support/queues.js';
import { REDIS_URL, uniquePrefix } from '../support/redis.js';
import { listenGateway, postPingOne } from '../support/reliability-http.js';
import { SessionKeys } from '../support/session-keys.js';
import { startWorker, type TestWorker } from '../support/worker.js';
import { QueueKeys } from '#revocation';

const SECRET = 'ordering-http-webhook-secret';
const TAG_SECRET = 'ordering-http-tag-secret-0123456789';
const SKEW = 1000;
const SEED = 20_261_127;
type Json = Record<string, unknown>;

// The fixture batch (alice USER.UPDATED enabled, bob MEMBER_OF_GROUP.CREATED, carol SESSION.DELETED,
// one ignored type, one FAILED), at its own fixed instants a week ago, plus events of our own around them.
const FIXTURE = JSON.parse(readFileSync('test/fixtures/pingone/batch-mixed.json', 'utf8')) as Json[];
const ALICE = '0b7e4d2a-9f31-4c8e-b5a6-1e2d3c4b5a69';
const BOB = '5d9a1c3e-2b4f-4a6d-8e0c-7f1a2b3c4d5e';
const CAROL = '9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4';
const CAROL_IDP = '6f5e4d3c-2b1a-4098-8765-43210fedcba9';
const [A, B, C] = FIXTURE.slice(0, 3).map((e) => Date.parse(e['recordedAt'] as string)) as [
  number,
  number,
  number,
];
const DAVE = 'ord-dave';
const ERIN = 'ord-erin';
const FRANK = 'ord-frank';
const CAROL_IDP_2 = 'ord-carol-idp-2';
const GROUP = 'ord-group-g';

const event = (id: string, at: number, type: string, resources: Json[], extra: Json = {}): Json => ({
  id,
  recordedAt: new Date(at).toISOString(),
  action: { type },
  resources,
  result: { status: 'SUCCESS' },
  ...extra,
});
const userRes = (id: string) => ({ type: 'USER', id });

const EXTRA: Json[] = [
  event('ord-ev-alice-locked', A - 30_000, 'USER.LOCKED', [userRes(ALICE)]),
  event('ord-ev-alice-reset', A + 60_000, 'PASSWORD.RESET', [userRes(ALICE)]),
  event('ord-ev-bob-role', B + 30_000, 'ROLE_ASSIGNMENT.CREATED', [userRes(BOB)]),
  event('ord-ev-carol-idp2', C + 40_000, 'SESSION.DELETED', [
    userRes(CAROL),
    { type: 'SESSION', id: CAROL_IDP_2 },
  ]),
  event('ord-ev-group-deleted', C + 20_000, 'GROUP.DELETED', [{ type: 'GROUP', id: GROUP }]),
  event('ord-ev-dave-locked', C + 50_000, 'USER.LOCKED', [userRes(DAVE)]),
  // A change of an attribute nobody watches: ignored.
  event('ord-ev-frank-name', C + 10_000, 'USER.UPDATED', [userRes(FRANK)], {
    _embedded: { modifiedAttributes: ['name'] },
  }),
];
const TEMPLATE = [...FIXTURE, ...EXTRA];
const COMMANDS = 9; // the 12 events of TEMPLATE less the three ignored ones

interface SessionSpec {
  label: string;
  userId: string;
  issuedAt: number;
  idpSessionId?: string;
  groups?: string[];
}

/** Sessions before, between and after the events of each user, including both sides of a cutoff. */
const SESSIONS: SessionSpec[] = [
  { label: 'alice@-60s', userId: ALICE, issuedAt: A - 60_000 },
  { label: 'alice@-10s', userId: ALICE, issuedAt: A - 10_000 },
  { label: 'alice@+30s', userId: ALICE, issuedAt: A + 30_000 },
  { label: 'alice@+90s', userId: ALICE, issuedAt: A + 90_000 },
  { label: 'bob@-5s', userId: BOB, issuedAt: B - 5_000 },
  { label: 'bob@+10s', userId: BOB, issuedAt: B + 10_000 },
  { label: 'bob@+31.000s', userId: BOB, issuedAt: B + 30_000 + SKEW },
  { label: 'bob@+31.001s', userId: BOB, issuedAt: B + 30_000 + SKEW + 1 },
  { label: 'carol@-20s/idp', userId: CAROL, issuedAt: C - 20_000, idpSessionId: CAROL_IDP },
  { label: 'carol@-20s', userId: CAROL, issuedAt: C - 20_000 },
  { label: 'carol@+5s/idp', userId: CAROL, issuedAt: C + 5_000, idpSessionId: CAROL_IDP },
  { label: 'carol@+10s/idp2', userId: CAROL, issuedAt: C + 10_000, idpSessionId: CAROL_IDP_2 },
  { label: 'carol@+45s/idp2', userId: CAROL, issuedAt: C + 45_000, idpSessionId: CAROL_IDP_2 },
  { label: 'dave@-100s/g', userId: DAVE, issuedAt: C - 100_000, groups: [GROUP] },
  { label: 'dave@+30s', userId: DAVE, issuedAt: C + 30_000 },
  { label: 'dave@+60s', userId: DAVE, issuedAt: C + 60_000 },
  { label: 'erin@-100s/g', userId: ERIN, issuedAt: C - 100_000, groups: [GROUP] },
  { label: 'erin@+10s', userId: ERIN, issuedAt: C + 10_000 },
  { label: 'erin@+25s/g', userId: ERIN, issuedAt: C + 25_000, groups: [GROUP] },
  { label: 'frank@-100s', userId: FRANK, issuedAt: C - 100_000 },
];

/** The design's answer: refused when an event covering it took effect at or after its issue (+ skew). */
function model(): Record<string, boolean> {
  const at = (id: string) => Date.parse(TEMPLATE.find((e) => e['id'] === id)!['recordedAt'] as string);
  const f = (n: number) => `e1000001-0000-4000-8000-00000000000${n}`;
  const userCuts: Record<string, number[]> = {
    [ALICE]: [at('ord-ev-alice-locked'), at(f(1)), at('ord-ev-alice-reset')],
    [BOB]: [at(f(2)), at('ord-ev-bob-role')],
    [DAVE]: [at('ord-ev-dave-locked')],
  };
  // A group event revokes every user holding a session with that group, all of that user's sessions.
  for (const member of new Set(SESSIONS.filter((s) => s.groups?.includes(GROUP)).map((s) => s.userId)))
    (userCuts[member] ??= []).push(at('ord-ev-group-deleted'));
  const idpCuts: Record<string, number> = { [CAROL_IDP]: at(f(3)), [CAROL_IDP_2]: at('ord-ev-carol-idp2') };
  return Object.fromEntries(
    SESSIONS.map((s) => {
      const cuts = [...(userCuts[s.userId] ?? []), ...(s.idpSessionId ? [idpCuts[s.idpSessionId]!] : [])];
      return [s.label, !cuts.some((cut) => s.issuedAt <= cut + SKEW)];
    }),
  );
}

/** Every id of the template and the sessions, renamed for one run, so runs share nothing in Redis. */
const RENAMED = [
  ...TEMPLATE.map((e) => e['id'] as string),
  ALICE,
  BOB,
  CAROL,
  CAROL_IDP,
  DAVE,
  ERIN,
  FRANK,
  CAROL_IDP_2,
  GROUP,
];
const rename = (text: string, run: string) =>
  RENAMED.reduce((t, id) => t.replaceAll(id, `${id}~${run}`), text);

interface Run {
  name: string;
  sessions: { spec: SessionSpec; created: CreatedSession }[];
  /** The events of this run, renamed. */
  events: Json[];
}

describe('out-of-order and replayed events through the HTTP gateway end where in-order delivery does', () => {
  let gw: TestGateway;
  let worker: TestWorker;
  let base: string;
  let redis: Redis;
  let keys: SessionKeys;
  let env: Record<string, string>;
  let inOrder: Run;
  let inOrderState: Record<string, boolean>;

  beforeAll(async () => {
    env = {
      QUEUE_PREFIX: `{${uniquePrefix('ordh-q')}}`,
      SESSION_PREFIX: uniquePrefix('ordh-s'),
      SESSION_TAG_SECRET: TAG_SECRET,
      PINGONE_WEBHOOK_SECRET: SECRET,
      CLOCK_SKEW_MS: String(SKEW),
      ENQUEUE_TIMEOUT_MS: '15000',
      // One job at a time, in queue order: the order of delivery is the order of execution.
      WORKER_CONCURRENCY: '1',
    };
    gw = await startGateway(env);
    base = await listenGateway(gw);
    worker = await startWorker(env);
    redis = new Redis(REDIS_URL);
    keys = new SessionKeys(
      new SessionStore({ redis, prefix: env['SESSION_PREFIX'], tagSecret: TAG_SECRET, clockSkewMs: SKEW }),
    );
  }, 30_000);

  afterAll(async () => {
    await worker?.close();
    await gw?.close();
    await keys?.delete(redis);
    redis?.disconnect();
  });

  async function prepare(name: string): Promise<Run> {
    const specs = JSON.parse(rename(JSON.stringify(SESSIONS), name)) as SessionSpec[];
    const sessions = await Promise.all(
      specs.map(async (spec) => ({ spec, created: await keys.create({ ...spec, ttlSeconds: 3600 }) })),
    );
    return { name, sessions, events: JSON.parse(rename(JSON.stringify(TEMPLATE), name)) as Json[] };
  }

  async function deliver(events: Json[]): Promise<{ enqueued: number; duplicates: number }> {
    const res = await postPingOne(base, SECRET, events);
    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: expect.anything() });
    return res.body as { enqueued: number; duplicates: number };
  }

  async function state(run: Run): Promise<Record<string, boolean>> {
    const label = (s: SessionSpec) => s.label.replace(`~${run.name}`, '');
    return Object.fromEntries(
      await Promise.all(
        run.sessions.map(
          async ({ spec, created }) =>
            [label(spec), (await keys.store.getSession(created.sessionId)) !== null] as const,
        ),
      ),
    );
  }

  /** The template event ids of a run in the order the worker executed them (first execution of each). */
  async function executed(run: Run): Promise<string[]> {
    const audit = await gw.redis.xrange(new QueueKeys(env['QUEUE_PREFIX']!).audit, '-', '+');
    const ids = audit
      .map(([, f]) => (JSON.parse(f[1]!) as { eventId: string }).eventId)
      .filter((id) => id.endsWith(`~${run.name}`))
      .map((id) => id.replace(`~${run.name}`, ''));
    return [...new Set(ids)];
  }

  beforeAll(async () => {
    inOrder = await prepare('inorder');
    const sorted = [...inOrder.events].sort(
      (a, b) => Date.parse(a['recordedAt'] as string) - Date.parse(b['recordedAt'] as string),
    );
    let enqueued = 0;
    for (const e of sorted) enqueued += (await deliver([e])).enqueued;
    expect(enqueued).toBe(COMMANDS);
    await waitForQueuesIdle([gw.queue], 30_000);
    inOrderState = await state(inOrder);
  }, 60_000);

  it('in order, one event per delivery, ends in the state the design predicts', async () => {
    expect(inOrderState).toEqual(model());
    // Spelled out: the survivors are the sessions issued after the last event covering them (+ skew).
    expect(SESSIONS.map((s) => s.label).filter((l) => inOrderState[l])).toEqual([
      'alice@+90s',
      'bob@+31.001s',
      'carol@-20s',
      'carol@+5s/idp',
      'carol@+45s/idp2',
      'dave@+60s',
      'erin@+25s/g',
      'frank@-100s',
    ]);
    expect(await gw.queue.getJobCountByTypes('failed')).toBe(0);
  });

  it('reversed, and shuffled into random batches delivered concurrently (one batch twice), ends the same', async () => {
    const orders = fc.sample(
      fc.tuple(
        fc.shuffledSubarray(TEMPLATE, { minLength: TEMPLATE.length, maxLength: TEMPLATE.length }),
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: TEMPLATE.length, maxLength: TEMPLATE.length }),
        fc.nat(),
      ),
      { numRuns: 4, seed: SEED },
    );
    const runs = await Promise.all([prepare('reversed'), ...orders.map((_, i) => prepare(`shuffle${i}`))]);
    const renamedOrder = (run: Run, order: Json[]) =>
      order.map((e) => run.events.find((r) => r['id'] === `${e['id'] as string}~${run.name}`)!);

    await deliver([...runs[0]!.events].reverse());
    await Promise.all(
      orders.map(async ([order, sizes, again], i) => {
        const run = runs[i + 1]!;
        const shuffled = renamedOrder(run, order);
        const batches: Json[][] = [];
        for (let at = 0, k = 0; at < shuffled.length; k++) {
          batches.push(shuffled.slice(at, at + sizes[k]!));
          at += sizes[k]!;
        }
        const answers = await Promise.all(batches.map((b) => deliver(b)));
        const redelivered = await deliver(batches[again % batches.length]!);
        expect(answers.reduce((n, a) => n + a.enqueued, 0)).toBe(COMMANDS);
        expect(redelivered.enqueued).toBe(0);
      }),
    );
    await waitForQueuesIdle([gw.queue], 30_000);
    expect(await gw.queue.getJobCountByTypes('failed')).toBe(0);

    const reference = await executed(inOrder);
    let reordered = 0;
    for (const run of runs) {
      const order = await executed(run);
      expect([...order].sort()).toEqual([...reference].sort());
      if (order.join() !== reference.join()) reordered++;
      expect({ run: run.name, state: await state(run) }).toEqual({ run: run.name, state: inOrderState });
    }
    // The shuffles really changed the order the worker applied the events in.
    expect(reordered).toBeGreaterThanOrEqual(runs.length - 1);
  }, 60_000);

  it('old events replayed after new logins (same ids: duplicates; new ids: re-run) kill nothing new', async () => {
    // Everyone logs in again now, including from the IdP sessions and the group that were revoked.
    const user = (id: string) => `${id}~${inOrder.name}`;
    const fresh = await Promise.all([
      keys.create({ userId: user(ALICE), ttlSeconds: 3600 }),
      keys.create({ userId: user(BOB), ttlSeconds: 3600 }),
      keys.create({ userId: user(CAROL), ttlSeconds: 3600, idpSessionId: user(CAROL_IDP) }),
      keys.create({ userId: user(CAROL), ttlSeconds: 3600, idpSessionId: user(CAROL_IDP_2) }),
      keys.create({ userId: user(DAVE), ttlSeconds: 3600, groups: [user(GROUP)] }),
      keys.create({ userId: user(ERIN), ttlSeconds: 3600, groups: [user(GROUP)] }),
      keys.create({ userId: user(FRANK), ttlSeconds: 3600 }),
    ]);

    // PingOne redelivers the whole history: the producer's dedup recognises every event.
    const again = await deliver(inOrder.events);
    expect(again).toMatchObject({ enqueued: 0, duplicates: COMMANDS });
    // The same history under new event ids (nothing the dedup can see), shuffled: every command runs again.
    const replay = fc
      .sample(
        fc.shuffledSubarray(inOrder.events, { minLength: TEMPLATE.length, maxLength: TEMPLATE.length }),
        { numRuns: 1, seed: SEED + 1 },
      )[0]!
      .map((e) => ({ ...e, id: `${e['id'] as string}-replay` }));
    const replayed = await deliver(replay);
    expect(replayed).toMatchObject({ enqueued: COMMANDS, duplicates: 0 });
    await waitForQueuesIdle([gw.queue], 30_000);
    expect(await gw.queue.getJobCountByTypes('failed')).toBe(0);

    const alive = await Promise.all(
      fresh.map(async (s) => (await keys.store.getSession(s.sessionId)) !== null),
    );
    expect(alive).toEqual(fresh.map(() => true));
    expect(await state(inOrder)).toEqual(inOrderState);
  }, 60_000);
});
