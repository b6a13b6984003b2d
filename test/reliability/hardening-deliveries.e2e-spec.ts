import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { QueueKeys } from '#revocation';
import { type ServiceProcess, spawnService } from '../support/cluster-processes.js';
import { deletePrefix, freePorts, testRedis, uniquePrefix, waitFor } from '../support/redis.js';
import { postPingOne } from '../support/reliability-http.js';

/**
 * Findings 1 and 2 of the black-box attack, against the built gateway in its own process (as an
 * attacker meets it): one authenticated delivery of millions of junk items, and slow or unfinished
 * bodies, authenticated or not.
 */
const SECRET = 'hardening-secret-0123456789';
const REQUEST_TIMEOUT_MS = 2000;
const HEADERS_TIMEOUT_MS = 1000;

/** What a raw connection saw: the answer's first line (if any), and whether the server closed it. */
interface RawOutcome {
  statusLine: string | undefined;
  closedByServer: boolean;
  /** Bytes of the body we had written when the answer came (or the connection closed). */
  bodyBytesSent: number;
}

/**
 * Sends `head` (request line and headers) and then the body one byte every `everyMs`, never finishing
 * it, until the server answers or closes the connection, or `giveUpMs` passes (then we close it).
 */
function dribble(port: number, head: string, everyMs: number, giveUpMs: number): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    let answer = '';
    let sent = 0;
    let done = false;
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearInterval(ticker);
      clearTimeout(giveUp);
      socket.destroy();
      resolve({
        statusLine: answer ? answer.split('\r\n')[0] : undefined,
        closedByServer,
        bodyBytesSent: sent,
      });
    };
    const ticker = setInterval(() => {
      if (socket.writable) {
        socket.write('x');
        sent += 1;
      }
    }, everyMs);
    const giveUp = setTimeout(() => finish(false), giveUpMs);
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.write(head);
  });
}

const pingOneHead = (length: number, authorization?: string) =>
  'POST /webhooks/pingone HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
  (authorization ? `Authorization: ${authorization}\r\n` : '') +
  `Content-Length: ${length}\r\n\r\n`;

describe('hardening: deliveries that used to kill or hold the gateway', () => {
  const prefix = `{${uniquePrefix('harden')}}`;
  const keys = new QueueKeys(prefix);
  let redis: Redis;
  let gateway: ServiceProcess;

  beforeAll(async () => {
    redis = testRedis();
    const [port] = (await freePorts(1)) as [number];
    gateway = await spawnService('gateway', port, {
      REDIS_URL: 'redis://127.0.0.1:6379',
      QUEUE_PREFIX: prefix,
      SESSION_PREFIX: `${uniquePrefix('harden-s')}`,
      PINGONE_WEBHOOK_SECRET: SECRET,
      HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      ADMIN_API_KEY: 'hardening-admin-key-0123456789',
    });
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop();
    await deletePrefix(redis, prefix);
    redis.disconnect();
  });

  it('answers a delivery of 2.6M non-object items 200 with its counts, as one quarantine entry, and stays live meanwhile', async () => {
    // An earlier quarantined delivery, which the big one must not push out.
    const earlier = await postPingOne(gateway.url, SECRET, '{"not":"events"}');
    expect(earlier.status).toBe(200);

    const items = 2_600_000;
    const body = `[${'0,'.repeat(items - 1)}0]`;
    expect(body.length).toBeLessThan(5 * 1024 * 1024);

    // Other requests meanwhile: a health probe every 25 ms until the delivery is answered.
    let delivering = true;
    const probes: number[] = [];
    const probing = (async () => {
      while (delivering) {
        const res = await fetch(`${gateway.url}/health/live`, { signal: AbortSignal.timeout(10_000) }).catch(
          () => undefined,
        );
        probes.push(res?.status ?? 0);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const started = Date.now();
    const res = await postPingOne(gateway.url, SECRET, body, 60_000);
    const answeredMs = Date.now() - started;
    delivering = false;
    await probing;

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ received: items, enqueued: 0, duplicates: 0, ignored: 0, quarantined: items });
    expect(probes.length).toBeGreaterThan(0);
    expect(probes.filter((s) => s !== 200)).toEqual([]);
    expect(gateway.exitCode()).toBeNull();

    const entries = await redis.xrevrange(keys.quarantine, '+', '-');
    expect(entries).toHaveLength(2);
    const fields = (i: number) => {
      const f = entries[i]![1];
      return Object.fromEntries(f.flatMap((v, n) => (n % 2 === 0 ? [[v, f[n + 1]]] : [])));
    };
    expect(fields(0)).toMatchObject({
      source: 'pingone',
      events: String(items),
      reason: `${items} events not understood: event is not an object (${items})`,
    });
    expect(fields(1)).toMatchObject({ reason: 'no PingOne events found in the body', events: '1' });

    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    const rss = Number(/^process_resident_memory_bytes (\d+)/m.exec(metrics)?.[1] ?? 0);
    console.log(
      `2.6M-item delivery: answered in ${answeredMs} ms, ${probes.length} probes, RSS after ${rss >> 20} MiB`,
    );
  }, 90_000);

  it('closes a connection whose authenticated body dribbles in, at HTTP_REQUEST_TIMEOUT_MS (408)', async () => {
    const outcome = await dribble(gateway.port, pingOneHead(1000, `Bearer ${SECRET}`), 200, 15_000);
    expect(outcome.closedByServer).toBe(true);
    expect(outcome.statusLine).toBe('HTTP/1.1 408 Request Timeout');
    // Well before the 1,000 bytes it announced.
    expect(outcome.bodyBytesSent).toBeLessThan(1000);
  }, 20_000);

  it('closes a connection whose headers never end, at HTTP_HEADERS_TIMEOUT_MS', async () => {
    const outcome = await dribble(
      gateway.port,
      'POST /webhooks/pingone HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ',
      200,
      15_000,
    );
    expect(outcome.closedByServer).toBe(true);
  }, 20_000);

  it.each([
    ['no credentials', undefined],
    ['a wrong secret', 'Bearer wrong-secret'],
  ])(
    'refuses a PingOne delivery with %s from its headers, before reading its 5 MB body, and closes the connection',
    async (_name, authorization) => {
      // 5 MB announced, one byte sent every 100 ms: the answer must not wait for the body.
      const outcome = await dribble(
        gateway.port,
        pingOneHead(5 * 1024 * 1024 - 1, authorization),
        100,
        15_000,
      );
      expect(outcome.statusLine).toBe('HTTP/1.1 401 Unauthorized');
      expect(outcome.closedByServer).toBe(true);
      expect(outcome.bodyBytesSent).toBeLessThan(1000);
    },
    20_000,
  );

  it.each([
    ['/webhooks/oidc/backchannel-logout', 'application/x-www-form-urlencoded'],
    ['/webhooks/ssf', 'application/secevent+jwt'],
    ['/admin/users/u-1/revoke', 'application/json'],
  ])('refuses a body over its route’s limit (64kb) on %s with 413', async (path, contentType) => {
    const res = await fetch(`${gateway.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': contentType, authorization: 'Bearer hardening-admin-key-0123456789' },
      body: 'x'.repeat(65 * 1024),
    });
    expect(res.status).toBe(413);
    // PingOne's route still takes megabytes (the 2.6M-item delivery above).
  });

  it('is still serving after all of it', async () => {
    await waitFor(
      async () => (await fetch(`${gateway.url}/health/live`)).status === 200,
      'the gateway to answer',
      5000,
    );
    expect(gateway.exitCode()).toBeNull();
  });
});
