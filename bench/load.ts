// The load the benches send: PingOne deliveries built from the repository's fixture, posted on
// kept-alive sockets, and calls run with a bounded number in flight.
import { readFileSync } from 'node:fs';
import { type Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { root } from './procs.js';

/** Runs fn(0..n-1) with `concurrency` calls in flight at any time. */
export async function pool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

/** Wall time of one call, in ms. */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

/**
 * A maker of PingOne MEMBER_OF_GROUP.CREATED events (test/fixtures/pingone/member-of-group-created.json)
 * with a given id and user, recordedAt = now; the user id sits in the resource href, as PingOne sends
 * it. Built by concatenating the fixture's text around three placeholders.
 */
export function pingOneEventMaker(): (eventId: string, userId: string) => string {
  const fixture = JSON.parse(
    readFileSync(join(root, 'test/fixtures/pingone/member-of-group-created.json'), 'utf8'),
  ) as { id: string; recordedAt: string; resources: { href: string }[] };
  fixture.id = '@@ID@@';
  fixture.recordedAt = '@@AT@@';
  const href = fixture.resources[0]!.href;
  fixture.resources[0]!.href = href.replace(
    /\/users\/[^/]+\/memberOfGroups\//,
    '/users/@@USER@@/memberOfGroups/',
  );
  if (fixture.resources[0]!.href === href) throw new Error('fixture href holds no user id');
  const parts = JSON.stringify(fixture).split(/@@(?:ID|AT|USER)@@/);
  if (parts.length !== 4) throw new Error('fixture layout changed');
  const [a, b, c, d] = parts as [string, string, string, string];
  return (eventId, userId) => `${a}${eventId}${b}${new Date().toISOString()}${c}${userId}${d}`;
}

/** One PingOne-style delivery on a kept-alive socket of `agent`: the HTTP status, 0 on no answer. */
export function postWebhook(agent: Agent, port: number, secret: string, body: string): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(
      {
        agent,
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/webhooks/pingone',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${secret}`,
          'content-length': String(Buffer.byteLength(body)),
        },
        timeout: 30_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}
