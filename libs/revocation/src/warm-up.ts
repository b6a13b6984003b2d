/**
 * How `untilWarm` goes: batches of work are run until the CPU one item costs stops falling.
 * Defaults: at least 4 batches, at most 24, settled after 3 that are no more than 10% cheaper than the
 * cheapest before them, and never past 10 s.
 */
export interface WarmUpOptions {
  /** Items each batch does (for the cost per item). */
  batchSize: number;
  minBatches?: number;
  maxBatches?: number;
  /** Batches in a row that must fail to be `gain` cheaper than the cheapest before them. */
  settle?: number;
  gain?: number;
  deadlineMs?: number;
  /** CPU microseconds used so far; `process.cpuUsage` unless a test gives its own clock. */
  cpuMicros?: () => number;
}

export interface WarmUpReport {
  items: number;
  batches: number;
  /** Wall time of the whole warm-up. */
  ms: number;
  /** CPU microseconds per item, batch by batch. */
  costs: number[];
  /** `skipped`: there was nothing to warm up (set by the caller, never by `untilWarm`). */
  stopped: 'converged' | 'max-batches' | 'deadline' | 'failed' | 'skipped';
  error?: unknown;
}

/**
 * Runs `batch(index)` (each call doing `batchSize` items) until the process's CPU per item stops
 * falling, and says how it went. A fresh process runs its code cold: V8 interprets a function until it
 * has run often enough to be compiled and then optimised, so a new gateway's first couple of thousand
 * webhooks cost four to five times the CPU of later ones (at 1,000 a second, that backlog held answers
 * for over a second after it said it was ready). Run before a process says it is ready, on work that
 * takes the same code paths with no effect outside the warm-up, it has its first real callers meet warm
 * code. The stop is the measured cost settling (a slower machine warms up longer), never a fixed time;
 * `maxBatches` and `deadlineMs` bound it on a machine too busy to settle, and the first batch that
 * throws ends it (a Redis out of reach: the process starts without the rest of its warm-up).
 */
export async function untilWarm(
  batch: (index: number) => Promise<void>,
  options: WarmUpOptions,
): Promise<WarmUpReport> {
  const { batchSize, minBatches = 4, maxBatches = 24, settle = 3, gain = 0.1, deadlineMs = 10_000 } = options;
  const cpuMicros = options.cpuMicros ?? processCpuMicros;
  const started = performance.now();
  const costs: number[] = [];
  const report = (stopped: WarmUpReport['stopped'], error?: unknown): WarmUpReport => ({
    items: costs.length * batchSize,
    batches: costs.length,
    ms: performance.now() - started,
    costs,
    stopped,
    ...(error === undefined ? {} : { error }),
  });
  let flat = 0;
  for (let i = 0; i < maxBatches; i++) {
    const before = cpuMicros();
    try {
      await batch(i);
    } catch (err) {
      return report('failed', err);
    }
    const cost = (cpuMicros() - before) / batchSize;
    const cheapest = costs.length ? Math.min(...costs) : Infinity;
    costs.push(cost);
    flat = cost > cheapest * (1 - gain) ? flat + 1 : 0;
    if (costs.length >= minBatches && flat >= settle) return report('converged');
    if (performance.now() - started > deadlineMs) return report('deadline');
  }
  return report('max-batches');
}

function processCpuMicros(): number {
  const used = process.cpuUsage();
  return used.user + used.system;
}

/** Runs `fn(0..n-1)` with at most `width` calls in flight: the warm-ups' load, as callers send it. */
export async function inFlight(n: number, width: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

/** One line for the log: what ran, how long, and what one item cost first and last. */
export function describeWarmUp(what: string, r: WarmUpReport): string {
  const first = r.costs[0];
  const last = r.costs[r.costs.length - 1];
  const cost =
    first === undefined || last === undefined
      ? ''
      : `; CPU per item ${Math.round(first)} -> ${Math.round(last)} µs`;
  const why = r.stopped === 'failed' ? ` (stopped: ${String((r.error as Error)?.message ?? r.error)})` : '';
  return `${what} warmed up: ${r.items} in ${Math.round(r.ms)} ms, ${r.stopped}${cost}${why}`;
}
