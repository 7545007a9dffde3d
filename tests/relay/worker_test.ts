/**
 * The delivery worker's outcomes: exact bytes, per-recipient results, bounces, hold and
 * flush. In-process, against a real spool and smarthost; nothing asserts on timing.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { pathExists } from "../../src/queue/spool.ts";
import { storedBytes } from "../support/spool.ts";
import {
  dec,
  enqueue,
  MESSAGE,
  POLL_MS,
  rcpt,
  readRecord,
  SENDER,
  sleep,
  waitAttempts,
  waitRemoved,
  waitUntil,
  withEnv,
} from "./_worker_helpers.ts";
Deno.test("worker: delivers the exact bytes and envelope, then removes the message", async () => {
  await withEnv({}, async ({ spool, host, metrics, logs, worker }) => {
    const w = worker();
    await w.start();
    const record = await enqueue(spool, { recipients: ["bob@example.net", "carol@example.net"] });
    w.notify(record);
    const [mail] = await host.waitFor(1, 8000);
    deepStrictEqual(mail.data, MESSAGE);
    strictEqual(mail.from, SENDER);
    deepStrictEqual(mail.to, ["bob@example.net", "carol@example.net"]);
    strictEqual(mail.user, "relay");
    strictEqual(mail.secure, true);
    strictEqual(mail.bodyType, "8bitmime");
    await waitRemoved(spool, record.id);
    deepStrictEqual((await spool.list()).records, []);
    await waitUntil("the queue gauge", () => metrics.get("queue_messages") === 0 || undefined);
    strictEqual(metrics.get("deliveries_total"), 2);
    strictEqual(metrics.get("delivery_attempts_total"), 1);
    strictEqual(metrics.get("upstream_errors_total"), 0);
    strictEqual(host.received.length, 1);
    ok(logs.some((l) => / info delivered id=\S+ to=<bob@example.net>/.test(l)), logs.join("\n"));
    // Logged once the removal is durable (the file leaves queue/ a moment earlier).
    await waitUntil(
      "the removal log line",
      () =>
        logs.some((l) => l.includes(" info removed ") && l.includes("delivered=2")) || undefined,
    );
  });
});

Deno.test("worker: messages queued before start are found by the start-up scan", async () => {
  await withEnv({}, async ({ spool, host, worker }) => {
    const a = await enqueue(spool, { recipients: ["a@example.net"] });
    const b = await enqueue(spool, { recipients: ["b@example.net"] });
    const w = worker();
    await w.start(); // no notify: the scan alone must find both
    const mails = await host.waitFor(2, 8000);
    deepStrictEqual(mails.map((m) => m.to[0]).sort(), ["a@example.net", "b@example.net"]);
    await waitRemoved(spool, a.id);
    await waitRemoved(spool, b.id);
  });
});

Deno.test("worker: a recipient already recorded delivered is not sent again", async () => {
  await withEnv({}, async ({ spool, host, metrics, worker }) => {
    const record = await enqueue(spool, {
      attempts: 1,
      recipients: [
        {
          address: "done@example.net",
          status: "delivered",
          response: "250 2.0.0 Ok: queued as 1",
          updatedAt: new Date().toISOString(),
        },
        "todo@example.net",
      ],
    });
    // Found by the start-up scan (notify is only for messages just queued, never updated).
    const w = worker();
    await w.start();
    const [mail] = await host.waitFor(1, 8000);
    deepStrictEqual(mail.to, ["todo@example.net"]);
    deepStrictEqual(mail.data, MESSAGE);
    await waitRemoved(spool, record.id);
    strictEqual(host.received.length, 1);
    strictEqual(metrics.get("deliveries_total"), 1);
  });
});

Deno.test("worker: 450 stays pending with its reply and a later retry; 250 is recorded", async () => {
  const behavior = { rejectRecipients: { "busy@example.net": 450 } };
  await withEnv({ behavior }, async ({ spool, host, metrics, logs, worker }) => {
    const w = worker();
    await w.start();
    const record = await enqueue(spool, { recipients: ["ok@example.net", "busy@example.net"] });
    w.notify(record);
    const after = await waitAttempts(spool, record.id, 1);
    const okRcpt = rcpt(after, "ok@example.net");
    strictEqual(okRcpt.status, "delivered");
    ok(/^250\b/.test(okRcpt.response ?? ""), okRcpt.response);
    ok(okRcpt.updatedAt);
    const busy = rcpt(after, "busy@example.net");
    strictEqual(busy.status, "pending");
    ok(/^450\b/.test(busy.response ?? ""), busy.response);
    ok(Date.parse(after.nextAttemptAt) > Date.now(), after.nextAttemptAt);
    strictEqual(after.lastError, busy.response);
    strictEqual(after.attempts, 1);

    const [mail] = await host.waitFor(1, 8000);
    deepStrictEqual(mail.to, ["ok@example.net"]);
    strictEqual(metrics.get("deliveries_total"), 1);
    strictEqual(metrics.get("deferrals_total"), 1);
    strictEqual(metrics.get("bounces_total"), 0);
    ok(logs.some((l) => l.includes(" info deferred ") && l.includes(record.id)), logs.join("\n"));

    // Stopping leaves the deferred message queued, unchanged.
    await w.stop(1000);
    deepStrictEqual(await spool.read(record.id), after);
    ok(await pathExists(spool.messagePath(record.id)));
    strictEqual(host.received.length, 1);
  });
});

Deno.test("worker: 550 fails the recipient, queues a bounce to the sender, records bounced", async () => {
  // The sender's own mailbox is busy, so the bounce stays in the queue for inspection.
  const behavior = {
    rejectRecipients: { "nouser@example.net": 550, "busy@example.net": 450, [SENDER]: 450 },
  };
  await withEnv({ behavior }, async ({ spool, host, metrics, worker }) => {
    const w = worker();
    await w.start();
    const record = await enqueue(spool, {
      recipients: ["nouser@example.net", "busy@example.net"],
    });
    w.notify(record);
    const after = await waitUntil("the failed recipient to be bounced", async () => {
      const r = await readRecord(spool, record.id);
      return r && rcpt(r, "nouser@example.net").bounced === true ? r : undefined;
    });
    const failed = rcpt(after, "nouser@example.net");
    strictEqual(failed.status, "failed");
    ok(/^550\b/.test(failed.response ?? ""), failed.response);
    strictEqual(rcpt(after, "busy@example.net").status, "pending");

    const bounce = await waitUntil("a bounce record", async () => {
      const { records } = await spool.list();
      return records.find((r) => r.kind === "bounce");
    });
    strictEqual(bounce.sender, "");
    deepStrictEqual(bounce.recipients.map((r) => r.address), [SENDER]);
    strictEqual(bounce.recipients[0].status, "pending");
    const bounceBytes = await storedBytes(spool, bounce.id);
    const text = dec.decode(bounceBytes);
    ok(text.includes("multipart/report"), text);
    ok(text.includes("nouser@example.net"), text);
    ok(text.includes("Subject: worker test"), "original headers attached");
    ok(!text.includes("busy@example.net"), "a pending recipient is not reported as failed");
    strictEqual(bounce.size, bounceBytes.length);
    // Exactly one bounce, and the smarthost got nothing (busy deferred, bounce deferred).
    strictEqual((await spool.list()).records.filter((r) => r.kind === "bounce").length, 1);
    strictEqual(metrics.get("bounces_total"), 1);
    strictEqual(metrics.get("failures_total"), 1);
    strictEqual(host.received.length, 0);
  });
});

Deno.test("worker: every recipient 550: the bounce goes from <> to the sender, all removed", async () => {
  const behavior = { rejectRecipients: { "nouser@example.net": 550 } };
  await withEnv({ behavior }, async ({ spool, host, worker }) => {
    const w = worker();
    await w.start();
    const record = await enqueue(spool, { recipients: ["nouser@example.net"] });
    w.notify(record);
    const [mail] = await host.waitFor(1, 8000);
    strictEqual(mail.from, "");
    deepStrictEqual(mail.to, [SENDER]);
    const text = dec.decode(mail.data);
    ok(text.includes("Content-Type: multipart/report"), text);
    ok(text.includes("Final-Recipient: rfc822; nouser@example.net"), text);
    await waitRemoved(spool, record.id);
    await waitUntil("an empty queue", async () => {
      const { records } = await spool.list();
      return records.length === 0 ? true : undefined;
    });
    strictEqual(host.received.length, 1);
  });
});

for (const failure of ["wrong password", "closed port"] as const) {
  Deno.test(`worker: connect-phase failure (${failure}) defers and never bounces`, async () => {
    await withEnv({}, async ({ spool, host, metrics, logs, worker }) => {
      let port = host.port;
      if (failure === "closed port") {
        const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        port = l.addr.port;
        l.close();
      }
      const w = worker(failure === "wrong password" ? { password: "not-the-password" } : { port });
      await w.start();
      const record = await enqueue(spool, { recipients: ["bob@example.net", "carol@example.net"] });
      w.notify(record);
      const after = await waitAttempts(spool, record.id, 1);
      deepStrictEqual(after.recipients.map((r) => r.status), ["pending", "pending"]);
      const pattern = failure === "wrong password" ? /535/ : /cannot connect/;
      ok(pattern.test(after.lastError ?? ""), after.lastError);
      ok(!(after.lastError ?? "").includes("not-the-password"));
      for (const r of after.recipients) strictEqual(r.response, after.lastError);
      ok(Date.parse(after.nextAttemptAt) > Date.now());
      strictEqual(metrics.get("upstream_errors_total"), 1);
      strictEqual(metrics.get("delivery_attempts_total"), 1);
      strictEqual(metrics.get("deferrals_total"), 2);
      strictEqual(metrics.get("failures_total"), 0);
      strictEqual(metrics.get("bounces_total"), 0);
      const { records } = await spool.list();
      deepStrictEqual(records.map((r) => r.id), [record.id], "no bounce queued");
      ok(
        logs.some((l) => l.includes(" error upstream unavailable ") && pattern.test(l)),
        logs.join("\n"),
      );
      strictEqual(host.received.length, 0);
    });
  });
}

Deno.test("worker: hold mode never delivers, keeps flush requests, applies deletes", async () => {
  await withEnv({}, async ({ spool, host, metrics, logs, worker }) => {
    const keep = await enqueue(spool, { recipients: ["keep@example.net"] });
    const drop = await enqueue(spool, { recipients: ["drop@example.net"] });
    await spool.requests.askFlush();
    const w = worker({ hold: true });
    await w.start();
    w.notify(keep);
    strictEqual(w.queueSize, 2);
    strictEqual(w.describe(), "none (hold mode)");
    await spool.requests.ask("delete", drop.id);
    await waitRemoved(spool, drop.id);
    // The file leaves the queue before the removal's directory fsync and its log line.
    await waitUntil(
      "the deletion's log line",
      () => logs.find((l) => l.includes(" info deleted by operator ") && l.includes(drop.id)),
    );
    strictEqual(w.queueSize, 1);
    // A few more poll intervals: still nothing sent, the flush request left for a real server.
    await sleep(POLL_MS * 4);
    deepStrictEqual(await spool.read(keep.id), keep);
    ok(await pathExists(join(spool.dir, "flush-request")));
    strictEqual(metrics.get("delivery_attempts_total"), 0);
    strictEqual(host.connections, 0);
  });
});

Deno.test("worker: a flush request sends a message whose retry is not yet due", async () => {
  await withEnv({}, async ({ spool, host, logs, worker }) => {
    const later = new Date(Date.now() + 60 * 60_000);
    const record = await enqueue(spool, { recipients: ["bob@example.net"], nextAttemptAt: later });
    const w = worker();
    await w.start(); // the start-up scan schedules it for later
    await sleep(POLL_MS * 4);
    strictEqual(host.received.length, 0, "not due yet");
    strictEqual((await spool.read(record.id)).attempts, 0);
    await spool.requests.askFlush();
    const [mail] = await host.waitFor(1, 8000);
    deepStrictEqual(mail.to, ["bob@example.net"]);
    await waitRemoved(spool, record.id);
    ok(logs.some((l) => l.includes("flush requested")), logs.join("\n"));
    ok(!(await pathExists(join(spool.dir, "flush-request"))), "request consumed");
  });
});

Deno.test("worker: reconfigure takes new credentials; the next connection uses them", async () => {
  await withEnv({}, async ({ spool, host, worker }) => {
    const w = worker({ password: "stale-password" });
    await w.start();
    const record = await enqueue(spool, { recipients: ["bob@example.net"] });
    w.notify(record);
    await waitAttempts(spool, record.id, 1);
    strictEqual(host.received.length, 0);
    const fixed = worker({}); // the same settings with the right password
    w.reconfigure({ ...fixed.options });
    await spool.requests.askFlush();
    const [mail] = await host.waitFor(1, 8000);
    deepStrictEqual(mail.to, ["bob@example.net"]);
  });
});
