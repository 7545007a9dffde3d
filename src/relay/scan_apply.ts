/**
 * What a scan of the spool changes in the worker's view: messages gone from the spool leave
 * the schedule, held ones move aside, the rest are due at their next attempt (now, for a
 * flush). Ids touched while the scan read the spool keep the newer view.
 */

import type { QueueRecord } from "../queue/record.ts";
import type { DueQueue } from "./due_queue.ts";
import type { FreshCache } from "./fresh_cache.ts";

/** The worker's view of the queue that a scan updates. */
export interface ScanView {
  schedule: DueQueue;
  held: Set<string>;
  fresh: FreshCache;
  inFlight: ReadonlySet<string>;
  /** Ids changed while the scan read the spool. */
  touched: ReadonlySet<string>;
}

/** Applies the records a scan read to `view`. */
export function applyScan(
  view: ScanView,
  records: readonly QueueRecord[],
  flush: boolean,
  now: number,
): void {
  const { schedule, held, fresh, inFlight, touched } = view;
  const found = new Set(records.map((r) => r.id));
  for (const id of [...schedule.ids()]) {
    if (!found.has(id) && !touched.has(id)) {
      schedule.delete(id);
      fresh.take(id);
    }
  }
  for (const id of [...held]) {
    if (!found.has(id) && !touched.has(id)) held.delete(id);
  }
  for (const r of records) {
    if (inFlight.has(r.id) || (touched.has(r.id) && !flush)) continue;
    if (r.held) {
      schedule.delete(r.id);
      held.add(r.id);
    } else schedule.set(r.id, flush ? now : Date.parse(r.nextAttemptAt));
  }
}
