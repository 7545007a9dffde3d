/**
 * An upstream's sending quotas: messages in any minute, messages and recipients in any
 * 24 hours (Gmail's about 500 a day for a consumer account, 2,000 for Workspace). Sliding
 * windows, as providers count them; the 24-hour counts survive a restart in a small file
 * in the spool. Mail over a quota waits (or takes the next upstream); it never bounces.
 */

import { join } from "node:path";
import { errorMessage, type Logger } from "../ops/log.ts";
import { keepByName } from "./by_name.ts";

/** The file's name in the spool directory. */
export const QUOTA_STATE_FILE = "quota-state.json";

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 3600_000;

/** An upstream's quotas; 0 is none. */
export interface QuotaLimits {
  messagesPerMinute: number;
  dailyMessages: number;
  dailyRecipients: number;
}

const NO_QUOTA: QuotaLimits = { messagesPerMinute: 0, dailyMessages: 0, dailyRecipients: 0 };

/** Why an upstream takes no more now, and when it will. */
export interface QuotaWait {
  /** When the window frees room again (ms since epoch). */
  until: number;
  reason: string;
}

/** A send counted ahead of its reply, so lanes running at once cannot overshoot a quota. */
export interface Reservation {
  /** The send ended: `delivered` recipients count (none: the reservation is returned). */
  settle(delivered: number): void;
}

/** The reservation of an upstream without quotas: nothing to count or give back. */
const UNCOUNTED: Reservation = { settle: () => {} };

/** One upstream's sliding windows of what it was sent. */
export class UpstreamQuota {
  /** When each message of the last minute went (oldest first). */
  #minute: number[] = [];
  /** Each message of the last 24 hours: when, and how many recipients (oldest first). */
  #day: [at: number, recipients: number][] = [];
  #dayRecipients = 0;

  constructor(readonly name: string, public limits: QuotaLimits) {}

  get #tracksDay(): boolean {
    return this.limits.dailyMessages > 0 || this.limits.dailyRecipients > 0;
  }

  /** True when any quota is set. */
  get limited(): boolean {
    return this.#tracksDay || this.limits.messagesPerMinute > 0;
  }

  /** Adds the 24-hour counts a previous run saved (entries that are not [time, count] are skipped). */
  restore(saved: unknown): void {
    if (!Array.isArray(saved)) return;
    for (const entry of saved) {
      if (!Array.isArray(entry) || entry.length !== 2) continue;
      const [at, n] = entry;
      if (Number.isFinite(at) && Number.isInteger(n) && n > 0) this.#day.push([at, n]);
    }
    this.#day.sort((a, b) => a[0] - b[0]);
    this.#dayRecipients = this.#day.reduce((sum, [, n]) => sum + n, 0);
  }

  /** Why no message may go now, or undefined when one may. */
  check(now: number): QuotaWait | undefined {
    this.#expire(now);
    const { messagesPerMinute, dailyMessages, dailyRecipients } = this.limits;
    if (dailyMessages > 0 && this.#day.length >= dailyMessages) {
      return {
        until: this.#day[this.#day.length - dailyMessages]![0] + DAY_MS,
        reason: `upstream ${this.name} daily quota of ${dailyMessages} messages reached`,
      };
    }
    if (dailyRecipients > 0 && this.#dayRecipients >= dailyRecipients) {
      return {
        until: this.#freeRecipientsAt(1, now),
        reason: `upstream ${this.name} daily quota of ${dailyRecipients} recipients reached`,
      };
    }
    if (messagesPerMinute > 0 && this.#minute.length >= messagesPerMinute) {
      return {
        until: this.#minute[this.#minute.length - messagesPerMinute]! + MINUTE_MS,
        reason: `upstream ${this.name} rate of ${messagesPerMinute} messages a minute reached`,
      };
    }
    return undefined;
  }

  /** How many recipients one more message may have now (Infinity without a recipient quota). */
  recipientRoom(now: number): number {
    this.#expire(now);
    const { dailyRecipients } = this.limits;
    return dailyRecipients > 0 ? Math.max(0, dailyRecipients - this.#dayRecipients) : Infinity;
  }

  /** Counts one transaction sent with `recipients` recipients. */
  count(recipients: number, now: number): void {
    this.reserve(recipients, now).settle(recipients);
  }

  /**
   * Counts a transaction of `recipients` now, before it is sent (check, reserve and send run
   * without an await between the first two); `settle` corrects it once the reply is known.
   */
  reserve(recipients: number, now: number): Reservation {
    if (!this.limited) return UNCOUNTED;
    const minute = this.limits.messagesPerMinute > 0 ? now : undefined;
    if (minute !== undefined) this.#minute.push(minute);
    const day: [number, number] | undefined = this.#tracksDay ? [now, recipients] : undefined;
    if (day) {
      this.#day.push(day);
      this.#dayRecipients += recipients;
    }
    let settled = false;
    return {
      settle: (delivered) => {
        if (settled) return;
        settled = true;
        if (delivered > 0) {
          if (day && this.#day.includes(day)) {
            this.#dayRecipients += delivered - day[1];
            day[1] = delivered;
          }
          return;
        }
        if (minute !== undefined) {
          const i = this.#minute.lastIndexOf(minute);
          if (i >= 0) this.#minute.splice(i, 1);
        }
        if (day) {
          const i = this.#day.indexOf(day);
          if (i >= 0) {
            this.#day.splice(i, 1);
            this.#dayRecipients -= day[1];
          }
        }
      },
    };
  }

  /** What survives a restart: the last 24 hours' messages. */
  snapshot(now: number): [number, number][] {
    this.#expire(now);
    return this.#day.map(([at, n]) => [at, n]);
  }

  #expire(now: number): void {
    let drop = 0;
    while (drop < this.#minute.length && this.#minute[drop]! <= now - MINUTE_MS) drop++;
    if (drop > 0) this.#minute.splice(0, drop);
    drop = 0;
    while (drop < this.#day.length && this.#day[drop]![0] <= now - DAY_MS) {
      this.#dayRecipients -= this.#day[drop]![1];
      drop++;
    }
    if (drop > 0) this.#day.splice(0, drop);
  }

  /** When `n` recipients' room frees up, as the oldest messages leave the window. */
  #freeRecipientsAt(n: number, now: number): number {
    let over = this.#dayRecipients + n - this.limits.dailyRecipients;
    for (const [at, count] of this.#day) {
      over -= count;
      if (over <= 0) return at + DAY_MS;
    }
    return now + DAY_MS;
  }
}

/** An upstream as the quota book knows it. */
type Named = { name: string; quota?: QuotaLimits };

/**
 * The quotas of every upstream by name, kept in `quota-state.json` in the spool: written at
 * most once a second after a change (a crash forgets that second's sends, never mail) and at
 * stop. A reload keeps each upstream's counts, both windows, and takes its new limits.
 */
export class QuotaBook {
  #quotas = new Map<string, UpstreamQuota>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> = Promise.resolve();

  /** Starts counting from zero; `load` adds what the last run saved. */
  constructor(readonly spoolDir: string, readonly log: Logger, upstreams: readonly Named[]) {
    this.resize(upstreams);
  }

  /** Adds the counts the last run saved to the upstreams known now (at start). */
  async load(): Promise<void> {
    const saved = await this.#read();
    for (const [name, entries] of Object.entries(saved)) this.#quotas.get(name)?.restore(entries);
  }

  /** The quota of the upstream `name`. */
  of(name: string): UpstreamQuota {
    let quota = this.#quotas.get(name);
    if (!quota) {
      quota = new UpstreamQuota(name, NO_QUOTA);
      this.#quotas.set(name, quota);
    }
    return quota;
  }

  /** After a reload: the upstreams' new limits; the counts so far are kept by name. */
  resize(upstreams: readonly Named[]): void {
    this.#quotas = keepByName(
      this.#quotas,
      upstreams.map((u) => u.name),
      (name) => new UpstreamQuota(name, NO_QUOTA),
    );
    for (const u of upstreams) this.#quotas.get(u.name)!.limits = u.quota ?? NO_QUOTA;
  }

  /** Schedules the write of the counts (after a send was counted). */
  changed(): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#write();
    }, 1000);
  }

  /** Writes what is pending now (a stop). */
  async close(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#write();
    }
    await this.#writing;
  }

  async #read(): Promise<Record<string, unknown>> {
    try {
      const value = JSON.parse(await Deno.readTextFile(join(this.spoolDir, QUOTA_STATE_FILE)));
      return typeof value?.upstreams === "object" && value.upstreams !== null
        ? value.upstreams
        : {};
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        this.log.warn("quota state unreadable: counting from zero", { error: errorMessage(e) });
      }
      return {};
    }
  }

  #write(): void {
    const now = Date.now();
    const upstreams = Object.fromEntries(
      [...this.#quotas.values()].filter((q) => q.limited).map((q) => [q.name, q.snapshot(now)]),
    );
    const path = join(this.spoolDir, QUOTA_STATE_FILE);
    this.#writing = this.#writing.then(async () => {
      await Deno.writeTextFile(`${path}.tmp`, JSON.stringify({ upstreams }) + "\n", {
        mode: 0o600,
      });
      await Deno.rename(`${path}.tmp`, path);
    }).catch((e) => this.log.warn("quota state not written", { error: errorMessage(e) }));
  }
}
