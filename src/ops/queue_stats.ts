/**
 * Queue depth by state and the oldest message's age, counted from the spool's
 * records when metrics are scraped (at most every few seconds, so a scrape of a
 * large queue does not read it every time).
 */

import type { Spool } from "../queue/spool.ts";
import type { Metrics, QueueState } from "./metrics.ts";

/** Counts the queue into `metrics` when the last count is older than `everyMs`. */
export class QueueStats {
  #countedAt = -Infinity;

  constructor(
    readonly spool: Spool,
    /** True in hold mode: every queued message is held. */
    readonly holding: boolean,
    readonly everyMs = 5000,
  ) {}

  /** Refreshes `queueDepth` and `queue_oldest_message_age_seconds` if due. */
  async sample(metrics: Metrics, now = Date.now()): Promise<void> {
    if (now - this.#countedAt < this.everyMs) return;
    this.#countedAt = now;
    const { records } = await this.spool.list();
    const depth: Record<QueueState, number> = { due: 0, deferred: 0, held: 0 };
    let oldest = now;
    for (const r of records) {
      oldest = Math.min(oldest, Date.parse(r.receivedAt));
      if (this.holding) depth.held++;
      else if (Date.parse(r.nextAttemptAt) <= now) depth.due++;
      else depth.deferred++;
    }
    metrics.queueDepth = depth;
    metrics.set("queue_oldest_message_age_seconds", Math.max(0, Math.round((now - oldest) / 1000)));
  }
}
