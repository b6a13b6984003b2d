import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { DEFAULT_PINGONE_MAPPING } from './pingone-mapping.js';

describe('DEFAULT_PINGONE_MAPPING', () => {
  it("is what the README's PingOne subscription subscribes to, no more and no less", () => {
    // An action type left out of the subscription is never delivered, so never acted on.
    const readme = readFileSync('README.md', 'utf8');
    const start = readme.indexOf('"includedActionTypes": [');
    expect(start).toBeGreaterThan(0);
    const list = readme.slice(start, readme.indexOf(']', start));
    const subscribed = [...list.matchAll(/"([A-Z_]+\.[A-Z_]+)"/g)].map((m) => m[1]);
    expect(subscribed.sort()).toEqual(Object.keys(DEFAULT_PINGONE_MAPPING).sort());
  });
});
