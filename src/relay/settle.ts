/**
 * Recording what an attempt did: each recipient's outcome durably first, then
 * the DSNs owed (bounces, "relayed" notices, one delay warning), then removing the
 * message once nothing is left pending. The worker's schedule learns the result through a SettleHost.
 */

import type { Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { QueueRecord, RecipientRecord } from "../queue/record.ts";
import type { RetryPolicy } from "../queue/schedule.ts";
import { type Spool, UnknownMessageError } from "../queue/spool.ts";
import { type BounceSource, remoteMtaOf, storeBounce } from "./bounce_queue.ts";
import { delayWarningAt, delayWarningDue } from "./dsn_policy.ts";
import { applyResults } from "./outcome.ts";
import type { RecipientResult } from "./upstream_types.ts";

/** What settling tells the worker that owns the schedule. */
export interface SettleHost {
  /** The message's next attempt is at `at` (ms since epoch). */
  reschedule(id: string, at: number): void;
  /** A new message (a bounce) is due now. */
  added(id: string): void;
  /** The message is no longer queued (delivered, failed, bounced or deleted). */
  gone(id: string): void;
}

/** Settings of a Settler. */
export interface SettleOptions {
  spool: Spool;
  log: Logger;
  metrics: Metrics;
  hostname: string;
  /** The upstreams, for logs, metrics and reports' Remote-MTA (names never hold secrets). */
  upstreams: readonly { name: string }[];
  retry: RetryPolicy;
}

/** Writes attempts' outcomes, queues bounces and removes finished messages. */
export class Settler {
  /** Ids known to have no updated record beside their file (queued here, never updated). */
  readonly #noOverlay = new Set<string>();

  constructor(readonly options: SettleOptions, readonly host: SettleHost) {}

  /** The message was just queued by this server: removing it needs no overlay cleanup. */
  queuedHere(id: string): void {
    this.#noOverlay.add(id);
  }

  /** The message may have an overlay now (or is gone): forget what was known. */
  forget(id: string): void {
    this.#noOverlay.delete(id);
  }

  /** Writes the outcome durably first, then bounces, then removes finished messages. */
  async record(
    record: QueueRecord,
    results: RecipientResult[],
    attemptError: string | undefined,
    opts: { attempted: boolean; retryAt?: number; retryBy?: number } = { attempted: true },
  ): Promise<void> {
    const { log, spool } = this.options;
    const now = new Date();
    // A delay warning falling due before the next retry brings that retry forward to it.
    const warnAt = delayWarningAt(record, this.options.retry.delayWarningMs ?? 0);
    const retryBy = warnAt !== undefined && warnAt > now.getTime()
      ? Math.min(warnAt, opts.retryBy ?? Infinity)
      : opts.retryBy;
    const { changes, deferred, delay, settled, ...outcome } = applyResults(
      record,
      results,
      attemptError,
      {
        now,
        retry: this.options.retry,
        attempted: opts.attempted,
        retryAt: opts.retryAt,
        retryBy,
      },
    );
    let updated = outcome.updated;
    for (const { address, result } of changes) this.#logChange(record.id, address, result);
    if (deferred > 0) {
      log.info("deferred", {
        id: record.id,
        rcpts: deferred,
        attempts: updated.attempts,
        retryIn: `${Math.round(delay / 1000)}s`,
        error: updated.lastError,
      });
    }
    if (settled) {
      // Nothing left to do or to bounce: removing the record is the one durable step
      // needed (as atomic as rewriting it), so the common case costs one fsync less.
      await this.finishIfDone(updated);
      return;
    }
    this.#noOverlay.delete(record.id);
    // Queued before the record says so: a crash between repeats the warning, never loses it.
    if (deferred > 0 && (await this.#warnOfDelay(updated))) {
      updated = { ...updated, delayWarned: true };
    }
    try {
      await spool.update(updated);
    } catch (e) {
      if (e instanceof UnknownMessageError) {
        this.host.gone(record.id);
        return;
      }
      throw e;
    }
    // Rescheduled only once the bounce is queued: no other lane may take it meanwhile.
    if (!(await this.finishIfDone(updated))) {
      this.host.reschedule(record.id, Date.now() + delay);
    }
  }

  /**
   * Queues the DSN owed for failed (and NOTIFY=SUCCESS delivered) recipients, recorded
   * after the DSN is on disk, so a crash between repeats it rather than loses it; then
   * removes the message once no recipient is pending.
   */
  async finishIfDone(record: QueueRecord): Promise<boolean> {
    const { log, spool } = this.options;
    const unbounced = record.recipients.filter((r) => r.bounced === false);
    if (unbounced.length > 0) {
      if (record.kind === "bounce" || record.sender === "") {
        log.warn("no bounce for a null sender: dropping failed recipients", {
          id: record.id,
          rcpts: unbounced.length,
          kind: record.kind,
        });
      } else {
        await this.#queueBounce(record, unbounced);
      }
      record = {
        ...record,
        recipients: record.recipients.map((r) => r.bounced === false ? { ...r, bounced: true } : r),
      };
      this.#noOverlay.delete(record.id);
      try {
        await spool.update(record);
      } catch (e) {
        if (!(e instanceof UnknownMessageError)) throw e;
      }
    }
    if (record.recipients.some((r) => r.status === "pending")) return false;
    try {
      await spool.remove(record.id, { noRecord: this.#noOverlay.has(record.id) });
      log.info("removed", {
        id: record.id,
        delivered: record.recipients.filter((r) => r.status === "delivered").length,
        failed: record.recipients.filter((r) => r.status === "failed").length,
      });
    } catch (e) {
      if (!(e instanceof UnknownMessageError)) throw e;
    }
    this.#noOverlay.delete(record.id);
    this.host.gone(record.id);
    return true;
  }

  #logChange(id: string, address: string, result: RecipientResult): void {
    const { log, metrics } = this.options;
    const upstream = result.upstream ?? this.options.upstreams[0]?.name ?? "none";
    metrics.outcome(result.status, upstream);
    if (result.status === "delivered") {
      log.info("delivered", { id, to: `<${address}>`, upstream, response: result.response });
    } else if (result.status === "failed") {
      log.warn("failed", { id, to: `<${address}>`, upstream, response: result.response });
    }
  }

  async #queueBounce(record: QueueRecord, owed: RecipientRecord[]): Promise<void> {
    const { spool, log, metrics } = this.options;
    const id = await storeBounce(spool, record, owed, this.#source());
    const failed = owed.filter((r) => r.status === "failed").length;
    if (failed > 0) metrics.inc("bounces_total");
    log.info(failed > 0 ? "bounce queued" : "relayed notice queued", {
      id,
      for: record.id,
      to: `<${record.sender}>`,
      rcpts: owed.length,
    });
    this.host.added(id);
  }

  /** Who the DSNs say reported: this host, and the upstream's host. */
  #source(): BounceSource {
    return {
      hostname: this.options.hostname,
      remoteMta: remoteMtaOf(this.options.upstreams[0]?.name),
    };
  }

  /** Queues the one delay warning (RFC 3464 "delayed") when it is due; true if it was. */
  async #warnOfDelay(record: QueueRecord): Promise<boolean> {
    const { spool, log, metrics, retry } = this.options;
    const pending = delayWarningDue(record, retry.delayWarningMs ?? 0, Date.now());
    if (pending.length === 0) return false;
    const giveUp = new Date(Date.parse(record.receivedAt) + retry.lifetimeMs);
    const id = await storeBounce(spool, record, pending, this.#source(), giveUp);
    metrics.inc("delay_warnings_total");
    log.info("delay warning queued", {
      id,
      for: record.id,
      to: `<${record.sender}>`,
      rcpts: pending.length,
    });
    this.host.added(id);
    return true;
  }
}
