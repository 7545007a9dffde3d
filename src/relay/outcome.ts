/**
 * What one delivery attempt changes in a message's record: each pending
 * recipient's new state, the attempt count, the next attempt and the last error.
 * Pure; the worker logs, counts and stores the result.
 */

import type { QueueRecord, RecipientRecord } from "../queue/record.ts";
import { retryDelayMs, type RetryPolicy } from "../queue/schedule.ts";
import { noticeOwed } from "./dsn_policy.ts";
import type { RecipientResult } from "./upstream_types.ts";

/** The record after an attempt, and what changed. */
export interface Outcome {
  updated: QueueRecord;
  /** The pending recipients the attempt answered for, with their results, in order. */
  changes: { address: string; result: RecipientResult }[];
  /** Recipients still pending after it (temporary failures). */
  deferred: number;
  /** Until the next attempt (ms). */
  delay: number;
  /** Nothing left to deliver or to bounce: the message can go. */
  settled: boolean;
}

/**
 * Applies `results` to `record`'s pending recipients; `attempted` false for an expiry or a
 * quota wait, `retryAt` (ms since epoch) instead of the backoff for the latter, and `retryBy`
 * to bring the next attempt forward to when a quota frees.
 */
export function applyResults(
  record: QueueRecord,
  results: RecipientResult[],
  attemptError: string | undefined,
  opts: { now: Date; retry: RetryPolicy; attempted: boolean; retryAt?: number; retryBy?: number },
): Outcome {
  const at = opts.now.toISOString();
  const byAddress = new Map(results.map((r) => [r.recipient, r]));
  const changes: Outcome["changes"] = [];
  let deferred = 0;
  const recipients: RecipientRecord[] = record.recipients.map((r) => {
    const result = r.status === "pending" ? byAddress.get(r.address) : undefined;
    if (!result) return r;
    changes.push({ address: r.address, result });
    const base = {
      ...r,
      response: result.response,
      updatedAt: at,
      ...(result.upstream ? { via: result.upstream } : {}),
    };
    const bounced = noticeOwed(record, r, result);
    switch (result.status) {
      case "delivered":
        return bounced === undefined
          ? { ...base, status: "delivered" }
          : { ...base, status: "delivered", bounced };
      case "failed":
        return { ...base, status: "failed", bounced: bounced ?? false };
      case "deferred":
        deferred++;
        return base;
    }
  });
  const attempts = record.attempts + (opts.attempted ? 1 : 0);
  const backoff = retryDelayMs(opts.retry, attempts - (record.backoffFrom ?? 0));
  const delay = opts.retryAt !== undefined
    ? Math.max(0, opts.retryAt - opts.now.getTime())
    : opts.retryBy !== undefined
    ? Math.max(0, Math.min(backoff, opts.retryBy - opts.now.getTime()))
    : backoff;
  const firstDeferred = results.find((r) => r.status === "deferred");
  const updated: QueueRecord = {
    ...record,
    recipients,
    attempts,
    lastError: attemptError ?? firstDeferred?.response ?? record.lastError,
    nextAttemptAt: new Date(opts.now.getTime() + delay).toISOString(),
  };
  const settled = !recipients.some((r) => r.status === "pending" || r.bounced === false);
  return { updated, changes, deferred, delay, settled };
}

/** A message past its lifetime: every pending recipient fails with the reason and last error. */
export function expiryResults(
  record: QueueRecord,
  now: number,
): { results: RecipientResult[]; reason: string } {
  const hours = Math.round((now - Date.parse(record.receivedAt)) / 3600_000);
  const reason = `message expired after ${hours}h in the queue` +
    (record.lastError ? `; last error: ${record.lastError}` : "");
  const results = record.recipients
    .filter((r) => r.status === "pending")
    .map((r): RecipientResult => ({
      recipient: r.address,
      status: "failed",
      response: r.response ?? reason,
    }));
  return { results, reason };
}
