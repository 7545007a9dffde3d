/**
 * One queued message in several upstream transactions (recipients over the per-message
 * limit): every transaction carries the whole message, also when it is streamed from the
 * file rather than held in memory.
 */

import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { concatBytes } from "../../src/bytes.ts";
import { enc, enqueue, MESSAGE, waitRemoved, withEnv } from "./_worker_helpers.ts";

Deno.test("split: a streamed message goes whole in each transaction of at most N recipients", async () => {
  await withEnv({}, async ({ spool, host, worker }) => {
    // Far beyond what is read with the record: the rest comes from the file, once per transaction.
    const large = concatBytes([MESSAGE, new Uint8Array(100 * 1024).fill(0x79), enc.encode("\r\n")]);
    const w = worker();
    w.options.upstreams[0]!.maxRecipients = 2;
    await w.start();
    const recipients = [
      "a@example.net",
      "b@example.net",
      "c@example.net",
      "d@example.net",
      "e@x.net",
    ];
    const r = await enqueue(spool, { recipients, bytes: large });
    w.notify(r);
    const mails = await host.waitFor(3, 8000);
    deepStrictEqual(mails.map((m) => m.to), [
      ["a@example.net", "b@example.net"],
      ["c@example.net", "d@example.net"],
      ["e@x.net"],
    ]);
    for (const m of mails) deepStrictEqual(m.data, large);
    await waitRemoved(spool, r.id);
    strictEqual(host.received.length, 3);
  });
});
