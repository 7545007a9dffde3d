/**
 * Queue depth by state and the oldest message, counted from the worker's schedule
 * in memory when metrics are scraped: the spool is never read again for them.
 */

import type { QueueState } from "../ops/metrics.ts";
import { queueIdTime } from "../queue/record.ts";
import type { DueQueue } from "./due_queue.ts";

/** Messages by state, and when the oldest was queued (ms since epoch; undefined when empty). */
export interface QueueCounts {
  depth: Record<QueueState, number>;
  oldestAt: number | undefined;
}

/**
 * Counts scheduled, in-flight (as due) and operator-held messages; in hold mode everything
 * scheduled counts as held too.
 */
export function queueCounts(
  schedule: DueQueue,
  inFlight: Iterable<string>,
  held: Iterable<string>,
  holding: boolean,
  now: number,
): QueueCounts {
  const depth: Record<QueueState, number> = { due: 0, deferred: 0, held: 0 };
  let oldestAt: number | undefined;
  const seen = (id: string, state: QueueState) => {
    depth[state]++;
    const at = queueIdTime(id);
    if (at !== undefined && (oldestAt === undefined || at < oldestAt)) oldestAt = at;
  };
  for (const [id, at] of schedule.entries()) {
    seen(id, holding ? "held" : at <= now ? "due" : "deferred");
  }
  for (const id of inFlight) seen(id, "due");
  for (const id of held) seen(id, "held");
  return { depth, oldestAt };
}
