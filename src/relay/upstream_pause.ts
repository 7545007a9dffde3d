/**
 * The pause after the upstream could not take mail (connect, TLS, login, or an
 * account-level refusal): one failure of the upstream, not one per message,
 * doubling per outage, over when a connection gets through or on `queue flush`.
 */

import { retryDelayMs, type RetryPolicy } from "../queue/schedule.ts";

/** Whether, and until when, deliveries wait for the upstream. */
export class UpstreamPause {
  #until = 0;
  #failures = 0;
  #failingSince = 0;
  #error: string | undefined;

  /** `onChange` hears of each failure and of the end of a pause. */
  constructor(readonly retry: RetryPolicy, readonly onChange: () => void = () => {}) {}

  /** The failure that began the current pause, while paused. */
  get error(): string | undefined {
    return this.#until === 0 ? undefined : this.#error;
  }

  /** Outages in a row (0 while the upstream works): while failing, one lane probes it. */
  get failures(): number {
    return this.#failures;
  }

  /** When deliveries may start again (ms since epoch; 0 when not paused). */
  get until(): number {
    return this.#until;
  }

  /** When the current run of failures began (ms since epoch; 0 while the upstream works). */
  get failingSince(): number {
    return this.#failingSince;
  }

  /** True while no lane may start. */
  paused(now = Date.now()): boolean {
    return now < this.#until;
  }

  /** Records a failure; returns the pause (ms). Lanes failing together count once. */
  failed(now = Date.now(), error?: string): number {
    if (now >= this.#until) this.#failures++;
    if (this.#failingSince === 0) this.#failingSince = now;
    const pause = retryDelayMs(this.retry, this.#failures);
    this.#until = Math.max(this.#until, now + pause);
    this.#error = error;
    this.onChange();
    return pause;
  }

  /** Ends the pause: the upstream took a connection, or the operator asked for a flush. */
  recovered(): void {
    const changed = this.#until !== 0 || this.#failures !== 0;
    this.#failures = 0;
    this.#until = 0;
    this.#failingSince = 0;
    if (changed) this.onChange();
  }
}
