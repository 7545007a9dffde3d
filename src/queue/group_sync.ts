/**
 * Group commit: callers that need the same fsync (the queue directory, after
 * their rename) share one. A caller waits for a round that *starts* after its
 * request, so its own change is covered; while a round runs, later requests
 * gather into the next one.
 */
export class GroupSync {
  #running: Promise<void> = Promise.resolve();
  #waiting: Promise<void> | undefined;
  #rounds = 0;

  constructor(readonly sync: () => Promise<void>) {}

  /** fsync rounds run so far (for tests and the benchmark's counters). */
  get rounds(): number {
    return this.#rounds;
  }

  /** Resolves once a sync that began after this call has completed; rejects if it failed. */
  request(): Promise<void> {
    if (this.#waiting) return this.#waiting;
    const round = this.#running.then(() => {
      this.#waiting = undefined; // from here on, requests need a later round
      this.#rounds++;
      return this.sync();
    });
    this.#waiting = round;
    this.#running = round.catch(() => {});
    return round;
  }
}
