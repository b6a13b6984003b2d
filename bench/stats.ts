// Samples, percentiles and tables for the benches.

/** Collects float samples without knowing their number in advance. */
export class Samples {
  private data = new Float64Array(1 << 12);
  private n = 0;
  push(v: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.n++] = v;
  }
  get length(): number {
    return this.n;
  }
  sorted(): Float64Array {
    return this.data.slice(0, this.n).sort();
  }
}

/** Nearest-rank percentile of sorted samples (NaN when there are none). */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** The median of a few numbers (the upper one of the middle two when even). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export const ms = (v: number) =>
  Number.isNaN(v) ? '-' : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0);
export const int = (v: number) => (Number.isNaN(v) ? '-' : Math.round(v).toLocaleString('en-US'));
export const pct = (v: number) => `${Math.round(v * 100)}%`;

/** A plain-text table: the first `left` columns left-aligned, the rest right-aligned. */
export function printTable(header: string[], rows: string[][], left = 1): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

/** The same table in Markdown, for docs/benchmarks.md. */
export function printMarkdown(header: string[], rows: string[][], left = 1): void {
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map((_, i) => (i < left ? ' --- ' : ' ---: ')).join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}
