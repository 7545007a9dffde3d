/**
 * What DSNs a message is owed (RFC 3461 §4.1, §6.2): a failure report unless NOTIFY leaves
 * out FAILURE, a "relayed" notice for NOTIFY=SUCCESS when the upstream could not take the
 * request on, and one delay warning. Pure decisions; the Settler queues the reports.
 */

import type { QueueRecord, RecipientRecord } from "../queue/record.ts";
import type { NotifyKind } from "../smtp/dsn.ts";
import type { RecipientResult } from "./upstream_types.ts";

/** Whether the recipient asked to hear of this; no NOTIFY means FAILURE and DELAY (RFC 3461 §4.1). */
export function wants(r: RecipientRecord, kind: Exclude<NotifyKind, "NEVER">): boolean {
  return r.notify ? r.notify.includes(kind) : kind !== "SUCCESS";
}

/** Nobody to tell: mail from `<>` and our own reports never get a DSN back. */
function unreportable(record: QueueRecord): boolean {
  return record.kind === "bounce" || record.sender === "";
}

/**
 * The `bounced` field for a recipient after `result`: false when a DSN is owed, true when
 * none is (failed, but NOTIFY leaves out FAILURE), undefined when DSNs do not apply.
 */
export function noticeOwed(
  record: QueueRecord,
  r: RecipientRecord,
  result: RecipientResult,
): boolean | undefined {
  // A failure for `<>` stays owed: the Settler logs that it drops it (it has nobody to tell).
  if (result.status === "failed") return !wants(r, "FAILURE");
  if (result.status === "delivered") {
    const owed = wants(r, "SUCCESS") && !result.dsnForwarded && !unreportable(record);
    return owed ? false : undefined;
  }
  return r.bounced;
}

/**
 * When the delay warning of `record` falls due, if one may still be owed (ms since epoch): the
 * next retry is brought forward to it, so the warning is not late by a whole retry interval.
 */
export function delayWarningAt(record: QueueRecord, warnMs: number): number | undefined {
  if (warnMs <= 0 || record.delayWarned || unreportable(record)) return undefined;
  if (!record.recipients.some((r) => r.status === "pending" && wants(r, "DELAY"))) return undefined;
  return Date.parse(record.receivedAt) + warnMs;
}

/**
 * The recipients to warn about, when the message has waited `warnMs` (0: never) and has
 * not been warned about yet; empty otherwise.
 */
export function delayWarningDue(
  record: QueueRecord,
  warnMs: number,
  now: number,
): RecipientRecord[] {
  if (warnMs <= 0 || record.delayWarned || unreportable(record)) return [];
  if (now - Date.parse(record.receivedAt) < warnMs) return [];
  return record.recipients.filter((r) => r.status === "pending" && wants(r, "DELAY"));
}
