/**
 * What `carrier queue hold|release|requeue` does to a record, in one pure place: the server
 * applies it between attempts, and the queue command itself when no server owns the spool.
 */

import type { QueueRecord } from "./record.ts";
import type { OperatorAction } from "./requests.ts";

/** The record after `action` at `now`: hold stops attempts, release and requeue end it. */
export function operatorUpdate(
  action: Exclude<OperatorAction, "delete">,
  record: QueueRecord,
  now: Date,
): QueueRecord {
  const { held: _held, ...rest } = record;
  switch (action) {
    case "hold":
      return { ...record, held: true };
    case "release":
      // Released mail keeps its retry time: one whose retry is past is tried at once.
      return rest;
    case "requeue":
      // Tried now, and a failure waits --retry-min again, as for new mail.
      return { ...rest, nextAttemptAt: now.toISOString(), backoffFrom: record.attempts };
  }
}
