import { describe, expect, it } from '@jest/globals';
import { BoundedMemo } from './bounded-memo.js';

describe('BoundedMemo', () => {
  it('keeps the last `capacity` keys, at most twice that, and what was asked for lately', () => {
    const memo = new BoundedMemo<number>(10);
    for (let i = 0; i < 100; i++) {
      memo.set(`k${i}`, i);
      expect(memo.size).toBeLessThanOrEqual(20);
      // The last ten written are always there.
      for (let j = Math.max(0, i - 9); j <= i; j++) expect(memo.has(`k${j}`)).toBe(true);
    }
    expect(memo.get('k0')).toBeUndefined();
    expect(memo.has('k0')).toBe(false);
    // Users cycling through a set as big as the capacity all stay.
    const cycling = new BoundedMemo<number>(100);
    for (let round = 0; round < 5; round++)
      for (let i = 0; i < 100; i++) {
        if (round > 0) expect(cycling.get(`u${i}`)).toBe(i);
        else cycling.set(`u${i}`, i);
      }
    // A key in use stays however much comes after it.
    for (let i = 100; i < 200; i++) {
      memo.set(`k${i}`, i);
      expect(memo.get('k99')).toBe(99);
    }
  });

  it('replaces a value, and with capacity 0 remembers nothing', () => {
    const memo = new BoundedMemo<string>(4);
    memo.set('a', 'x');
    memo.set('a', 'y');
    expect(memo.get('a')).toBe('y');
    const none = new BoundedMemo<string>(0);
    none.set('a', 'x');
    expect(none.get('a')).toBeUndefined();
    expect(none.size).toBe(0);
  });
});
