import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { delayWarningAt, delayWarningDue, noticeOwed, wants } from "../../src/relay/dsn_policy.ts";
import type { RecipientRecord } from "../../src/queue/record.ts";
import { sampleRecord } from "../queue/_helpers.ts";

const pending = (address: string, notify?: RecipientRecord["notify"]): RecipientRecord => ({
  address,
  status: "pending",
  ...(notify ? { notify } : {}),
});
const delivered = { recipient: "a@x", status: "delivered", code: 250, response: "250 ok" } as const;
const failed = { recipient: "a@x", status: "failed", code: 550, response: "550 no" } as const;

Deno.test("wants: without NOTIFY, failures and delays are reported, successes not", () => {
  const r = pending("a@x");
  deepStrictEqual([wants(r, "FAILURE"), wants(r, "DELAY"), wants(r, "SUCCESS")], [
    true,
    true,
    false,
  ]);
  const s = pending("a@x", ["SUCCESS"]);
  deepStrictEqual([wants(s, "FAILURE"), wants(s, "DELAY"), wants(s, "SUCCESS")], [
    false,
    false,
    true,
  ]);
  const n = pending("a@x", ["NEVER"]);
  deepStrictEqual([wants(n, "FAILURE"), wants(n, "DELAY"), wants(n, "SUCCESS")], [
    false,
    false,
    false,
  ]);
});

Deno.test("noticeOwed: a failure is owed a bounce unless NOTIFY leaves out FAILURE", () => {
  const record = sampleRecord();
  strictEqual(noticeOwed(record, pending("a@x"), failed), false);
  strictEqual(noticeOwed(record, pending("a@x", ["DELAY"]), failed), true);
  strictEqual(noticeOwed(record, pending("a@x", ["NEVER"]), failed), true);
});

Deno.test("noticeOwed: NOTIFY=SUCCESS gets a relayed notice unless the upstream took DSN on", () => {
  const record = sampleRecord();
  strictEqual(noticeOwed(record, pending("a@x", ["SUCCESS"]), delivered), false);
  strictEqual(
    noticeOwed(record, pending("a@x", ["SUCCESS"]), { ...delivered, dsnForwarded: true }),
    undefined,
  );
  strictEqual(noticeOwed(record, pending("a@x"), delivered), undefined);
  strictEqual(
    noticeOwed(sampleRecord({ sender: "" }), pending("a@x", ["SUCCESS"]), delivered),
    undefined,
  );
});

Deno.test("delayWarningDue: once, after the delay, for pending recipients that want DELAY", () => {
  const receivedAt = "2026-01-01T00:00:00.000Z";
  const record = sampleRecord({
    receivedAt,
    recipients: [pending("a@x"), pending("b@x", ["FAILURE"]), {
      address: "c@x",
      status: "delivered",
    }],
  });
  const t0 = Date.parse(receivedAt);
  const hour = 3_600_000;
  deepStrictEqual(delayWarningDue(record, 4 * hour, t0 + 3 * hour), []);
  deepStrictEqual(delayWarningDue(record, 4 * hour, t0 + 4 * hour).map((r) => r.address), ["a@x"]);
  deepStrictEqual(delayWarningDue({ ...record, delayWarned: true }, 4 * hour, t0 + 5 * hour), []);
  deepStrictEqual(delayWarningDue(record, 0, t0 + 100 * hour), [], "0 turns warnings off");
  deepStrictEqual(delayWarningDue({ ...record, sender: "" }, 4 * hour, t0 + 5 * hour), []);
});

Deno.test("delayWarningAt: when the warning falls due, while one may be owed", () => {
  const receivedAt = "2026-01-01T00:00:00.000Z";
  const t0 = Date.parse(receivedAt);
  const record = sampleRecord({ receivedAt, recipients: [pending("a@x")] });
  strictEqual(delayWarningAt(record, 60_000), t0 + 60_000);
  strictEqual(delayWarningAt({ ...record, delayWarned: true }, 60_000), undefined);
  strictEqual(delayWarningAt(record, 0), undefined);
  strictEqual(
    delayWarningAt(sampleRecord({ receivedAt, recipients: [pending("a@x", ["NEVER"])] }), 60_000),
    undefined,
  );
});
