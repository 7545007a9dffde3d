import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { renderSummary, summarize, waitState } from "../../src/queue/queue_summary.ts";
import type { QueueRecord } from "../../src/queue/record.ts";
import { sampleRecord } from "./_helpers.ts";

const NOW = Date.parse("2026-06-01T12:00:00.000Z");
const ago = (ms: number) => new Date(NOW - ms).toISOString();
const MIN = 60_000;

function rec(o: Partial<QueueRecord>): QueueRecord {
  return sampleRecord({ receivedAt: ago(MIN), nextAttemptAt: ago(0), ...o });
}

const records = [
  rec({
    recipients: [{ address: "a@Example.net", status: "pending" }, {
      address: "b@example.net",
      status: "pending",
    }],
  }),
  rec({
    receivedAt: ago(2 * 3_600_000),
    nextAttemptAt: new Date(NOW + 10 * MIN).toISOString(),
    lastError: "451 4.7.0 Try again later",
    recipients: [{ address: "c@gmail.com", status: "pending" }, {
      address: "d@x.org",
      status: "delivered",
    }],
  }),
  rec({
    receivedAt: ago(6 * 86_400_000),
    held: true,
    lastError: "451 4.7.0 Try again later",
    recipients: [{ address: "e@example.net", status: "pending" }],
  }),
];

Deno.test("summarize: by state, age bucket, recipient domain and last error", () => {
  const s = summarize(records, undefined, NOW);
  strictEqual(s.messages, 3);
  strictEqual(s.pendingRecipients, 4);
  deepStrictEqual(s.byState, { due: 1, deferred: 1, held: 1, paused: 0 });
  deepStrictEqual(s.byAge, { "<5m": 1, "5m-1h": 0, "1h-4h": 1, "4h-1d": 0, "1d-5d": 0, ">5d": 1 });
  deepStrictEqual(s.byDomain, [{ domain: "example.net", recipients: 3 }, {
    domain: "gmail.com",
    recipients: 1,
  }]);
  deepStrictEqual(s.lastErrors, [{ error: "451 4.7.0 Try again later", messages: 2 }]);
  strictEqual(s.holdMode, false);
  strictEqual(s.upstreamPause, undefined);
});

Deno.test("waitState: due mail waits for an upstream pause; hold mode holds everything", () => {
  const paused = {
    mode: "relay" as const,
    pausedUntil: new Date(NOW + MIN).toISOString(),
    pauseError: "535 no",
    updatedAt: ago(0),
  };
  deepStrictEqual(records.map((r) => waitState(r, paused, NOW)), ["paused", "deferred", "held"]);
  const over = { ...paused, pausedUntil: ago(1) };
  deepStrictEqual(records.map((r) => waitState(r, over, NOW)), ["due", "deferred", "held"]);
  const hold = { mode: "hold" as const, updatedAt: ago(0) };
  deepStrictEqual(records.map((r) => waitState(r, hold, NOW)), ["held", "held", "held"]);
  const s = summarize(records, paused, NOW);
  deepStrictEqual(s.upstreamPause, { until: paused.pausedUntil, error: "535 no" });
});

Deno.test("renderSummary: one line per count, then domains and errors", () => {
  const text = renderSummary(summarize(records, undefined, NOW));
  deepStrictEqual(text.split("\n"), [
    "3 messages, 4 recipients pending",
    "by state:  due 1  deferred 1  held 1  paused 0",
    "by age:    <5m 1  5m-1h 0  1h-4h 1  4h-1d 0  1d-5d 0  >5d 1",
    "pending recipients by domain:",
    "       3  example.net",
    "       1  gmail.com",
    "most common last errors (messages):",
    "       2  451 4.7.0 Try again later",
  ]);
});
