/**
 * One timer per connection for every read and write deadline. Setting a timer
 * per read costs more than the read itself at thousands of commands a second;
 * here the timer is re-armed only when it fires before the current deadline.
 */

/** Thrown into the pending I/O when its deadline passes. */
export class IoTimeoutError extends Error {}

/** Bounds the one outstanding read or write of a connection. */
export class Watchdog {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #deadline = Infinity;
  #reject: ((e: Error) => void) | undefined;

  /** Settles with `io`, or rejects with IoTimeoutError once `deadline` (ms since epoch) passes. */
  guard<T>(io: Promise<T>, deadline: number, what: string): Promise<T> {
    this.#deadline = deadline;
    if (deadline < this.#timerAt) this.#arm(deadline);
    return new Promise<T>((resolve, reject) => {
      const fail = (e: Error) => reject(e);
      this.#reject = fail;
      // Only this I/O's own slot is cleared: an abandoned read (timed out, interrupted)
      // that settles late must not disarm the deadline of the write that followed it.
      const done = () => {
        if (this.#reject === fail) this.#reject = undefined;
      };
      io.then(
        (value) => {
          done();
          resolve(value);
        },
        (e) => {
          done();
          reject(e);
        },
      );
    }).catch((e) => {
      throw e instanceof IoTimeoutError ? new IoTimeoutError(what) : e;
    });
  }

  /** Fails the pending I/O at once with `error` (shutdown). */
  interrupt(error: Error): boolean {
    const reject = this.#reject;
    if (!reject) return false;
    this.#reject = undefined;
    reject(error);
    return true;
  }

  /** Clears the timer (the connection is closing). */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#reject = undefined;
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - Date.now()));
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (!this.#reject) return; // idle: the next guard arms it again
    const now = Date.now();
    if (now < this.#deadline) {
      this.#arm(this.#deadline);
      return;
    }
    this.interrupt(new IoTimeoutError("timeout"));
  }
}
