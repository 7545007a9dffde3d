/** Deadlines for waits on peers and shutdowns, so no peer or task can hold Carrier forever. */

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

/** Waits for `promise` at most `ms`; true if it settled in time (a graceful stop's bound). */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  try {
    await withTimeout(promise.then(() => {}, () => {}), ms);
    return true;
  } catch {
    return false;
  }
}
