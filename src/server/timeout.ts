/** Deadlines for socket operations, so no peer can hold a task forever. */

/** Thrown by `withTimeout` when the deadline passes first. */
export class DeadlineError extends Error {
  constructor() {
    super("timed out");
  }
}

/** Rejects with DeadlineError when `promise` has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => timer = setTimeout(() => reject(new DeadlineError()), ms)),
  ]).finally(() => clearTimeout(timer));
}
