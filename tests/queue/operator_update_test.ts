import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { operatorUpdate } from "../../src/queue/operator_update.ts";
import { sampleRecord } from "./_helpers.ts";

const now = new Date("2026-06-01T12:00:00.000Z");

Deno.test("operatorUpdate: hold marks, release unmarks and keeps the retry time", () => {
  const record = sampleRecord({ attempts: 2, nextAttemptAt: "2026-06-01T13:00:00.000Z" });
  const held = operatorUpdate("hold", record, now);
  strictEqual(held.held, true);
  const released = operatorUpdate("release", held, now);
  deepStrictEqual(released, record);
});

Deno.test("operatorUpdate: requeue is due now and restarts the backoff from this attempt count", () => {
  const record = sampleRecord({
    attempts: 5,
    held: true,
    nextAttemptAt: "2026-06-01T13:00:00.000Z",
  });
  const r = operatorUpdate("requeue", record, now);
  strictEqual(r.nextAttemptAt, now.toISOString());
  strictEqual(r.backoffFrom, 5);
  strictEqual(r.attempts, 5);
  strictEqual("held" in r, false);
});
