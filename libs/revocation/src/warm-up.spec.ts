import { describe, expect, it } from '@jest/globals';
import { describeWarmUp, untilWarm } from './warm-up.js';

/** Burns about `us` microseconds of this process's CPU. */
function burn(us: number): void {
  const start = process.cpuUsage();
  for (;;) {
    const used = process.cpuUsage(start);
    if (used.user + used.system >= us) return;
  }
}

describe('untilWarm', () => {
  it('stops once the CPU per item stops falling, not before minBatches', async () => {
    // Each batch of 10 items: 20 ms, 10 ms, then flat at 5 ms.
    const costs = [20_000, 10_000, 5_000];
    const ran: number[] = [];
    const r = await untilWarm(
      async (i) => {
        ran.push(i);
        burn(costs[Math.min(i, costs.length - 1)]!);
      },
      { batchSize: 10, minBatches: 4, settle: 2, maxBatches: 20 },
    );
    expect(r.stopped).toBe('converged');
    // 3 falling batches, then 2 flat ones: the 5th settles it.
    expect(ran).toEqual([0, 1, 2, 3, 4]);
    expect(r.items).toBe(50);
    expect(r.costs[0]).toBeGreaterThan(r.costs[4]! * 2);
  });

  it('goes on while each batch is cheaper, up to maxBatches', async () => {
    let cost = 64_000;
    const r = await untilWarm(
      async () => {
        burn(cost);
        cost /= 2;
      },
      { batchSize: 1, maxBatches: 5, settle: 2 },
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
    const r = await untilWarm(async () => burn(3_000), { batchSize: 1, deadlineMs: 1, minBatches: 10 });
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
