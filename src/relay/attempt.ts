/**
 * One delivery attempt of one queued message: open it, bounce it if it has outlived the
 * queue lifetime, else send each route's recipients through its upstreams (failover.ts) and
 * record what each recipient got. A failure of an upstream itself pauses that upstream, and a
 * quota reached makes mail wait; neither fails mail.
 */

import { expired } from "../queue/schedule.ts";
import { UnknownMessageError } from "../queue/spool.ts";
import type { DueQueue } from "./due_queue.ts";
import type { FreshCache } from "./fresh_cache.ts";
import type { Lane, Loaded } from "./lane.ts";
import { failover, type Plan } from "./failover.ts";
import { expiryResults } from "./outcome.ts";
import type { Settler } from "./settle.ts";
import type { UpstreamPauses } from "./upstream_pause.ts";
import type { QuotaBook } from "./upstream_quota.ts";
import type { ConnectionSlots } from "./connection_slots.ts";
import { routerOf } from "./routes.ts";
import type { RecipientResult } from "./upstream_types.ts";
import type { WorkerOptions } from "./worker.ts";

/** The worker's parts an attempt uses. */
export interface AttemptContext {
  options: WorkerOptions;
  fresh: FreshCache;
  settler: Settler;
  schedule: DueQueue;
  pauses: UpstreamPauses;
  quotas: QuotaBook;
  /** The connection slots of the upstream `name`. */
  slots(name: string): ConnectionSlots;
  /** Aborts when the worker stops: no new upstream connection is opened. */
  stopping: AbortSignal;
  /** Starts lanes for what is due (the upstream works again). */
  kick(): void;
}

/** One delivery attempt of one message on the lane's connection. */
export async function attemptMessage(ctx: AttemptContext, lane: Lane, id: string): Promise<void> {
  const { spool } = ctx.options;
  const fresh = ctx.fresh.take(id);
  let opened: Loaded;
  try {
    opened = fresh?.bytes
      ? { record: fresh.record, head: fresh.bytes }
      : await spool.open(id, fresh?.record);
  } catch (e) {
    if (e instanceof UnknownMessageError) {
      ctx.schedule.delete(id); // deleted by `queue delete`
      return;
    }
    throw e;
  }
  try {
    await attemptOpened(ctx, lane, opened);
  } finally {
    try {
      opened.file?.close();
    } catch { /* closed by its stream */ }
  }
}

async function attemptOpened(ctx: AttemptContext, lane: Lane, opened: Loaded): Promise<void> {
  const { log, metrics } = ctx.options;
  const record = opened.record;
  const id = record.id;
  if (await ctx.settler.finishIfDone(record)) return;
  const pending = record.recipients.filter((r) => r.status === "pending");
  const now = Date.now();
  // Every message gets at least one real attempt: mail held (hold mode) past its
  // lifetime is tried when an upstream appears, not bounced unseen.
  if (record.attempts > 0 && expired(ctx.options.retry, record.receivedAt, now)) {
    log.warn("expired", { id, rcpts: pending.length, lastError: record.lastError });
    const { results, reason } = expiryResults(record, now);
    await ctx.settler.record(record, results, reason, { attempted: false });
    return;
  }
  metrics.inc("delivery_attempts_total");
  // This attempt's view of the upstreams: a reload meanwhile changes the next attempt's.
  const { upstreams } = ctx.options;
  const plan: Plan = {
    upstreams,
    pauses: upstreams.map((u) => ctx.pauses.of(u.name)),
    quotas: upstreams.map((u) => ctx.quotas.of(u.name)),
    slots: upstreams.map((u) => ctx.slots(u.name)),
  };
  // Recipients with different routes go through different upstreams, one group at a time.
  const groups = routerOf(ctx.options).group(record.sender, pending.map((r) => r.address));
  const results: RecipientResult[] = [];
  const errors: string[] = [];
  let onlyQuota = true;
  let stopped = false;
  let waitUntil = Infinity;
  for (const group of groups) {
    const outcome = await failover(ctx, plan, lane, opened, group.recipients, group.via);
    if (!outcome) {
      ctx.schedule.delete(id); // deleted by `queue delete` while it was read
      return;
    }
    results.push(...outcome.results);
    if (outcome.attemptError && !errors.includes(outcome.attemptError)) {
      errors.push(outcome.attemptError);
    }
    onlyQuota &&= outcome.onlyQuota;
    stopped ||= outcome.stopped;
    waitUntil = Math.min(waitUntil, outcome.waitUntil);
  }
  const attemptError = errors.join("; ") || undefined;
  if (stopped) {
    // Cut short by a stop: what was answered is kept, the rest is due again at the next start.
    await ctx.settler.record(record, results, attemptError, {
      attempted: false,
      retryAt: Date.now(),
    });
    return;
  }
  if (onlyQuota && waitUntil !== Infinity) {
    // Only quotas held it back (no upstream tried, nothing answered): it waits for them, no
    // attempt counted.
    // The record already says so (near enough for `queue list`): no rewrite per window.
    const stored = Date.parse(record.nextAttemptAt);
    if (record.lastError === attemptError && Math.abs(stored - waitUntil) < QUOTA_DRIFT_MS) {
      ctx.schedule.set(id, waitUntil);
      return;
    }
    await ctx.settler.record(record, results, attemptError, {
      attempted: false,
      retryAt: waitUntil,
    });
    return;
  }
  // Recipients a quota or pause held back are due when it ends, if that is before the backoff.
  await ctx.settler.record(
    record,
    results,
    attemptError,
    waitUntil === Infinity ? undefined : { attempted: true, retryBy: waitUntil },
  );
}

/** How far the stored next attempt may be from a quota's time before the record is rewritten. */
const QUOTA_DRIFT_MS = 5 * 60_000;
