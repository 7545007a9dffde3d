/**
 * One delivery attempt of one queued message: open it, bounce it if it has outlived the
 * queue lifetime, else send each route's recipients through its upstreams in failover order
 * and record what each recipient got. A failure of an upstream itself pauses that upstream,
 * and a quota reached makes mail wait; neither fails mail.
 */

import { expired } from "../queue/schedule.ts";
import { UnknownMessageError } from "../queue/spool.ts";
import type { DueQueue } from "./due_queue.ts";
import type { FreshCache } from "./fresh_cache.ts";
import { ensureConnected, type Lane, type Loaded, transact } from "./lane.ts";
import { isThrottle } from "./reply_outcome.ts";
import { expiryResults } from "./outcome.ts";
import type { Settler } from "./settle.ts";
import type { UpstreamPauses } from "./upstream_pause.ts";
import type { QuotaBook } from "./upstream_quota.ts";
import { Router } from "./routes.ts";
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
  // Recipients with different routes go through different upstreams, one group at a time.
  const groups = router(ctx.options).group(record.sender, pending.map((r) => r.address));
  const results: RecipientResult[] = [];
  let attemptError: string | undefined;
  let contacted = false;
  let quotaUntil = Infinity;
  for (const group of groups) {
    const outcome = await failover(ctx, lane, opened, group.recipients, group.via);
    if (!outcome) {
      ctx.schedule.delete(id); // deleted by `queue delete` while it was read
      return;
    }
    results.push(...outcome.results);
    attemptError ??= outcome.attemptError;
    contacted ||= outcome.contacted;
    quotaUntil = Math.min(quotaUntil, outcome.quotaUntil);
  }
  if (!contacted && quotaUntil !== Infinity) {
    // Only quotas (and pauses) held it back: it waits for the quota, no attempt counted.
    // The record already says so (near enough for `queue list`): no rewrite per window.
    const stored = Date.parse(record.nextAttemptAt);
    if (record.lastError === attemptError && Math.abs(stored - quotaUntil) < QUOTA_DRIFT_MS) {
      ctx.schedule.set(id, quotaUntil);
      return;
    }
    await ctx.settler.record(record, results, attemptError, {
      attempted: false,
      retryAt: quotaUntil,
    });
    return;
  }
  // Recipients a quota held back are due when it frees, if that comes before the backoff.
  await ctx.settler.record(
    record,
    results,
    attemptError,
    quotaUntil === Infinity ? undefined : { attempted: true, retryBy: quotaUntil },
  );
}

/** How far the stored next attempt may be from a quota's time before the record is rewritten. */
const QUOTA_DRIFT_MS = 5 * 60_000;

/** The worker's router; without one, every upstream is one failover list. */
function router(options: WorkerOptions): Router {
  return options.router ??
    new Router({ defaultVia: options.upstreams.map((_, i) => i), routes: [] });
}

/** What sending one route's recipients through its upstreams did. */
interface FailoverOutcome {
  results: RecipientResult[];
  attemptError?: string;
  /** Some upstream was connected to (else only pauses and quotas answered). */
  contacted: boolean;
  /** When the earliest quota that held recipients back frees (Infinity: none did). */
  quotaUntil: number;
}

/**
 * Sends to the route's upstreams in order: a failure of the upstream itself (connect, TLS,
 * login, a session-level refusal, throttling, a 4xx to MAIL FROM) or its quota moves the
 * recipients it did not answer to the next one at once; a recipient's own answer (even a
 * 4xx) stays its answer. Recipients beyond an upstream's per-message limit go in further
 * transactions. Undefined when the message was deleted meanwhile.
 */
async function failover(
  ctx: AttemptContext,
  lane: Lane,
  opened: Loaded,
  pending: string[],
  via: number[],
): Promise<FailoverOutcome | undefined> {
  const { upstreams, metrics } = ctx.options;
  const results: RecipientResult[] = [];
  let todo = pending;
  let attemptError: string | undefined;
  let contacted = false;
  let quotaUntil = Infinity;
  const overQuota = (i: number): boolean => {
    const wait = ctx.quotas.at(i).check(Date.now());
    if (!wait) return false;
    quotaUntil = Math.min(quotaUntil, wait.until);
    // Every quota in the way is named; `queue list` shows when: the next attempt.
    attemptError = attemptError ? `${attemptError}; ${wait.reason}` : wait.reason;
    metrics.quotaWait(upstreams[i]!.name);
    return true;
  };
  for (const i of via) {
    if (todo.length === 0) break;
    const target = upstreams[i]!;
    const pause = ctx.pauses.at(i);
    if (pause.paused()) {
      attemptError ??= `upstream ${target.name} paused after: ${pause.error ?? "a failure"}`;
      continue;
    }
    if (overQuota(i)) continue;
    if (lane.upstream !== i) {
      await lane.session?.close().catch(() => {});
      lane.session = undefined;
      lane.upstream = i;
    }
    const opts = {
      connect: target.connect,
      messagesPerConnection: target.messagesPerConnection ?? ctx.options.messagesPerConnection,
      hostname: ctx.options.hostname,
      log: ctx.options.log,
      onConnected: () => {
        ctx.options.log.debug("upstream connected", { upstream: target.name });
        if (lane.warmingSince !== undefined) {
          lane.warmingSince = undefined;
          ctx.kick(); // slow start: the next lane may open its connection now
        }
        if (pause.failures === 0) return;
        pause.recovered();
        ctx.kick(); // the probe got through: the other lanes may start again
      },
      onReplied: (seconds: number) => metrics.observeUpstreamReply(seconds, target.name),
    };
    const failure = await ensureConnected(lane, opts);
    if (failure) {
      upstreamFailed(ctx, i, failure);
      attemptError = failure;
      continue;
    }
    contacted = true;
    let movedOn = false;
    while (todo.length > 0) {
      if (overQuota(i)) {
        movedOn = true; // its quota ran out during this message: the rest goes on
        break;
      }
      const limit = Math.min(
        target.maxRecipients,
        lane.session?.recipientLimit ?? Infinity,
        ctx.quotas.at(i).recipientRoom(Date.now()),
      );
      const chunk = todo.slice(0, limit);
      const t = await transact(lane, opened, chunk, opts);
      if (!t.results) return undefined;
      const tagged = t.results.map((r) => ({ ...r, upstream: target.name }));
      const delivered = tagged.filter((r) => r.status === "delivered").length;
      if (delivered > 0) {
        ctx.quotas.count(i, delivered);
        pause.delivered();
      }
      const refusal = t.connectFailed || t.broken
        ? t.attemptError
        : tagged.find((r) =>
          r.sessionLevel || r.refusedMail ||
          // A rate reply to one RCPT (Gmail's "receiving mail at a rate") is that mailbox's;
          // only 421 there means the whole session is going.
          (isThrottle(r.response) && (!r.rcptReply || r.code === 421))
        )?.response;
      if (refusal) {
        // A connection lost mid-transaction or a plain 4xx to MAIL FROM moves on, and pauses
        // the upstream only when it happens to several messages in a row; a failure to
        // connect, a throttling or account-level reply pauses it at once.
        const mailOnly = tagged.some((r) => r.refusedMail && !r.sessionLevel);
        const soft = !t.connectFailed && !isThrottle(refusal) && (t.broken || mailOnly);
        if (!soft || pause.softFailure()) upstreamFailed(ctx, i, refusal);
        attemptError = refusal;
        // What it did answer stands; the rest goes to the next upstream.
        const retry = new Set(
          tagged.filter((r) => r.status === "deferred").map((r) => r.recipient),
        );
        results.push(...tagged.filter((r) => !retry.has(r.recipient)));
        todo = [...chunk.filter((a) => retry.has(a)), ...todo.slice(chunk.length)];
        movedOn = true;
        break;
      }
      results.push(...tagged);
      if (t.attemptError) attemptError = t.attemptError;
      todo = todo.slice(chunk.length);
    }
    if (!movedOn) break;
  }
  // Recipients no upstream could take now wait for a retry.
  for (const recipient of todo) {
    results.push({
      recipient,
      status: "deferred",
      response: attemptError ?? "no upstream available",
    });
  }
  return { results, attemptError, contacted, quotaUntil };
}

/**
 * Upstream `i` cannot take mail now (connect, TLS, login, an account-level refusal or
 * throttling): pause it, doubling the pause per outage, instead of one failure per message.
 */
function upstreamFailed(ctx: AttemptContext, i: number, error: string): void {
  const name = ctx.options.upstreams[i]!.name;
  ctx.options.metrics.inc("upstream_errors_total");
  const pause = ctx.pauses.at(i).failed(Date.now(), error);
  ctx.options.log.error("upstream unavailable", {
    upstream: name,
    error,
    pause: `${Math.round(pause / 1000)}s`,
  });
}
