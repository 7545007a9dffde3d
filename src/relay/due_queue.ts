/**
 * The delivery worker's in-memory schedule: which queued message is due when.
 * A binary heap keyed by due time, with stale entries skipped on the way out, so
 * taking the next message and queueing a new one cost O(log n), never a scan of
 * the whole queue per message.
 */

interface Entry {
  id: string;
  at: number;
  /** Matches the map's entry while this heap slot is the current one. */
  seq: number;
}

/** Due times of queued messages, by id; messages taken are "in flight" until set again. */
export class DueQueue {
  #heap: Entry[] = [];
  #current = new Map<string, Entry>();
  #seq = 0;

  /** Messages scheduled (not in flight). */
  get size(): number {
    return this.#current.size;
  }

  /** True when `id` is scheduled (not in flight). */
  has(id: string): boolean {
    return this.#current.has(id);
  }

  /** Its due time, if scheduled. */
  dueAt(id: string): number | undefined {
    return this.#current.get(id)?.at;
  }

  /** The scheduled ids. */
  ids(): IterableIterator<string> {
    return this.#current.keys();
  }

  /** The scheduled ids with their due times (ms since epoch). */
  *entries(): IterableIterator<[string, number]> {
    for (const e of this.#current.values()) yield [e.id, e.at];
  }

  /** Schedules (or reschedules) `id` for `at` (ms since epoch). */
  set(id: string, at: number): void {
    const entry = { id, at, seq: ++this.#seq };
    this.#current.set(id, entry);
    this.#push(entry);
    // Stale entries are dropped lazily; rebuild when they outnumber the live ones.
    if (this.#heap.length > 64 && this.#heap.length > 4 * this.#current.size) this.#rebuild();
  }

  /** Unschedules `id`. */
  delete(id: string): boolean {
    return this.#current.delete(id);
  }

  /** The earliest due time, or Infinity when nothing is scheduled. */
  nextAt(): number {
    this.#dropStale();
    return this.#heap.length ? this.#heap[0].at : Infinity;
  }

  /** Takes the message due first if it is due by `now`; it is then in flight. */
  takeDue(now: number): string | undefined {
    this.#dropStale();
    const top = this.#heap[0];
    if (!top || top.at > now) return undefined;
    this.#pop();
    this.#current.delete(top.id);
    return top.id;
  }

  #dropStale(): void {
    while (this.#heap.length) {
      const top = this.#heap[0];
      if (this.#current.get(top.id) === top) return;
      this.#pop();
    }
  }

  #rebuild(): void {
    this.#heap = [...this.#current.values()].sort(before);
  }

  #push(entry: Entry): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (before(heap[parent], heap[i]) <= 0) break;
      [heap[parent], heap[i]] = [heap[i], heap[parent]];
      i = parent;
    }
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < heap.length && before(heap[l], heap[min]) < 0) min = l;
      if (r < heap.length && before(heap[r], heap[min]) < 0) min = r;
      if (min === i) return;
      [heap[min], heap[i]] = [heap[i], heap[min]];
      i = min;
    }
  }
}

/** Earlier due time first; equal times in the order they were set (FIFO). */
function before(a: Entry, b: Entry): number {
  return a.at - b.at || a.seq - b.seq;
}
