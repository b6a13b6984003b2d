/**
 * A memo of at most `capacity` entries, for what is cheap to compute again but costs on every hot-path
 * call (a user's tag, where a token's record lives). Two maps, the current one and the one before:
 * when the current one holds half the capacity it becomes the one before and the oldest half is
 * forgotten at once; an entry found in the one before is carried into the current one. Every call is
 * O(1). (Forgetting the oldest entry one at a time, `map.delete(map.keys().next().value)`, costs far
 * more: each delete leaves V8's table a hole that the next `keys()` walks over until the table is
 * rebuilt, 6-7 µs a call at 10,000 entries.)
 */
export class BoundedMemo<V> {
  private current = new Map<string, V>();
  private previous = new Map<string, V>();
  private readonly half: number;

  /** `capacity` 0 (or 1) remembers nothing. */
  constructor(capacity: number) {
    this.half = Math.max(0, Math.floor(capacity / 2));
  }

  get(key: string): V | undefined {
    const found = this.current.get(key);
    if (found !== undefined) return found;
    const older = this.previous.get(key);
    if (older !== undefined) this.set(key, older);
    return older;
  }

  has(key: string): boolean {
    return this.current.has(key) || this.previous.has(key);
  }

  set(key: string, value: V): void {
    if (this.half === 0) return;
    if (this.current.size >= this.half && !this.current.has(key)) {
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(key, value);
  }

  /** At most `capacity` (an entry carried forward is counted in both maps until the older goes). */
  get size(): number {
    return this.current.size + this.previous.size;
  }
}
