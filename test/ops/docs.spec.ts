import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';

describe('docs/design.md', () => {
  it('cites only tests that exist, by file and exact name', () => {
    const design = readFileSync('docs/design.md', 'utf8');
    const cited = [...design.matchAll(/^- `([^`]+[.-]spec\.ts)`[^:]*: `([^`]+)`/gm)].map((m) => ({
      file: m[1]!,
      name: m[2]!,
    }));
    expect(cited.length).toBeGreaterThan(20);
    const missing = cited.filter(
      ({ file, name }) => !existsSync(file) || !readFileSync(file, 'utf8').includes(name),
    );
    expect(missing).toEqual([]);
  });
});
