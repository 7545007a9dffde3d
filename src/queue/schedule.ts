/**
 * The retry schedule: exponential backoff with jitter between attempts, capped,
 * and a maximum time in the queue after which undelivered mail bounces.
 */

/** Retry settings, in milliseconds. */
export interface RetryPolicy {
  minMs: number;
  maxMs: number;
  lifetimeMs: number;
  /** After this long undelivered the sender is warned once (RFC 3464 "delayed"); 0 = never. */
  delayWarningMs?: number;
}

/**
 * Delay before the next attempt after `attempts` failed ones: min, 2*min, 4*min...
 * up to max, each spread by +-20% so that a backlog does not retry in lockstep.
 */
export function retryDelayMs(policy: RetryPolicy, attempts: number, random = Math.random): number {
  const base = Math.min(policy.maxMs, policy.minMs * 2 ** Math.max(0, Math.min(attempts - 1, 30)));
  const jitter = 0.8 + 0.4 * random();
  return Math.round(Math.min(policy.maxMs * 1.2, Math.max(policy.minMs * 0.8, base * jitter)));
}

/** True when a message received at `receivedAt` has outlived the queue lifetime. */
export function expired(policy: RetryPolicy, receivedAt: string, now: number): boolean {
  return now - Date.parse(receivedAt) >= policy.lifetimeMs;
}
