/**
 * The pause after an upstream could not take mail (connect, TLS, login, an account-level
 * refusal or a throttling reply): one failure of the upstream, not one per message,
 * doubling per outage, over when a connection gets through or on `queue flush`. With a
 * failover list each upstream has its own; deliveries wait only when all are paused.
 */

import { retryDelayMs, type RetryPolicy } from "../queue/schedule.ts";
import { keepByName } from "./by_name.ts";

/** Soft failures in a row that pause an upstream. */
const SOFT_FAILURES = 3;

/** Whether, and until when, deliveries wait for the upstream. */
export class UpstreamPause {
  #until = 0;
  #failures = 0;
  #failingSince = 0;
  #error: string | undefined;
  /** Messages in a row it lost mid-transaction or refused with a plain 4xx to MAIL FROM. */
  #soft = 0;

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

  /**
   * Counts a soft failure (a connection lost mid-transaction, a plain 4xx to MAIL FROM); true
   * on the third in a row, when it should pause as for a failure to connect.
   */
  softFailure(): boolean {
    if (++this.#soft < SOFT_FAILURES) return false;
    this.#soft = 0;
    return true;
  }

  /** It delivered: soft failures start counting again. */
  delivered(): void {
    this.#soft = 0;
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

/** The pauses of the upstreams in failover order, and what they mean together. */
export class UpstreamPauses {
  /** By name, in the list's order. */
  #byName = new Map<string, UpstreamPause>();
  /** The same, as a list (read on every kick: kept, not rebuilt each time). */
  #pauses: UpstreamPause[] = [];

  constructor(
    readonly retry: RetryPolicy,
    names: readonly string[],
    readonly onChange: () => void,
  ) {
    this.resize(names);
  }

  /** The pause of the upstream `name` (an attempt begun before a reload keeps its objects). */
  of(name: string): UpstreamPause {
    return this.#byName.get(name) ?? new UpstreamPause(this.retry, this.onChange);
  }

  /** After a reload: the new list; an upstream kept by name keeps its pause. */
  resize(names: readonly string[]): void {
    this.#byName = keepByName(
      this.#byName,
      names,
      () => new UpstreamPause(this.retry, this.onChange),
    );
    this.#pauses = [...this.#byName.values()];
  }

  /** True while every upstream is paused: nothing can be sent. */
  paused(now = Date.now()): boolean {
    return this.#pauses.length > 0 && this.#pauses.every((p) => p.paused(now));
  }

  /** When the first upstream may be tried again, while all are paused (else 0). */
  get until(): number {
    return this.paused() ? Math.min(...this.#pauses.map((p) => p.until)) : 0;
  }

  /** Outages in a row of the healthiest upstream: 0 while any works (then all lanes run). */
  get failures(): number {
    return this.#pauses.length === 0 ? 0 : Math.min(...this.#pauses.map((p) => p.failures));
  }

  /** Since when every upstream has been failing (ms since epoch; 0 while any works). */
  get failingSince(): number {
    const since = this.#pauses.map((p) => p.failingSince);
    return since.length > 0 && since.every((s) => s > 0) ? Math.max(...since) : 0;
  }

  /** The error that paused the first upstream, while all are paused. */
  get error(): string | undefined {
    return this.paused() ? this.#pauses[0]?.error : undefined;
  }

  /** Ends every pause (`queue flush`, `queue requeue`). */
  recovered(): void {
    for (const p of this.#pauses) p.recovered();
  }
}
