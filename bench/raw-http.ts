// A cheap HTTP/1.1 load client for the benches: the generator must cost little, so that the
// baseline's own p99 stays low (a generator that saturates measures itself).
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { percentile, Samples } from './stats.js';

export interface Answer {
  status: number;
  /** When the request was written to its socket (performance.now()). */
  written: number;
  /** The head of the answer, when asked for (probes). */
  head?: string;
  /** Whether the body holds `"active":true` (RFC 7662 answers), when asked for. */
  active?: boolean;
}

/** What to keep of each answer beyond its status: nothing by default (the cheapest). */
export interface RawHttpOptions {
  head?: boolean;
  active?: boolean;
}

/**
 * `connections` kept-alive sockets, one request in flight on each, requests pre-built as bytes,
 * answers parsed only as far as the status and the length. Requests beyond the sockets wait in a
 * queue (their wait counts in their latency). A socket the server closes is replaced.
 */
export class RawHttp {
  private readonly idle: Socket[] = [];
  private readonly waiting: { request: Buffer; done: (a: Answer) => void }[] = [];
  private readonly current = new Map<Socket, { done: (a: Answer) => void; written: number }>();
  private readonly sockets: Socket[] = [];
  private closed = false;

  private constructor(
    private readonly port: number,
    private readonly keep: RawHttpOptions,
  ) {}

  static async open(port: number, connections: number, keep: RawHttpOptions = {}): Promise<RawHttp> {
    const client = new RawHttp(port, keep);
    await Promise.all(Array.from({ length: connections }, () => client.connect()));
    return client;
  }

  send(request: Buffer): Promise<Answer> {
    return new Promise((done) => {
      const socket = this.idle.pop();
      if (socket) this.write(socket, request, done);
      else this.waiting.push({ request, done });
    });
  }

  close(): void {
    this.closed = true;
    for (const socket of [...this.sockets]) socket.destroy();
  }

  private connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.port, '127.0.0.1', () => {
        socket.setNoDelay(true);
        this.sockets.push(socket);
        this.free(socket);
        resolve();
      });
      let buffer = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        buffer += chunk;
        for (;;) {
          const head = buffer.indexOf('\r\n\r\n');
          if (head < 0) return;
          const headers = buffer.slice(0, head);
          const length = /\r\ncontent-length: *(\d+)/i.exec(headers);
          let end: number;
          if (length) end = head + 4 + Number(length[1]);
          else if (/\r\ntransfer-encoding: *chunked/i.test(headers)) {
            const last = buffer.indexOf('\r\n0\r\n\r\n', head);
            if (last < 0) return;
            end = last + 7;
          } else end = head + 4;
          if (buffer.length < end) return;
          const active = this.keep.active ? buffer.slice(head + 4, end).includes('"active":true') : undefined;
          buffer = buffer.slice(end);
          const call = this.current.get(socket);
          this.current.delete(socket);
          call?.done({
            status: Number(headers.slice(9, 12)),
            written: call.written,
            ...(this.keep.head ? { head: headers } : {}),
            ...(active === undefined ? {} : { active }),
          });
          // NGINX closes a kept-alive connection after keepalive_requests (1,000) answers: a new one.
          if (/\r\nconnection: *close/i.test(headers)) {
            socket.destroy();
            return;
          }
          this.free(socket);
        }
      });
      socket.on('error', reject);
      socket.on('close', () => {
        const call = this.current.get(socket);
        this.current.delete(socket);
        call?.done({ status: 0, written: call.written, ...(this.keep.active ? { active: false } : {}) });
        const idle = this.idle.indexOf(socket);
        if (idle >= 0) this.idle.splice(idle, 1);
        this.sockets.splice(this.sockets.indexOf(socket), 1);
        if (!this.closed) void this.connect().catch(() => undefined);
      });
    });
  }

  private free(socket: Socket): void {
    const next = this.waiting.shift();
    if (next) this.write(socket, next.request, next.done);
    else this.idle.push(socket);
  }

  private write(socket: Socket, request: Buffer, done: (a: Answer) => void): void {
    this.current.set(socket, { done, written: performance.now() });
    socket.write(request);
  }
}

/** What an open-loop run saw: answers/s, latency from when each request was due, and the send lag. */
export interface OpenLoopRun {
  requests: number;
  failed: number;
  /** Answers per second, from the first request due to the last answer. */
  achieved: number;
  p50: number;
  p99: number;
  max: number;
  /** p99 of the time from a request's write to its answer (the server's part of the latency). */
  serviceP99: number;
  /** p99 of how late the generator sent a request after it was due (its own saturation). */
  sendLagP99: number;
}

/**
 * Open loop: request i (of `requests`, cycled) is due at start + i / rate whatever became of the
 * earlier ones, on `client`'s kept-alive sockets. An answer `ok` refuses, or none within 30 s of the
 * last request being due, counts as failed.
 */
export async function openLoop(
  client: RawHttp,
  requests: Buffer[],
  rate: number,
  seconds: number,
  ok: (answer: Answer) => boolean = (a) => a.status === 200,
): Promise<OpenLoopRun> {
  const total = Math.round(rate * seconds);
  const interval = 1000 / rate;
  const latencies = new Samples();
  const service = new Samples();
  const lag = new Samples();
  let failed = 0;
  let answered = 0;
  const start = performance.now() + 2;
  let sent = 0;
  let lastAnswer = start;
  await new Promise<void>((resolve) => {
    const onAnswer = (due: number) => (a: Answer) => {
      lastAnswer = performance.now();
      latencies.push(lastAnswer - due);
      service.push(lastAnswer - a.written);
      if (!ok(a)) failed++;
      if (++answered === total) resolve();
    };
    const timer = setInterval(() => {
      const now = performance.now();
      while (sent < total && start + sent * interval <= now) {
        const due = start + sent * interval;
        lag.push(now - due);
        void client.send(requests[sent++ % requests.length]!).then(onAnswer(due));
      }
      if (sent === total) clearInterval(timer);
    }, 1);
    // Never hang on a lost answer: what is unanswered 30 s after the last request was due failed.
    setTimeout(
      () => {
        clearInterval(timer);
        failed += total - answered;
        answered = total;
        resolve();
      },
      seconds * 1000 + 30_000,
    ).unref();
  });
  const sorted = latencies.sorted();
  return {
    requests: total,
    failed,
    achieved: total / ((lastAnswer - start) / 1000),
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted.at(-1) ?? NaN,
    serviceP99: percentile(service.sorted(), 0.99),
    sendLagP99: percentile(lag.sorted(), 0.99),
  };
}
