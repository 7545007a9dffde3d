/**
 * Draining one instance of several (SIGUSR2): the listeners close so a balancer sends
 * new mail elsewhere, deliveries go on, and the process ends once its queue is empty.
 * It only waits and polls; stopping listeners and the worker is the caller's.
 */

/** How often the queue size is looked at while draining. */
const POLL_MS = 500;

/**
 * Resolves "drained" once `queueSize()` is 0, or `"stopped"` when `stop` settles
 * first (a SIGTERM during a drain, or a hold-mode queue that never empties).
 */
export async function untilDrained(
  queueSize: () => number,
  stop: Promise<unknown>,
): Promise<"drained" | "stopped"> {
  let stopped = false;
  stop.then(() => stopped = true, () => stopped = true);
  while (!stopped) {
    if (queueSize() === 0) return "drained";
    await Promise.race([stop, new Promise((r) => setTimeout(r, POLL_MS))]);
  }
  return "stopped";
}
