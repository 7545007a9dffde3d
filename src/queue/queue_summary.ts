/**
 * `carrier queue summary`: the shape of the queue at a glance, as Postfix's qshape and the
 * tail of mailq give it: messages by state and by age, pending recipients by domain, and
 * the most common last errors. Counting is pure; the command prints it.
 */

import type { QueueRecord } from "./record.ts";
import type { ServerState } from "./server_state.ts";

/** Why a message is waiting, as `queue list` and the summary say it. */
export type WaitState = "due" | "deferred" | "held" | "paused";

/** Age buckets, upper bounds in ms (the last one is open). */
const AGES: [string, number][] = [
  ["<5m", 5 * 60_000],
  ["5m-1h", 3_600_000],
  ["1h-4h", 4 * 3_600_000],
  ["4h-1d", 86_400_000],
  ["1d-5d", 5 * 86_400_000],
  [">5d", Infinity],
];

/** How many of the commonest domains and errors are listed. */
const TOP = 10;

/** The queue's shape. */
export interface QueueSummary {
  messages: number;
  pendingRecipients: number;
  byState: Record<WaitState, number>;
  byAge: Record<string, number>;
  byDomain: { domain: string; recipients: number }[];
  lastErrors: { error: string; messages: number }[];
  /** The running server has no upstream: nothing is sent. */
  holdMode: boolean;
  /** The running server waits for its upstream until then (ISO 8601), after this error. */
  upstreamPause?: { until: string; error?: string };
}

/** The state of one message: on hold, waiting for the upstream, due now, or for a retry. */
export function waitState(r: QueueRecord, server: ServerState | undefined, now: number): WaitState {
  if (r.held || server?.mode === "hold") return "held";
  const due = Date.parse(r.nextAttemptAt) <= now ||
    !r.recipients.some((x) => x.status === "pending");
  if (due) return pausedUntil(server, now) ? "paused" : "due";
  return "deferred";
}

/** When the server's upstream pause ends, if it has not ended yet. */
export function pausedUntil(server: ServerState | undefined, now: number): string | undefined {
  const until = server?.pausedUntil;
  return until !== undefined && Date.parse(until) > now ? until : undefined;
}

/** Counts `records` as of `now`. */
export function summarize(
  records: QueueRecord[],
  server: ServerState | undefined,
  now: number,
): QueueSummary {
  const byState: Record<WaitState, number> = { due: 0, deferred: 0, held: 0, paused: 0 };
  const byAge: Record<string, number> = Object.fromEntries(AGES.map(([name]) => [name, 0]));
  const domains = new Map<string, number>();
  const errors = new Map<string, number>();
  let pendingRecipients = 0;
  for (const r of records) {
    byState[waitState(r, server, now)]++;
    const age = now - Date.parse(r.receivedAt);
    byAge[AGES.find(([, max]) => age < max)![0]]++;
    for (const x of r.recipients) {
      if (x.status !== "pending") continue;
      pendingRecipients++;
      const domain = x.address.slice(x.address.lastIndexOf("@") + 1).toLowerCase() || "(none)";
      domains.set(domain, (domains.get(domain) ?? 0) + 1);
    }
    if (r.lastError) {
      const error = r.lastError.slice(0, 120);
      errors.set(error, (errors.get(error) ?? 0) + 1);
    }
  }
  return {
    messages: records.length,
    pendingRecipients,
    byState,
    byAge,
    byDomain: top(domains).map(([domain, recipients]) => ({ domain, recipients })),
    lastErrors: top(errors).map(([error, messages]) => ({ error, messages })),
    holdMode: server?.mode === "hold",
    ...(pausedUntil(server, now)
      ? { upstreamPause: { until: server!.pausedUntil!, error: server!.pauseError } }
      : {}),
  };
}

function top(counts: Map<string, number>): [string, number][] {
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, TOP);
}

/** The summary for people. */
export function renderSummary(s: QueueSummary): string {
  const row = (counts: Record<string, number>) =>
    Object.entries(counts).map(([k, n]) => `${k} ${n}`).join("  ");
  const lines = [
    `${s.messages} message${s.messages === 1 ? "" : "s"}, ${s.pendingRecipients} recipient${
      s.pendingRecipients === 1 ? "" : "s"
    } pending`,
    `by state:  ${row(s.byState)}`,
    `by age:    ${row(s.byAge)}`,
  ];
  if (s.holdMode) lines.push("server:    hold mode (no upstream): nothing is sent");
  if (s.upstreamPause) {
    const { until, error } = s.upstreamPause;
    lines.push(`server:    upstream paused until ${until}${error ? `: ${error}` : ""}`);
  }
  if (s.byDomain.length > 0) {
    lines.push("pending recipients by domain:");
    for (const d of s.byDomain) lines.push(`  ${String(d.recipients).padStart(6)}  ${d.domain}`);
  }
  if (s.lastErrors.length > 0) {
    lines.push("most common last errors (messages):");
    for (const e of s.lastErrors) lines.push(`  ${String(e.messages).padStart(6)}  ${e.error}`);
  }
  return lines.join("\n");
}
