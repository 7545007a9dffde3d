import { deepStrictEqual, match, ok, strictEqual, throws } from "node:assert/strict";
import fc from "fast-check";
import {
  encodeHeader,
  HEADER_MAGIC,
  ID_PATTERN,
  newQueueId,
  validateRecord,
} from "../../src/queue/record.ts";
import { sampleRecord } from "./_helpers.ts";

Deno.test("newQueueId matches ID_PATTERN: upper-case base 36, safe as a file name", () => {
  for (const now of [0, 1, 35, 36, 1_700_000_000_000, Date.now(), 36 ** 9 - 1]) {
    const id = newQueueId(now);
    match(id, ID_PATTERN);
    match(id, /^[0-9A-Z]+$/);
    strictEqual(id.length, 17, id);
  }
  match(newQueueId(), ID_PATTERN);
});

Deno.test("newQueueId starts with the zero-padded base-36 time", () => {
  strictEqual(newQueueId(0).slice(0, 9), "000000000");
  strictEqual(newQueueId(35).slice(0, 9), "00000000Z");
  strictEqual(newQueueId(36).slice(0, 9), "000000010");
  strictEqual(
    newQueueId(1_700_000_000_000).slice(0, 9),
    (1_700_000_000_000).toString(36)
      .toUpperCase().padStart(9, "0"),
  );
});

Deno.test("ids made at increasing times sort in that order", () => {
  const times = [0, 9, 10, 35, 36, 999, 1_000, 1_699_999_999_999, 1_700_000_000_000, 36 ** 9 - 1];
  const ids = times.map((t) => newQueueId(t));
  const sorted = [...ids].sort();
  deepStrictEqual(sorted, ids);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 36 ** 9 - 2 }),
      fc.integer({ min: 1, max: 10 ** 12 }),
      (t, dt) => {
        const later = Math.min(36 ** 9 - 1, t + dt);
        return newQueueId(t) < newQueueId(later);
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("10000 ids made in the same millisecond are unique", () => {
  const ids = new Set<string>();
  for (let i = 0; i < 10_000; i++) ids.add(newQueueId(1_700_000_000_000));
  strictEqual(ids.size, 10_000);
  const unpinned = new Set<string>();
  for (let i = 0; i < 10_000; i++) unpinned.add(newQueueId());
  strictEqual(unpinned.size, 10_000);
});

Deno.test("validateRecord accepts a complete record and returns it", () => {
  const record = sampleRecord({
    recipients: [
      { address: "a@example.org", status: "pending" },
      { address: "b@example.org", status: "delivered", response: "250 ok" },
      { address: "c@example.org", status: "failed", bounced: true },
    ],
    kind: "bounce",
    sender: "",
  });
  strictEqual(validateRecord(record, "x.json"), record);
  const roundTrip = JSON.parse(JSON.stringify(record));
  deepStrictEqual(validateRecord(roundTrip, "x.json"), record);
});

Deno.test("validateRecord errors name the source and the bad field", () => {
  const cases: [string, unknown][] = [
    ["(root)", null],
    ["(root)", "a string"],
    ["version", { ...sampleRecord(), version: 2 }],
    ["id", { ...sampleRecord(), id: "../x" }],
    ["id", { ...sampleRecord(), id: "abc" }],
    ["kind", { ...sampleRecord(), kind: "other" }],
    ["sender", { ...sampleRecord(), sender: undefined }],
    ["recipients", { ...sampleRecord(), recipients: [] }],
    ["recipients", { ...sampleRecord(), recipients: "bob@example.org" }],
    ["recipients.address", { ...sampleRecord(), recipients: [{ status: "pending" }] }],
    ["recipients.address", { ...sampleRecord(), recipients: [null] }],
    ["recipients.status", {
      ...sampleRecord(),
      recipients: [{ address: "b@example.org", status: "sent" }],
    }],
    ["size", { ...sampleRecord(), size: "123" }],
    ["attempts", { ...sampleRecord(), attempts: undefined }],
    ["receivedAt", { ...sampleRecord(), receivedAt: 5 }],
    ["nextAttemptAt", { ...sampleRecord(), nextAttemptAt: "not a date" }],
    ["nextAttemptAt", { ...sampleRecord(), nextAttemptAt: undefined }],
  ];
  for (const [field, value] of cases) {
    throws(
      () => validateRecord(value, "/spool/queue/X.json"),
      (e: unknown) => {
        ok(e instanceof Error);
        ok(e.message.startsWith("/spool/queue/X.json: "), e.message);
        ok(e.message.includes(`"${field}"`), `${field}: ${e.message}`);
        return true;
      },
      field,
    );
  }
});

Deno.test("encodeHeader: one line, CARRIER1 and the record as JSON, even with newlines in fields", () => {
  const record = sampleRecord({
    lastError: "451 first line\r\nsecond line\n",
    helo: "h\u2028\u00e9\u4f8b",
    recipients: [{ address: "\u00fc@example.org", status: "pending", response: "a\nb" }],
  });
  const header = encodeHeader(record);
  deepStrictEqual(header.subarray(0, HEADER_MAGIC.length), HEADER_MAGIC);
  strictEqual(new TextDecoder().decode(HEADER_MAGIC), "CARRIER1 ");
  strictEqual(header.indexOf(0x0a), header.length - 1, "the only LF ends the line");
  ok(!header.includes(0x0d), "no CR either");
  const text = new TextDecoder().decode(header);
  deepStrictEqual(JSON.parse(text.slice("CARRIER1 ".length, -1)), record);
});
