/** Builds the delivery worker from the configuration (none in hold mode). */

import type { Config } from "../config.ts";
import type { Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { QueueRecord } from "../queue/record.ts";
import type { Spool } from "../queue/spool.ts";

/** The running delivery worker, as the server sees it. */
export interface DeliveryWorker {
  notify(record: QueueRecord): void;
  start(): Promise<void>;
  stop(graceMs: number): Promise<void>;
  describe(): string;
  readonly queueSize: number;
}

/** Returns the worker for the configured upstream, or undefined in hold mode. */
export function createDeliveryWorker(
  config: Config,
  _spool: Spool,
  _log: Logger,
  _metrics: Metrics,
): Promise<DeliveryWorker | undefined> {
  if (!config.upstream) return Promise.resolve(undefined);
  return Promise.reject(new Error("relay not built yet"));
}
