import { describe, expect, it } from '@jest/globals';
import { describeWarmUp, untilWarm } from './warm-up.js';

/**
 * A CPU clock the tests move by hand: the process's own counts every thread (GC, jest's), so a batch
 * told to cost 5 ms can be measured at 6 on a busy machine and the stop would move with it.
 */
function fakeCpu(): { cpuMicros: () => number; burn: (us: number) => void } {
  let used = 0;
  return { cpuMicros: () => used, burn: (us) => void (used += us) };
}

describe('untilWarm', () => {
  it('stops once the CPU per item stops falling, not before minBatches', async () => {
    // Each batch of 10 items: 20 ms, 10 ms, then flat at 5 ms.
    const costs = [20_000, 10_000, 5_000];
    const ran: number[] = [];
    const { cpuMicros, burn } = fakeCpu();
    const r = await untilWarm(
      async (i) => {
        ran.push(i);
        burn(costs[Math.min(i, costs.length - 1)]!);
      },
      { batchSize: 10, minBatches: 4, settle: 2, maxBatches: 20, cpuMicros },
    );
    expect(r.stopped).toBe('converged');
    // 3 falling batches, then 2 flat ones: the 5th settles it.
    expect(ran).toEqual([0, 1, 2, 3, 4]);
    expect(r.items).toBe(50);
    expect(r.costs).toEqual([2000, 1000, 500, 500, 500]);
  });

  it('goes on while each batch is cheaper, up to maxBatches', async () => {
    let cost = 64_000;
    const { cpuMicros, burn } = fakeCpu();
    const r = await untilWarm(
      async () => {
        burn(cost);
        cost /= 2;
      },
      { batchSize: 1, maxBatches: 5, settle: 2, cpuMicros },
    );
    expect(r.stopped).toBe('max-batches');
    expect(r.batches).toBe(5);
  });

  it('ends at the first batch that throws, with the error', async () => {
    const r = await untilWarm(
      async (i) => {
        if (i === 2) throw new Error('Redis is gone');
      },
      { batchSize: 100 },
    );
    expect(r.stopped).toBe('failed');
    expect(r.items).toBe(200);
    expect(describeWarmUp('webhook path', r)).toMatch(
      /^webhook path warmed up: 200 in \d+ ms, failed; .*Redis is gone/,
    );
  });

  it('ends once the deadline passed, however the costs go', async () => {
    const { cpuMicros, burn } = fakeCpu();
    const r = await untilWarm(async () => burn(3_000), {
      batchSize: 1,
      deadlineMs: 0,
      minBatches: 10,
      cpuMicros,
    });
    expect(r.stopped).toBe('deadline');
    expect(r.batches).toBe(1);
  });

  it('says what one item cost first and last', () => {
    const text = describeWarmUp('worker', {
      items: 600,
      batches: 3,
      ms: 812.4,
      costs: [1500.2, 700, 498.6],
      stopped: 'converged',
    });
    expect(text).toBe('worker warmed up: 600 in 812 ms, converged; CPU per item 1500 -> 499 µs');
  });
});
