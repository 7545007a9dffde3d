import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { applyResults } from "../../src/relay/outcome.ts";
import { sampleRecord } from "../queue/_helpers.ts";

const retry = { minMs: 60_000, maxMs: 3_600_000, lifetimeMs: 5 * 86_400_000 };
const now = new Date("2026-01-01T00:00:00.000Z");

Deno.test("applyResults: each pending recipient takes its result; others are left alone", () => {
  const record = sampleRecord({
    recipients: [
      { address: "a@x", status: "pending" },
      { address: "b@x", status: "pending" },
      { address: "c@x", status: "pending" },
      { address: "d@x", status: "delivered", response: "250 earlier" },
    ],
  });
  const out = applyResults(
    record,
    [
      { recipient: "a@x", status: "delivered", code: 250, response: "250 ok" },
      { recipient: "b@x", status: "failed", code: 550, response: "550 5.1.1 no such user" },
      { recipient: "c@x", status: "deferred", code: 451, response: "451 4.3.0 later" },
    ],
    undefined,
    { now, retry, attempted: true },
  );
  deepStrictEqual(out.updated.recipients.map((r) => [r.address, r.status, r.bounced]), [
    ["a@x", "delivered", undefined],
    ["b@x", "failed", false],
    ["c@x", "pending", undefined],
    ["d@x", "delivered", undefined],
  ]);
  deepStrictEqual(out.changes.map((c) => c.address), ["a@x", "b@x", "c@x"]);
  strictEqual(out.deferred, 1);
  strictEqual(out.updated.attempts, 1);
  strictEqual(out.updated.lastError, "451 4.3.0 later");
  strictEqual(out.updated.nextAttemptAt, new Date(now.getTime() + out.delay).toISOString());
  strictEqual(out.settled, false, "a deferred recipient and an unbounced failure remain");
});

Deno.test("applyResults: all delivered is settled; an expiry does not count as an attempt", () => {
  const record = sampleRecord({ attempts: 2 });
  const done = applyResults(
    record,
    [
      { recipient: "bob@example.org", status: "delivered", response: "250 ok" },
    ],
    undefined,
    { now, retry, attempted: true },
  );
  strictEqual(done.settled, true);
  strictEqual(done.updated.attempts, 3);
  const expired = applyResults(
    record,
    [
      { recipient: "bob@example.org", status: "failed", response: "expired" },
    ],
    "expired",
    { now, retry, attempted: false },
  );
  strictEqual(expired.updated.attempts, 2);
  strictEqual(expired.updated.lastError, "expired");
  strictEqual(expired.settled, false, "the failure still needs its bounce");
});

Deno.test("applyResults: a quota's time replaces the backoff (retryAt) or brings it forward (retryBy)", () => {
  const record = sampleRecord({ attempts: 3 });
  const deferred = [{
    recipient: "bob@example.org",
    status: "deferred" as const,
    response: "quota",
  }];
  const wait = applyResults(record, deferred, "quota", {
    now,
    retry,
    attempted: false,
    retryAt: now.getTime() + 7 * 3_600_000,
  });
  strictEqual(wait.updated.attempts, 3, "a quota wait is no attempt");
  strictEqual(wait.delay, 7 * 3_600_000, "far beyond the backoff's hour: the quota decides");
  const soon = applyResults(record, deferred, "quota", {
    now,
    retry,
    attempted: true,
    retryBy: now.getTime() + 30_000,
  });
  strictEqual(soon.updated.attempts, 4);
  strictEqual(soon.delay, 30_000, "the quota frees before the backoff ends");
  const later = applyResults(record, deferred, "quota", {
    now,
    retry,
    attempted: true,
    retryBy: now.getTime() + 48 * 3_600_000,
  });
  ok(later.delay <= retry.maxMs * 1.2, "the backoff comes first");
});
