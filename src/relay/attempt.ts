/**
 * One delivery attempt of one queued message: open it, bounce it if it has outlived the
 * queue lifetime, else send it on a lane's connection and record what each recipient got.
 * A failure of the upstream itself pauses deliveries instead of failing the message.
 */

import { expired } from "../queue/schedule.ts";
import { UnknownMessageError } from "../queue/spool.ts";
import type { DueQueue } from "./due_queue.ts";
import type { FreshCache } from "./fresh_cache.ts";
import { type Lane, type Loaded, transact } from "./lane.ts";
import { expiryResults } from "./outcome.ts";
import type { Settler } from "./settle.ts";
import type { UpstreamPause } from "./upstream_pause.ts";
import type { WorkerOptions } from "./worker.ts";

/** The worker's parts an attempt uses. */
export interface AttemptContext {
  options: WorkerOptions;
  fresh: FreshCache;
  settler: Settler;
  schedule: DueQueue;
  pause: UpstreamPause;
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
  const t = await transact(lane, opened, pending.map((r) => r.address), {
    connect: ctx.options.connect!,
    messagesPerConnection: ctx.options.messagesPerConnection,
    onConnected: () => {
      if (ctx.pause.failures === 0) return;
      ctx.pause.recovered();
      ctx.kick(); // the probe got through: the other lanes may start again
    },
    onReplied: (seconds) => metrics.observeUpstreamReply(seconds),
  });
  if (!t.results) {
    ctx.schedule.delete(id); // deleted by `queue delete` while it was read
    return;
  }
  if (t.connectFailed) upstreamFailed(ctx, t.attemptError!);
  const refusal = t.results.find((r) => r.sessionLevel);
  if (refusal) upstreamFailed(ctx, refusal.response);
  await ctx.settler.record(record, t.results, t.attemptError);
}

/**
 * The upstream cannot take mail now (connect, TLS, login, or an account-level refusal):
 * pause deliveries, doubling the pause per outage, instead of one failure per message.
 */
function upstreamFailed(ctx: AttemptContext, error: string): void {
  ctx.options.metrics.inc("upstream_errors_total");
  const pause = ctx.pause.failed(Date.now(), error);
  ctx.options.log.error("upstream unavailable", {
    upstream: ctx.options.upstreamName,
    error,
    pause: `${Math.round(pause / 1000)}s`,
  });
}
