/**
 * Carrying out `carrier queue delete|hold|release|requeue` in the running server: requests
 * are picked up at each poll and applied between attempts, never in the middle of one, so
 * the operator never races a delivery's record.
 */

import { errorMessage, type Logger } from "../ops/log.ts";
import { operatorUpdate } from "../queue/operator_update.ts";
import type { OperatorRequest } from "../queue/requests.ts";
import { type Spool, UnknownMessageError } from "../queue/spool.ts";

/** What the desk needs of the worker's schedule. */
export interface DeskHost {
  /** An attempt of this message is under way. */
  inFlight(id: string): boolean;
  /** Forget what is known of the message (its schedule, caches): its record changed or went. */
  forget(id: string): void;
  /** The message is on hold: kept, never tried. */
  held(id: string): void;
  /** Try the message at `at` (ms since epoch). */
  schedule(id: string, at: number, opts: { endPause: boolean }): void;
}

/** Applies operator requests for one worker. */
export class OperatorDesk {
  /** Requests for messages that were in flight, applied when their attempt ends. */
  readonly #afterAttempt = new Map<string, OperatorRequest[]>();

  constructor(
    readonly options: { spool: Spool; log: Logger },
    readonly host: DeskHost,
  ) {}

  /** Applies every waiting request (deletes first); those for messages in flight wait. */
  async applyPending(): Promise<void> {
    try {
      for (const request of await this.options.spool.requests.pending()) {
        if (!this.host.inFlight(request.id)) await this.#apply(request);
        else {
          const waiting = this.#afterAttempt.get(request.id) ?? [];
          if (!waiting.some((r) => r.action === request.action)) waiting.push(request);
          this.#afterAttempt.set(request.id, waiting);
        }
      }
    } catch (e) {
      this.options.log.error("operator requests failed", { error: errorMessage(e) });
    }
  }

  /** An attempt ended: requests that waited for it are applied now. */
  async attemptEnded(id: string): Promise<void> {
    const waiting = this.#afterAttempt.get(id);
    if (!waiting) return;
    this.#afterAttempt.delete(id);
    for (const request of waiting) {
      await this.#apply(request).catch((e) =>
        this.options.log.error(`${request.action} failed`, { id, error: errorMessage(e) })
      );
    }
  }

  async #apply(request: OperatorRequest): Promise<void> {
    const { spool, log } = this.options;
    const { action, id } = request;
    this.host.forget(id);
    try {
      if (action === "delete") {
        await spool.remove(id);
        log.info("deleted by operator", { id });
      } else {
        const updated = operatorUpdate(action, await spool.read(id), new Date());
        await spool.update(updated);
        if (updated.held) this.host.held(id);
        else {
          const at = Date.parse(updated.nextAttemptAt);
          this.host.schedule(id, at, { endPause: action === "requeue" });
        }
        log.info(`${action === "hold" ? "held" : `${action}d`} by operator`, { id });
      }
    } catch (e) {
      if (!(e instanceof UnknownMessageError)) throw e;
      log.info(`${action}: no such message (already gone)`, { id });
    }
    // Cleared only now: a crash before this point leaves the request to be applied again.
    await spool.requests.clear(request);
  }
}
