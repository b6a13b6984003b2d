import { createHash } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { secretHash } from './keys.js';

describe('secretHash', () => {
  it('is the base64url of the first 16 bytes of the SHA-256, as stored keys were named', () => {
    // Fixed values: a change here renames every session, token and group key already in Redis.
    expect(secretHash('')).toBe('47DEQpj8HBSa-_TImW-5JA');
    expect(secretHash('AbCdEfGhIjKlMnOpQrStUv.0123456789abcdefghijklmnopqrstuvwxyzABCDEFG')).toBe(
      't9yYMaBjKcJTmOZSrAmIMw',
    );
    expect(secretHash('é✓')).toBe('HnfLcZIK1SiF-rBkZaX88g');
  });

  it('agrees with the digest for any string (every value of the 22nd character included)', () => {
    const expected = (s: string) =>
      createHash('sha256').update(s).digest().subarray(0, 16).toString('base64url');
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        expect(secretHash(s)).toBe(expected(s));
      }),
      { numRuns: 5_000 },
    );
  });
});
