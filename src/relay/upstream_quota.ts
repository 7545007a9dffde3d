/**
 * An upstream's sending quotas: messages in any minute, messages and recipients in any
 * 24 hours (Gmail's about 500 a day for a consumer account, 2,000 for Workspace). Sliding
 * windows, as providers count them; the 24-hour counts survive a restart in a small file
 * in the spool. Mail over a quota waits (or takes the next upstream); it never bounces.
 */

import { join } from "node:path";
import { errorMessage, type Logger } from "../ops/log.ts";

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

/** One upstream's sliding windows of what it was sent. */
export class UpstreamQuota {
  /** When each message of the last minute went (oldest first). */
  #minute: number[] = [];
  /** Each message of the last 24 hours: when, and how many recipients (oldest first). */
  #day: [at: number, recipients: number][] = [];
  #dayRecipients = 0;

  constructor(readonly name: string, readonly limits: QuotaLimits, saved: [number, number][] = []) {
    if (this.#tracksDay) {
      for (const [at, n] of saved) {
        if (Number.isFinite(at) && Number.isInteger(n) && n > 0) this.#day.push([at, n]);
      }
      this.#day.sort((a, b) => a[0] - b[0]);
      this.#dayRecipients = this.#day.reduce((sum, [, n]) => sum + n, 0);
    }
  }

  get #tracksDay(): boolean {
    return this.limits.dailyMessages > 0 || this.limits.dailyRecipients > 0;
  }

  /** True when any quota is set. */
  get limited(): boolean {
    return this.#tracksDay || this.limits.messagesPerMinute > 0;
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
        until: this.#freeRecipientsAt(1),
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
    if (this.limits.messagesPerMinute > 0) this.#minute.push(now);
    if (this.#tracksDay) {
      this.#day.push([now, recipients]);
      this.#dayRecipients += recipients;
    }
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
  #freeRecipientsAt(n: number): number {
    let over = this.#dayRecipients + n - this.limits.dailyRecipients;
    for (const [at, count] of this.#day) {
      over -= count;
      if (over <= 0) return at + DAY_MS;
    }
    return Date.now() + DAY_MS;
  }
}

/**
 * The quotas of every upstream, kept in `quota-state.json` in the spool: written at most
 * once a second after a change (a crash forgets that second's sends, never mail) and at stop.
 */
export class QuotaBook {
  #quotas: UpstreamQuota[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> = Promise.resolve();

  /** Starts counting from zero; `load` adds what the last run saved. */
  constructor(
    readonly spoolDir: string,
    readonly log: Logger,
    upstreams: readonly { name: string; quota?: QuotaLimits }[],
  ) {
    this.#build(upstreams, {});
  }

  /** Reads the counts the last run saved (at start, before anything is sent). */
  async load(upstreams: readonly { name: string; quota?: QuotaLimits }[]): Promise<void> {
    if (
      upstreams.some((u) =>
        (u.quota?.dailyMessages ?? 0) > 0 || (u.quota?.dailyRecipients ?? 0) > 0
      )
    ) {
      this.#build(upstreams, await this.#read());
    }
  }

  /** Quota `i` of the upstream list. */
  at(i: number): UpstreamQuota {
    return this.#quotas[i]!;
  }

  /** After a reload: new limits, the counts so far kept by upstream name. */
  resize(upstreams: readonly { name: string; quota?: QuotaLimits }[]): void {
    const now = Date.now();
    this.#build(upstreams, Object.fromEntries(this.#quotas.map((q) => [q.name, q.snapshot(now)])));
  }

  #build(
    upstreams: readonly { name: string; quota?: QuotaLimits }[],
    saved: Record<string, [number, number][]>,
  ): void {
    this.#quotas = upstreams.map((u) =>
      new UpstreamQuota(
        u.name,
        u.quota ?? NO_QUOTA,
        Array.isArray(saved[u.name]) ? saved[u.name] : [],
      )
    );
  }

  /** Counts a transaction at upstream `i` and schedules the write. */
  count(i: number, recipients: number): void {
    const quota = this.#quotas[i]!;
    if (!quota.limited) return;
    quota.count(recipients, Date.now());
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

  async #read(): Promise<Record<string, [number, number][]>> {
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
      this.#quotas.filter((q) => q.limited).map((q) => [q.name, q.snapshot(now)]),
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
