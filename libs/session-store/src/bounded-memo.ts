/**
 * A memo that remembers at least the last `capacity` keys written or read (and holds at most twice
 * that), for what is cheap to compute again but costs on every hot-path call (a user's tag, where a
 * token's record lives). Two maps, the current one and the one before: when the current one holds
 * `capacity` keys it becomes the one before and the older one is forgotten at once; a key found in the
 * one before is carried into the current one. Every call is O(1). (Forgetting the oldest key one at a
 * time, `map.delete(map.keys().next().value)`, costs far more: each delete leaves V8's table a hole
 * that the next `keys()` walks over until the table is rebuilt, 6-7 µs a call at 10,000 keys.)
 */
export class BoundedMemo<V> {
  private current = new Map<string, V>();
  private previous = new Map<string, V>();
  private readonly capacity: number;

  /** `capacity` 0 remembers nothing. */
  constructor(capacity: number) {
    this.capacity = Math.max(0, Math.floor(capacity));
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
    if (this.capacity === 0) return;
    if (this.current.size >= this.capacity && !this.current.has(key)) {
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(key, value);
  }

  /** At most twice `capacity` (a key carried forward is counted in both maps until the older goes). */
  get size(): number {
    return this.current.size + this.previous.size;
  }
}
