/**
 * The delivery worker: takes due messages from the spool, sends them upstream on
 * a bounded number of reused connections, records each recipient's outcome
 * durably before anything else, schedules retries, and queues bounces. What was
 * recorded delivered is never sent again; what was not is retried (at-least-once).
 */

import { settlesWithin } from "../deadline.ts";
import { errorMessage, type Logger } from "../ops/log.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { QueueRecord } from "../queue/record.ts";
import type { RetryPolicy } from "../queue/schedule.ts";
import type { Spool } from "../queue/spool.ts";
import { FreshCache } from "./fresh_cache.ts";
import { type AttemptContext, attemptMessage } from "./attempt.ts";
import { type Lane, slowStart } from "./lane.ts";
import { applyScan } from "./scan_apply.ts";
import { OperatorDesk } from "./operator_desk.ts";
import { ServerStateWriter } from "../queue/server_state.ts";
import { Settler } from "./settle.ts";
import { UpstreamPauses } from "./upstream_pause.ts";
import { QuotaBook } from "./upstream_quota.ts";
import { ConnectionSlots, slotsByName } from "./connection_slots.ts";
import { DueQueue } from "./due_queue.ts";
import { type QueueCounts, queueCounts } from "./queue_counts.ts";
import type { UpstreamTarget } from "./upstream_types.ts";
import { describeRouter, type Router, routerOf } from "./routes.ts";

/** How long stop() waits, after closing connections, for lanes still connecting. */
const CLOSE_GRACE_MS = 2000;
/** How often the spool is scanned again for messages the worker was not told about. */
const RESCAN_MS = 5 * 60_000;
/** How long an idle upstream connection is kept for the next message (ms). */
const LINGER_MS = 2000;

/** Settings of the worker. */
export interface WorkerOptions {
  spool: Spool;
  log: Logger;
  metrics: Metrics;
  /** Every upstream (the default list first, in failover order); none is hold mode. */
  upstreams: UpstreamTarget[];
  /** Which upstreams, in order, each recipient's copy goes through (default: all, in order). */
  router?: Router;
  hostname: string;
  concurrency: number;
  messagesPerConnection: number;
  retry: RetryPolicy;
  /** How often to look for a `queue flush` request (ms). */
  pollMs?: number;
}

/** Delivers the queue through its upstreams, in failover order. */
export class DeliveryWorker {
  /** Scheduled messages by earliest next attempt; in-flight ones are not in it. */
  #schedule = new DueQueue();
  #inFlight = new Set<string>();
  /** Records (and small messages' bytes) handed over by `notify`, used by the first attempt. */
  #fresh = new FreshCache();
  /** Records outcomes, queues bounces and removes finished messages. */
  #settler: Settler;
  /** Messages put on hold by the operator: kept, never tried. */
  #held = new Set<string>();
  /** Carries out `carrier queue delete|hold|release|requeue`. */
  #desk: OperatorDesk;
  #attemptContext: AttemptContext;
  #state: ServerStateWriter;
  /** Ids changed while a scan reads the spool: the scan's older view must not override them. */
  #touched = new Set<string>();
  #lastScan = 0;
  /** After a failure to connect or log in, that upstream waits (see UpstreamPause). */
  #pauses: UpstreamPauses;
  /** Each upstream's quotas (messages a minute, a day), counted across restarts. */
  #quotas: QuotaBook;
  /** Each upstream's `max_connections` (see ConnectionSlots). */
  #slots = new Map<string, ConnectionSlots>();
  #lanes = new Set<Lane>();
  /** Wakes lanes that keep an idle connection open (see #linger). */
  #lingering = new Set<() => void>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #poller: ReturnType<typeof setInterval> | undefined;
  #polling: Promise<void> | undefined;
  #running = false;
  #stopping = false;
  /** Aborted by stop(): lanes waiting for a connection slot give up. */
  #stop = new AbortController();
  #scanning: Promise<void> | undefined;

  constructor(readonly options: WorkerOptions) {
    this.#state = new ServerStateWriter(options.spool.dir, options.log);
    this.#pauses = new UpstreamPauses(
      options.retry,
      options.upstreams.map((u) => u.name),
      () => this.#publish(),
    );
    this.#quotas = new QuotaBook(options.spool.dir, options.log, options.upstreams);
    this.#slots = slotsByName(this.#slots, options.upstreams);
    this.#settler = new Settler(options, {
      reschedule: (id, at) => {
        this.#touched.add(id);
        this.#schedule.set(id, at);
      },
      added: (id) => {
        this.#touched.add(id);
        this.#schedule.set(id, Date.now());
        this.#kick();
      },
      gone: (id) => {
        this.#touched.add(id);
        this.#schedule.delete(id);
        // Its lane still counts it in flight until the attempt returns; it is no longer queued.
        const inFlight = this.#inFlight.has(id) ? 1 : 0;
        this.options.metrics.set("queue_messages", this.queueSize - inFlight);
      },
    });
    this.#attemptContext = {
      options,
      fresh: this.#fresh,
      settler: this.#settler,
      schedule: this.#schedule,
      pauses: this.#pauses,
      quotas: this.#quotas,
      slots: (name) => this.#slots.get(name) ?? new ConnectionSlots(0),
      stopping: this.#stop.signal,
      kick: () => this.#kick(),
    };
    this.#desk = new OperatorDesk(options, {
      inFlight: (id) => this.#inFlight.has(id),
      forget: (id) => {
        this.#touched.add(id);
        this.#schedule.delete(id);
        this.#held.delete(id);
        this.#fresh.take(id);
        this.#settler.forget(id);
      },
      held: (id) => this.#held.add(id),
      schedule: (id, at, { endPause }) => {
        this.#schedule.set(id, at);
        if (endPause) this.#pauses.recovered();
        this.#kick();
      },
    });
  }

  get #holding(): boolean {
    return this.options.upstreams.length === 0;
  }

  /** Messages known to the worker (queued and not yet finished). */
  get queueSize(): number {
    return this.#schedule.size + this.#inFlight.size + this.#held.size;
  }

  /** Queue depth by state and the oldest message, from the schedule in memory. */
  queueCounts(now: number): QueueCounts {
    return queueCounts(this.#schedule, this.#inFlight, this.#held, this.#holding, now);
  }

  /** The upstreams' pause state, for metrics and /readyz. */
  get upstreamPause(): UpstreamPauses {
    return this.#pauses;
  }

  /**
   * Takes new delivery settings (a reload): new connections use them, connections open now
   * finish their messages first. Hold mode cannot be turned on or off this way.
   */
  reconfigure(next: Omit<WorkerOptions, "spool" | "log" | "metrics" | "pollMs">): void {
    if ((next.upstreams.length === 0) !== this.#holding) {
      throw new Error("switching between hold mode and an upstream needs a restart");
    }
    for (const lane of this.#lanes) lane.retire = true;
    // Pauses, quotas and connection slots are kept by upstream name (connections opened
    // before the reload count); attempts under way keep their own view.
    this.#slots = slotsByName(this.#slots, next.upstreams);
    this.#pauses.resize(next.upstreams.map((u) => u.name));
    this.#quotas.resize(next.upstreams);
    Object.assign(this.options, next);
    this.#kick();
  }

  /** Where mail goes, for the start-up log line. */
  describe(): string {
    if (this.#holding) return "none (hold mode)";
    return describeRouter(routerOf(this.options), this.options.upstreams.map((u) => u.name));
  }

  /** Scans the spool (messages survive restarts) and begins delivering. */
  async start(): Promise<void> {
    this.#running = true;
    await this.#quotas.load();
    await this.#publish();
    // Requests left from before a restart are applied before anything is sent.
    await this.#desk.applyPending();
    // In hold mode a flush request is left in place for a server with an upstream.
    await this.#scan(this.#holding ? false : await this.options.spool.requests.takeFlush());
    this.#poller = setInterval(() => {
      if (this.#polling) return; // the previous poll is still under way
      this.#polling = this.#poll()
        .catch((e) => this.options.log.error("queue scan failed", { error: errorMessage(e) }))
        .finally(() => this.#polling = undefined);
    }, this.options.pollMs ?? 1000);
    this.#kick();
  }

  /**
   * A message was just queued: try it now. `bytes`, for a small message, saves
   * reading it back from the spool for the first attempt.
   */
  notify(record: QueueRecord, bytes?: Uint8Array): void {
    if (!this.#running || this.#stopping) return;
    this.#touched.add(record.id);
    this.#schedule.set(record.id, Date.parse(record.nextAttemptAt));
    if (!this.#holding) this.#fresh.put(record, bytes);
    this.#settler.queuedHere(record.id);
    this.#kick();
  }

  /**
   * Stops taking new messages, lets deliveries under way finish within `graceMs`,
   * then closes the upstream connections. Unfinished messages stay queued.
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    this.#stop.abort();
    clearTimeout(this.#timer);
    clearInterval(this.#poller);
    for (const wake of [...this.#lingering]) wake();
    const all = Promise.all([...this.#lanes].map((l) => l.done));
    if (!(await settlesWithin(all, graceMs))) {
      this.options.log.warn("shutdown: closing upstream connections still busy", {
        lanes: this.#lanes.size,
      });
      for (const lane of this.#lanes) await lane.session?.close().catch(() => {});
      // A lane still connecting or logging in has no connection to close yet: do not wait
      // out its timeouts (the process is about to end; the message stays queued).
      if (!(await settlesWithin(all, CLOSE_GRACE_MS))) {
        this.options.log.warn("shutdown: leaving upstream connection attempts behind", {
          lanes: this.#lanes.size,
        });
      }
    }
    // A poll under way finishes before stop() returns: nothing touches the spool afterwards.
    await this.#polling;
    await this.#scanning;
    this.#running = false;
    await this.#quotas.close();
    await this.#state.close();
  }

  /** Tells `carrier queue list` why mail waits: hold mode, or the upstream's pause. */
  #publish(): Promise<void> {
    const { until, error } = this.#pauses;
    return this.#state.publish({
      mode: this.#holding ? "hold" : "relay",
      ...(until > 0 ? { pausedUntil: new Date(until).toISOString(), pauseError: error } : {}),
    });
  }

  async #poll(): Promise<void> {
    if (this.#stopping || this.#scanning) return;
    const { log, spool } = this.options;
    await this.#desk.applyPending();
    // Once stopping, a flush request is left in place for the next start.
    if (!this.#holding && !this.#stopping && await spool.requests.takeFlush()) {
      log.info("flush requested: trying every queued message now");
      await this.#scan(true);
      this.#kick();
    } else if (!this.#holding && Date.now() - this.#lastScan >= RESCAN_MS) {
      // A safety net: anything queued that the worker was not told about is found.
      await this.#scan(false);
      this.#kick();
    }
  }

  /** Loads every record; with `flush`, everything pending is due now. */
  #scan(flush: boolean): Promise<void> {
    const run = async () => {
      this.#touched.clear();
      const { records, problems } = await this.options.spool.list();
      for (const p of problems) this.options.log.error("unreadable queue record", { problem: p });
      const now = Date.now();
      const view = {
        schedule: this.#schedule,
        held: this.#held,
        fresh: this.#fresh,
        inFlight: this.#inFlight,
        touched: this.#touched,
      };
      applyScan(view, records, flush, now);
      if (flush) this.#pauses.recovered();
      this.#lastScan = now;
      this.options.metrics.set("queue_messages", this.queueSize);
    };
    this.#scanning = run().finally(() => this.#scanning = undefined);
    return this.#scanning;
  }

  /** Starts lanes for due messages, up to the concurrency limit, and arms the timer. */
  #kick(): void {
    if (!this.#running || this.#stopping || this.#holding) return;
    const now = Date.now();
    if (this.#pauses.paused(now)) {
      // One login failure is enough: do not try it again once per queued message.
      clearTimeout(this.#timer);
      this.#timer = setTimeout(
        () => this.#kick(),
        Math.min(this.#pauses.until - now, 2 ** 31 - 1),
      );
      return;
    }
    const next = this.#schedule.nextAt();
    // While every upstream is failing, one lane probes; the others wait for a success.
    const lanes = this.#pauses.failures > 0 ? 1 : this.options.concurrency;
    // A lane that finds nothing due left ends at once, so an estimate is enough here.
    let due = next <= now ? this.#schedule.size : 0;
    // Lanes keeping their connection for more mail take it first.
    for (const wake of [...this.#lingering]) {
      if (due-- <= 0) break;
      wake();
    }
    const { free, warming } = slowStart(this.#lanes, lanes, now);
    for (let i = 0; i < Math.min(free, due); i++) this.#startLane();
    clearTimeout(this.#timer);
    const wake = Math.min(
      next !== Infinity && next > now ? next : Infinity,
      due > 0 ? warming : Infinity,
    );
    if (wake !== Infinity) {
      this.#timer = setTimeout(() => this.#kick(), Math.min(Math.max(0, wake - now), 2 ** 31 - 1));
    }
  }

  #takeDue(): string | undefined {
    if (this.#stopping) return undefined;
    const now = Date.now();
    if (this.#pauses.paused(now)) return undefined;
    for (let id = this.#schedule.takeDue(now); id !== undefined; id = this.#schedule.takeDue(now)) {
      // Scheduled again while an attempt is under way (a scan): that attempt reschedules it.
      if (this.#inFlight.has(id)) continue;
      this.#inFlight.add(id);
      return id;
    }
    return undefined;
  }

  #startLane(): void {
    const lane: Lane = {
      session: undefined,
      done: Promise.resolve(),
      lastUsed: 0,
      warmingSince: Date.now(),
    };
    lane.done = this.#runLane(lane).finally(() => {
      this.#lanes.delete(lane);
      this.#kick();
    });
    this.#lanes.add(lane);
  }

  async #runLane(lane: Lane): Promise<void> {
    try {
      for (
        let id = this.#takeDue();
        id !== undefined;
        id = this.#takeDue() ?? await this.#linger(lane)
      ) {
        try {
          await attemptMessage(this.#attemptContext, lane, id);
        } catch (e) {
          this.options.log.error("delivery attempt failed unexpectedly", {
            id,
            error: errorMessage(e),
          });
          this.#schedule.set(id, Date.now() + this.options.retry.minMs);
        } finally {
          if (lane.warmingSince !== undefined) {
            lane.warmingSince = undefined; // its first attempt is over: the next lane may start
            this.#kick();
          }
          this.#inFlight.delete(id);
          await this.#desk.attemptEnded(id);
        }
      }
    } finally {
      await lane.session?.close().catch(() => {});
      lane.session = undefined;
    }
  }

  /**
   * Nothing is due: a lane with a working connection keeps it for a moment (as
   * Postfix's connection cache does), so mail trickling in does not cost one
   * connection and one login per message. Resolves with the next due id, if any.
   */
  async #linger(lane: Lane): Promise<string | undefined> {
    if (this.#stopping || !lane.session?.usable) return undefined;
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#lingering.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, LINGER_MS);
      this.#lingering.add(wake);
    });
    return this.#takeDue();
  }
}
