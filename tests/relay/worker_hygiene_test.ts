/**
 * Header hygiene as delivered (part of #9): a message without Message-ID or Date gets them
 * after our Received: header, the same on every attempt, from memory or streamed from the
 * file; otherwise the bytes go unchanged, and the spool keeps what was received. Also the
 * refusal of an 8-bit body to an upstream without 8BITMIME. Real spool, real smarthost.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { concatBytes } from "../../src/bytes.ts";
import type { QueueRecord } from "../../src/queue/record.ts";
import { rfc5322Date } from "../../src/smtp/received.ts";
import { storedBytes } from "../support/spool.ts";
import {
  dec,
  enc,
  enqueue,
  MESSAGE,
  rcpt,
  SENDER,
  waitAttempts,
  waitRemoved,
  withEnv,
} from "./_worker_helpers.ts";

const RECEIVED = "Received: from client.test ([127.0.0.1])\r\n\tby carrier.test (Carrier) with " +
  "ESMTP id X\r\n\tfor <bob@example.net>; Mon, 1 Jan 2024 00:00:00 +0000\r\n";
/** What the client sent: no Message-ID, no Date, 8-bit bytes and dot lines in the body. */
const CLIENT_PART = concatBytes([
  enc.encode("From: alice@example.com\r\nTo: bob@example.net\r\nSubject: bare\r\n\r\n"),
  new Uint8Array([0xc3, 0xa9, 0x20, 0xff, 0x80, 0x0d, 0x0a]),
  enc.encode(".leading dot\r\n..two dots\r\n.\r\nlast line\r\n"),
]);
const BARE = concatBytes([enc.encode(RECEIVED), CLIENT_PART]);
/** Far larger than what is read with the record: its rest is streamed from the file. */
const BARE_LARGE = concatBytes([BARE, new Uint8Array(200 * 1024).fill(0x78), enc.encode("\r\n")]);

/** `bytes` (one of the bare messages) as delivery must send it for `record`. */
function withAdded(record: QueueRecord, bytes: Uint8Array): Uint8Array {
  const added = `Message-ID: <${record.id}@carrier.test>\r\n` +
    `Date: ${rfc5322Date(new Date(record.receivedAt))}\r\n`;
  return concatBytes([
    bytes.subarray(0, RECEIVED.length),
    enc.encode(added),
    bytes.subarray(RECEIVED.length),
  ]);
}

for (const [kind, bytes] of [["small", BARE], ["large", BARE_LARGE]] as const) {
  Deno.test(`hygiene (${kind}): Message-ID and Date added, identical on the retry, spool unchanged`, async () => {
    const behavior = { rejectRecipients: { "busy@example.net": 450 } };
    await withEnv({ behavior }, async ({ spool, host, worker }) => {
      const w = worker({ retry: { minMs: 300, maxMs: 600, lifetimeMs: 86_400_000 } });
      await w.start();
      const record = await enqueue(spool, {
        recipients: ["ok@example.net", "busy@example.net"],
        bytes,
      });
      w.notify(record);
      const after = await waitAttempts(spool, record.id, 1);
      strictEqual(rcpt(after, "ok@example.net").status, "delivered");
      deepStrictEqual(await storedBytes(spool, record.id), bytes, "the spool keeps what came in");
      host.setBehavior({ rejectRecipients: {} });
      const mails = await host.waitFor(2, 8000);
      deepStrictEqual(mails.map((m) => m.to), [["ok@example.net"], ["busy@example.net"]]);
      const expected = withAdded(record, bytes);
      for (const mail of mails) {
        deepStrictEqual(mail.data, expected);
        strictEqual(mail.declaredSize, expected.length, "SIZE counts the added fields");
      }
      await waitRemoved(spool, record.id);
    });
  });
}

Deno.test("hygiene: a message with both fields goes byte-exact, small or streamed", async () => {
  await withEnv({}, async ({ spool, host, worker }) => {
    const large = concatBytes([MESSAGE, new Uint8Array(100 * 1024).fill(0x79), enc.encode("\r\n")]);
    const w = worker();
    await w.start();
    const a = await enqueue(spool, { recipients: ["small@example.net"] });
    const b = await enqueue(spool, { recipients: ["large@example.net"], bytes: large });
    w.notify(a);
    w.notify(b);
    const mails = await host.waitFor(2, 8000);
    const byRcpt = new Map(mails.map((m) => [m.to[0], m]));
    deepStrictEqual(byRcpt.get("small@example.net")?.data, MESSAGE);
    deepStrictEqual(byRcpt.get("large@example.net")?.data, large);
    strictEqual(byRcpt.get("large@example.net")?.declaredSize, large.length);
  });
});

Deno.test("hygiene: a header section longer than the bytes read first is sent as it is", async () => {
  await withEnv({}, async ({ spool, host, logs, worker }) => {
    // One 40 KB header field: the end of the header section is past the first read.
    const long = concatBytes([
      enc.encode(RECEIVED),
      enc.encode(`X-Long: ${"z".repeat(40 * 1024)}\r\n`),
      CLIENT_PART,
    ]);
    const w = worker();
    await w.start();
    const record = await enqueue(spool, { recipients: ["bob@example.net"], bytes: long });
    w.notify(record);
    const [mail] = await host.waitFor(1, 8000);
    deepStrictEqual(mail.data, long);
    ok(
      logs.some((l) =>
        l.includes("header fields not added") && l.includes(record.id) &&
        l.includes("header-beyond-head")
      ),
      logs.join("\n"),
    );
  });
});

Deno.test("hygiene: a bounce (Carrier's own) gets no second Message-ID or Date", async () => {
  const behavior = { rejectRecipients: { "nouser@example.net": 550 } };
  await withEnv({ behavior }, async ({ spool, host, worker }) => {
    const w = worker();
    await w.start();
    const record = await enqueue(spool, { recipients: ["nouser@example.net"], bytes: BARE });
    w.notify(record);
    const [mail] = await host.waitFor(1, 8000);
    strictEqual(mail.from, "");
    const text = dec.decode(mail.data);
    strictEqual(text.match(/^Message-ID:/gim)?.length, 1, text);
    strictEqual(text.match(/^Date:/gim)?.length, 1, text);
    await waitRemoved(spool, record.id);
  });
});

Deno.test("8BITMIME: an 8-bit body to an upstream without it fails 5.6.3 and bounces", async () => {
  await withEnv({ hide8bitmime: true }, async ({ spool, host, worker }) => {
    const w = worker();
    await w.start();
    const record = await enqueue(spool, { recipients: ["bob@example.net"] });
    strictEqual(record.body, "8BITMIME");
    w.notify(record);
    // Nothing of the message went out; the bounce (7-bit: headers only) did.
    const [bounce] = await host.waitFor(1, 8000);
    strictEqual(bounce.from, "");
    deepStrictEqual(bounce.to, [SENDER]);
    strictEqual(bounce.bodyType, "7bit");
    const text = dec.decode(bounce.data);
    ok(text.includes("Final-Recipient: rfc822; bob@example.net"), text);
    ok(/5\.6\.3 upstream server does not support 8BITMIME/.test(text), text);
    await waitRemoved(spool, record.id);
    strictEqual(host.received.length, 1);
  });
});
