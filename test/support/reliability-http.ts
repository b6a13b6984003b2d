import type { AddressInfo } from 'node:net';
import type { TestGateway } from './gateway.js';

/** Makes a test gateway listen on a spare port of 127.0.0.1 (real HTTP, keep-alive); returns its base URL. */
export async function listenGateway(gw: TestGateway): Promise<string> {
  await gw.app.listen(0, '127.0.0.1');
  const { port } = gw.app.getHttpServer().address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

export interface Delivery {
  /** The HTTP status, or 0 when no answer came (connection error or client timeout). */
  status: number;
  retryAfter?: string;
  body: Record<string, unknown> | string;
  /** Date.now() when the answer (or the failure) arrived. */
  at: number;
  ms: number;
}

/** One PingOne webhook delivery, as PingOne sends it (Bearer secret, JSON body). Never throws. */
export async function postPingOne(
  base: string,
  secret: string,
  body: unknown,
  timeoutMs = 15_000,
): Promise<Delivery> {
  const started = Date.now();
  try {
    const res = await fetch(`${base}/webhooks/pingone`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let parsed: Record<string, unknown> | string = text;
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // not JSON: keep the text
    }
    const retryAfter = res.headers.get('retry-after');
    const at = Date.now();
    return { status: res.status, ...(retryAfter ? { retryAfter } : {}), body: parsed, at, ms: at - started };
  } catch (err) {
    const at = Date.now();
    return { status: 0, body: String(err), at, ms: at - started };
  }
}

/** A PingOne ACTIVITY event of a user-target type (USER.DELETED unless given), recorded at `at`. */
export function userEvent(id: string, userId: string, at: number, type = 'USER.DELETED') {
  return {
    id,
    recordedAt: new Date(at).toISOString(),
    action: { type },
    resources: [{ type: 'USER', id: userId }],
    result: { status: 'SUCCESS' },
  };
}

/** The sum of the samples of metric `name` whose labels include all of `labels` (Prometheus text format). */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) found[l[1]!] = l[2]!;
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** GET /metrics of a listening gateway, as text. */
export async function scrape(base: string): Promise<string> {
  const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) });
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
  return res.text();
}

/** Runs `width` loops that take items from `items` in order until none is left (a pool of senders). */
export async function pool<T>(
  items: Iterable<T>,
  width: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const it = items[Symbol.iterator]();
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let r = it.next(); !r.done; r = it.next()) await fn(r.value);
    }),
  );
}

/** Resolves after `ms` (a sender honouring a shortened Retry-After; not a wait for a condition). */
export const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
