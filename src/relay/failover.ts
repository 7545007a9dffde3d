/**
 * One route's recipients through its upstreams in failover order: a failure of the upstream
 * itself, or its quota, moves the recipients it did not answer to the next one at once; a
 * recipient's own answer stays its answer. Works on one attempt's Plan, so a reload in the
 * middle never mixes one list's positions with another's objects.
 */

import { ensureConnected, type Lane, type Loaded, transact } from "./lane.ts";
import { isThrottle } from "./reply_outcome.ts";
import type { AttemptContext } from "./attempt.ts";
import type { ConnectionSlots } from "./connection_slots.ts";
import type { UpstreamPause } from "./upstream_pause.ts";
import type { UpstreamQuota } from "./upstream_quota.ts";
import type { RecipientResult, UpstreamTarget } from "./upstream_types.ts";

/** Why recipients were not sent when the worker stopped mid-attempt. */
export const STOPPING = "not sent: the server is stopping";

/** The upstreams as one attempt saw them at its start, with their pauses and quotas. */
export interface Plan {
  upstreams: readonly UpstreamTarget[];
  pauses: readonly UpstreamPause[];
  quotas: readonly UpstreamQuota[];
  slots: readonly ConnectionSlots[];
}

/** What sending one route's recipients did. */
export interface FailoverOutcome {
  results: RecipientResult[];
  attemptError?: string;
  /** Only quotas held the recipients back: no upstream was tried, none was paused. */
  onlyQuota: boolean;
  /** When the earliest quota or pause that held recipients back ends (Infinity: none). */
  waitUntil: number;
  /** Recipients were left unsent because the worker is stopping. */
  stopped: boolean;
}

/**
 * Sends `pending` through the upstreams `via` (positions in `plan`). Recipients beyond an
 * upstream's per-message limit go in further transactions. Undefined when the message was
 * deleted meanwhile.
 */
export async function failover(
  ctx: AttemptContext,
  plan: Plan,
  lane: Lane,
  opened: Loaded,
  pending: string[],
  via: number[],
): Promise<FailoverOutcome | undefined> {
  const { metrics } = ctx.options;
  const results: RecipientResult[] = [];
  const quotaReasons: string[] = [];
  let todo = pending;
  let error: string | undefined;
  let onlyQuota = true;
  let waitUntil = Infinity;
  const overQuota = (i: number): boolean => {
    const wait = plan.quotas[i]!.check(Date.now());
    if (!wait) return false;
    waitUntil = Math.min(waitUntil, wait.until);
    if (!quotaReasons.includes(wait.reason)) quotaReasons.push(wait.reason);
    metrics.quotaWait(plan.upstreams[i]!.name);
    return true;
  };
  for (const i of via) {
    if (todo.length === 0) break;
    if (ctx.stopping.aborted) {
      error = STOPPING; // no new upstream while stopping
      break;
    }
    const target = plan.upstreams[i]!;
    const pause = plan.pauses[i]!;
    const quota = plan.quotas[i]!;
    if (pause.paused()) {
      onlyQuota = false;
      waitUntil = Math.min(waitUntil, pause.until);
      error ??= `upstream ${target.name} paused after: ${pause.error ?? "a failure"}`;
      continue;
    }
    if (overQuota(i)) continue;
    onlyQuota = false;
    if (lane.upstream !== target.name) {
      await lane.session?.close().catch(() => {});
      lane.session = undefined;
      lane.upstream = target.name;
    }
    const opts = {
      // At most its max_connections; refused once the worker stops.
      connect: () => plan.slots[i]!.connect(target.connect, ctx.stopping),
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
      // Stopping while it waited for a connection slot: not the upstream's failure.
      if (ctx.stopping.aborted) error = STOPPING;
      else upstreamFailed(ctx, target, pause, error = failure);
      continue;
    }
    let movedOn = false;
    while (todo.length > 0) {
      if (overQuota(i)) {
        movedOn = true; // its quota ran out during this message: the rest goes on
        break;
      }
      const limit = Math.min(
        target.maxRecipients,
        lane.session?.recipientLimit ?? Infinity,
        quota.recipientRoom(Date.now()),
      );
      const chunk = todo.slice(0, limit);
      // Counted before it is sent (no await since the check): lanes at once cannot overshoot.
      const reservation = quota.reserve(chunk.length, Date.now());
      const t = await transact(lane, opened, chunk, opts);
      const tagged = (t.results ?? []).map((r) => ({ ...r, upstream: target.name }));
      const delivered = tagged.filter((r) => r.status === "delivered").length;
      reservation.settle(delivered);
      if (quota.limited) ctx.quotas.changed();
      if (!t.results) return undefined;
      if (delivered > 0) pause.delivered();
      const refusal = t.connectFailed || t.broken
        ? t.attemptError
        : tagged.find((r) =>
          r.sessionLevel || r.refusedMail || (isThrottle(r.response) && !aboutRecipient(r))
        )?.response;
      if (refusal) {
        // A connection lost mid-transaction or a plain 4xx to MAIL FROM moves on, and pauses
        // the upstream only when it happens to several messages in a row; a failure to
        // connect, a throttling or account-level reply pauses it at once.
        const mailOnly = tagged.some((r) => r.refusedMail && !r.sessionLevel);
        const soft = !t.connectFailed && !isThrottle(refusal) && (t.broken || mailOnly);
        if (!soft || pause.softFailure()) upstreamFailed(ctx, target, pause, refusal);
        error = refusal;
        // What it did answer stands (a recipient's own 4xx too); the rest goes on.
        const retry = new Set(
          tagged.filter((r) => r.status === "deferred" && !aboutRecipient(r))
            .map((r) => r.recipient),
        );
        results.push(...tagged.filter((r) => !retry.has(r.recipient)));
        todo = [...chunk.filter((a) => retry.has(a)), ...todo.slice(chunk.length)];
        movedOn = true;
        break;
      }
      results.push(...tagged);
      if (t.attemptError) error = t.attemptError;
      todo = todo.slice(chunk.length);
    }
    if (!movedOn) break;
  }
  const attemptError = [...quotaReasons, ...(error ? [error] : [])].join("; ") || undefined;
  // Recipients no upstream could take now wait for a retry.
  for (const recipient of todo) {
    results.push({
      recipient,
      status: "deferred",
      response: attemptError ?? "no upstream available",
    });
  }
  return {
    results,
    attemptError,
    onlyQuota: onlyQuota && quotaReasons.length > 0,
    waitUntil,
    stopped: error === STOPPING && todo.length > 0,
  };
}

/**
 * The reply is the recipient's own answer, not the upstream's state: a reply to its RCPT TO
 * (even a rate reply such as Gmail's "receiving mail at a rate", which is about that mailbox),
 * except 421, which closes the whole session.
 */
function aboutRecipient(r: RecipientResult): boolean {
  return r.rcptReply === true && r.code !== 421;
}

/**
 * The upstream cannot take mail now (connect, TLS, login, an account-level refusal or
 * throttling): pause it, doubling the pause per outage, instead of one failure per message.
 */
function upstreamFailed(
  ctx: AttemptContext,
  target: UpstreamTarget,
  pause: UpstreamPause,
  error: string,
): void {
  ctx.options.metrics.inc("upstream_errors_total");
  const ms = pause.failed(Date.now(), error);
  ctx.options.log.error("upstream unavailable", {
    upstream: target.name,
    error,
    pause: `${Math.round(ms / 1000)}s`,
  });
}
