/**
 * The delivery worker's lanes and lifecycle: stop(), upstream pauses, expiry, connection
 * reuse and recovery from dropped connections. Real spool and smarthost; no timing asserts.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { concatBytes } from "../../src/bytes.ts";
import { pathExists } from "../../src/queue/spool.ts";
import { UpstreamSession } from "../../src/relay/upstream.ts";
import { storedBytes } from "../support/spool.ts";
import {
  dec,
  enc,
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
Deno.test("worker: stop() resolves and leaves pending messages queued", async () => {
  await withEnv({}, async ({ spool, host, metrics, worker }) => {
    const later = new Date(Date.now() + 60 * 60_000);
    const record = await enqueue(spool, { recipients: ["bob@example.net"], nextAttemptAt: later });
    const w = worker();
    await w.start();
    strictEqual(w.queueSize, 1);
    await w.stop(1000);
    // After stop nothing is taken any more, even a message that is due now.
    const due = await enqueue(spool, { recipients: ["carol@example.net"] });
    w.notify(due);
    await sleep(POLL_MS * 4);
    deepStrictEqual(await spool.read(record.id), record);
    deepStrictEqual(await spool.read(due.id), due);
    strictEqual(host.received.length, 0);
    strictEqual(metrics.get("delivery_attempts_total"), 0);
  });
});

Deno.test("worker: stop() waits for a queue poll under way; nothing runs after it", async () => {
  await withEnv({}, async ({ spool, logs, worker }) => {
    // Many short runs with a 1 ms poll, so stop() often lands in the middle of a poll.
    for (let i = 0; i < 40; i++) {
      const w = worker({ pollMs: 1 });
      await w.start();
      await spool.requests.askFlush();
      await sleep(i % 4);
      await w.stop(1000);
      const seen = logs.length;
      const flushed = logs.some((l) => l.includes("flush requested"));
      await sleep(5);
      deepStrictEqual(logs.slice(seen), [], `activity after stop() in run ${i}`);
      // A flush request not acted on before the stop is kept for the next start.
      if (!flushed) ok(await pathExists(join(spool.dir, "flush-request")), `run ${i}`);
      await spool.requests.takeFlush();
      logs.length = 0;
    }
  });
});

Deno.test("worker: one login failure pauses the queue instead of one failed login per message", async () => {
  await withEnv({}, async ({ spool, host, metrics, worker }) => {
    const queued = [];
    for (let i = 0; i < 8; i++) {
      queued.push(await enqueue(spool, { recipients: [`r${i}@example.net`] }));
    }
    const w = worker({ password: "not-the-password" });
    await w.start();
    await waitUntil(
      "a login failure",
      () => metrics.get("upstream_errors_total") >= 1 || undefined,
    );
    await sleep(POLL_MS * 6);
    // At most one attempt per lane (concurrency 2) before the pause; the rest wait.
    ok(metrics.get("upstream_errors_total") <= 2, `${metrics.get("upstream_errors_total")} logins`);
    ok(host.connections <= 2, `${host.connections} connections`);
    const { records } = await spool.list();
    strictEqual(records.length, 8, "every message still queued");
    ok(records.filter((r) => r.attempts === 0).length >= 6, "the others were not tried");
    strictEqual(queued.length, 8);
  });
});

Deno.test("worker: mail held past its lifetime is tried once when an upstream appears, not bounced unseen", async () => {
  await withEnv({}, async ({ spool, host, worker }) => {
    const old = await enqueue(spool, {
      recipients: ["bob@example.net"],
      receivedAt: new Date(Date.now() - 6 * 86_400_000),
    });
    const w = worker();
    await w.start();
    await waitRemoved(spool, old.id);
    strictEqual(host.received.length, 1);
    deepStrictEqual(host.received[0].to, ["bob@example.net"], "delivered, not a bounce");
  });
});

Deno.test("worker: a delete request left from before a restart is applied before anything is sent", async () => {
  await withEnv({}, async ({ spool, host, worker }) => {
    const record = await enqueue(spool, { recipients: ["bob@example.net"] });
    await spool.requests.ask("delete", record.id);
    const w = worker({ pollMs: 60_000 });
    await w.start();
    await sleep(300);
    strictEqual(host.received.length, 0);
    strictEqual(await pathExists(spool.messagePath(record.id)), false);
    deepStrictEqual(await spool.requests.pending(), []);
  });
});

Deno.test("worker: lanes failing together count as one upstream failure (one pause step)", async () => {
  await withEnv({}, async ({ spool, metrics, logs, worker }) => {
    for (let i = 0; i < 8; i++) await enqueue(spool, { recipients: [`r${i}@example.net`] });
    const w = worker({ password: "not-the-password", concurrency: 4 });
    await w.start();
    await waitUntil(
      "a login failure",
      () => metrics.get("upstream_errors_total") >= 1 || undefined,
    );
    await sleep(POLL_MS * 6);
    const pauses = logs.filter((l) => l.includes(" error upstream unavailable "))
      .map((l) => Number(/pause=(\d+)s/.exec(l)?.[1]));
    ok(pauses.length >= 1 && pauses.length <= 4, `${pauses.length} failures`);
    // retry-min is 1 h in these tests: the first step is 1 h +-20 %, never a later doubling.
    for (const p of pauses) ok(p >= 2880 && p <= 4320, `pause ${p}s`);
  });
});

Deno.test("worker: an account-level MAIL FROM refusal (Gmail's daily limit) defers and pauses the queue", async () => {
  const rejectMailFrom = { code: 550, message: "5.4.5 Daily user sending limit exceeded" };
  await withEnv({ behavior: { rejectMailFrom } }, async ({ spool, metrics, logs, worker }) => {
    for (let i = 0; i < 6; i++) await enqueue(spool, { recipients: [`r${i}@example.net`] });
    const w = worker({ concurrency: 1 });
    await w.start();
    await waitUntil("a refusal", () => metrics.get("upstream_errors_total") >= 1 || undefined);
    await sleep(POLL_MS * 6);
    strictEqual(metrics.get("upstream_errors_total"), 1, "one refusal, then the pause");
    strictEqual(metrics.get("bounces_total"), 0);
    const { records } = await spool.list();
    strictEqual(records.length, 6, "nothing bounced or dropped");
    strictEqual(records.filter((r) => r.attempts > 0).length, 1, "the others wait for the pause");
    ok(logs.some((l) => l.includes(" error upstream unavailable ") && l.includes("5.4.5")));
  });
});

Deno.test("worker: stop() is bounded even while a lane waits for an upstream that never greets", async () => {
  await withEnv({}, async ({ spool, pki, logs, worker }) => {
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepted: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of silent) accepted.push(conn);
    })();
    try {
      const w = worker({
        upstreams: [{
          name: "silent",
          maxRecipients: 100,
          connect: () =>
            UpstreamSession.open({
              config: { security: "starttls", host: "127.0.0.1", port: silent.addr.port },
              ca: pki.caCert,
              clientHostname: "carrier.test",
              connectTimeoutMs: 120_000, // far beyond the bound below
            }),
        }],
      });
      await w.start();
      await enqueue(spool, { recipients: ["bob@example.net"] }).then((r) => w.notify(r));
      await waitUntil("the lane to connect", () => accepted.length > 0 || undefined);
      const started = Date.now();
      await w.stop(100);
      ok(Date.now() - started < 30_000, "stop() returned without waiting for the greeting timeout");
      ok(logs.some((l) => l.includes("shutdown: leaving upstream connection attempts behind")));
      const { records } = await spool.list();
      strictEqual(records.length, 1, "the message stays queued");
    } finally {
      for (const conn of accepted) conn.close(); // ends the pending open()
      silent.close();
      await accepting;
    }
  });
});

Deno.test("worker: first attempts send the exact bytes whether handed over, streamed or read back", async () => {
  await withEnv({}, async ({ spool, host, worker }) => {
    const big = concatBytes([MESSAGE, new Uint8Array(300 * 1024).fill(0x78), enc.encode("\r\n")]);
    const before = await enqueue(spool, { recipients: ["scanned@example.net"] });
    const w = worker();
    await w.start();
    // As the server does: a small message with its bytes, a large one without.
    const small = await enqueue(spool, { recipients: ["small@example.net"] });
    w.notify(small, await storedBytes(spool, small.id));
    const large = await enqueue(spool, { recipients: ["large@example.net"], bytes: big });
    w.notify(large);
    const mails = await host.waitFor(3, 8000);
    const byRcpt = new Map(mails.map((m) => [m.to[0], m.data]));
    deepStrictEqual(byRcpt.get("scanned@example.net"), MESSAGE);
    deepStrictEqual(byRcpt.get("small@example.net"), MESSAGE);
    strictEqual(byRcpt.get("large@example.net")?.length, big.length);
    deepStrictEqual(byRcpt.get("large@example.net"), big);
    for (const r of [before, small, large]) await waitRemoved(spool, r.id);
    strictEqual(host.received.length, 3);
  });
});

Deno.test("worker: a deferred recipient is retried from the record beside the message, then all is removed", async () => {
  const behavior = { rejectRecipients: { "busy@example.net": 450 } };
  await withEnv({ behavior }, async ({ spool, host, worker }) => {
    const w = worker({ retry: { minMs: 300, maxMs: 600, lifetimeMs: 86_400_000 } });
    await w.start();
    const record = await enqueue(spool, { recipients: ["ok@example.net", "busy@example.net"] });
    w.notify(record, await storedBytes(spool, record.id));
    const after = await waitAttempts(spool, record.id, 1);
    strictEqual(rcpt(after, "ok@example.net").status, "delivered");
    ok(await pathExists(spool.recordPath(record.id)), "the changed record is beside the message");
    host.setBehavior({ rejectRecipients: {} });
    const mails = await host.waitFor(2, 8000);
    deepStrictEqual(mails.map((m) => m.to), [["ok@example.net"], ["busy@example.net"]]);
    deepStrictEqual(mails[1].data, MESSAGE, "the retry reads the bytes back from the spool");
    await waitRemoved(spool, record.id); // the message and the record beside it
    deepStrictEqual((await spool.list()).records, []);
  });
});

Deno.test("worker: one attempt per message at a time: a 550 + 451 message is not retried while its bounce is queued", async () => {
  // Regression: the message used to be rescheduled before its bounce was queued; with a
  // 1 s retry, a second lane took it meanwhile and bounced the failed recipient again
  // (3 bounces in all). Here queueing the first bounce takes longer than the retry
  // delay (a slow spool), so that window is always open.
  const behavior = {
    rejectRecipients: { "nouser@example.net": 550, "busy@example.net": 451, [SENDER]: 451 },
  };
  await withEnv({ behavior }, async ({ spool, metrics, worker, logs }) => {
    const record = await enqueue(spool, {
      recipients: ["nouser@example.net", "busy@example.net"],
    });
    const original = {
      createMessage: spool.createMessage.bind(spool),
      open: spool.open.bind(spool),
      update: spool.update.bind(spool),
    };
    let bouncesCreated = 0;
    /** From the start of the first bounce until the message's record says it is bounced. */
    let bouncing = false;
    const overlaps: string[] = [];
    let concurrentOpen: Promise<unknown> | undefined;
    let onConcurrent: (() => void) | undefined;
    spool.createMessage = async (fields) => {
      if (fields.kind === "bounce" && ++bouncesCreated === 1) {
        bouncing = true;
        await sleep(1500); // longer than any retry delay below (1 s +-20 %)
      }
      return await original.createMessage(fields);
    };
    // The test's own reads (and scans) go around the hook below: it sees the worker's opens.
    spool.read = async (id) => {
      const { record, file } = await original.open(id);
      file.close();
      return record;
    };
    spool.open = (id, known) => {
      const opened = original.open(id, known);
      if (id === record.id && bouncing) {
        overlaps.push(`open of ${id} while its bounce was being queued`);
        concurrentOpen = opened;
        onConcurrent?.();
      }
      return opened;
    };
    spool.update = async (r) => {
      const marksBounced = r.id === record.id && bouncing &&
        rcpt(r, "nouser@example.net").bounced === true;
      if (!marksBounced) return await original.update(r);
      // Held back a moment (until a concurrent attempt, if any, has read the record), so a
      // second attempt under way reads the record from before the bounce, every time.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 500);
        onConcurrent = () => {
          clearTimeout(timer);
          resolve();
        };
        if (concurrentOpen) onConcurrent();
      });
      await concurrentOpen?.catch(() => {});
      try {
        return await original.update(r);
      } finally {
        bouncing = false;
      }
    };

    const w = worker({ retry: { minMs: 1000, maxMs: 1000, lifetimeMs: 86_400_000 } });
    await w.start();
    // The message is retried after its bounce is recorded (attempt 2: busy@ again 451).
    const after = await waitUntil("a second attempt after the bounce", async () => {
      const r = await readRecord(spool, record.id);
      return r && r.attempts >= 2 && rcpt(r, "nouser@example.net").bounced === true ? r : undefined;
    }, 15_000).catch((e) => {
      throw new Error(`${e}; log:\n${logs.join("\n")}`);
    });
    await w.stop(2000);

    const bounces = (await spool.list()).records.filter((r) => r.kind === "bounce");
    strictEqual(bounces.length, 1, "exactly one bounce queued");
    strictEqual(bouncesCreated, 1);
    strictEqual(metrics.get("bounces_total"), 1);
    deepStrictEqual(overlaps, [], "no attempt of the message while its bounce was queued");
    strictEqual(rcpt(after, "nouser@example.net").status, "failed");
    strictEqual(rcpt(after, "busy@example.net").status, "pending");
    deepStrictEqual(bounces[0].recipients.map((r) => r.address), [SENDER]);
    const text = dec.decode(await storedBytes(spool, bounces[0].id));
    ok(text.includes("nouser@example.net"), text);
    ok(!text.includes("busy@example.net"), "the deferred recipient is not reported");
  });
});

Deno.test("worker: a lingering connection idle over 0.5 s is checked with RSET before the next message; back-to-back ones are not", async () => {
  await withEnv({}, async ({ spool, host, worker }) => {
    const a1 = await enqueue(spool, { recipients: ["a1@example.net"] });
    const a2 = await enqueue(spool, { recipients: ["a2@example.net"] });
    const w = worker({ concurrency: 1 });
    await w.start(); // one lane finds both due: back to back on one connection
    await host.waitFor(2, 8000);
    await waitRemoved(spool, a1.id);
    await waitRemoved(spool, a2.id);
    // The lane keeps its connection (2 s); a message 1 s later finds it idle.
    await sleep(1000);
    const b = await enqueue(spool, { recipients: ["b@example.net"] });
    w.notify(b);
    const mails = await host.waitFor(3, 8000);
    deepStrictEqual(mails.map((m) => m.to[0]), [
      "a1@example.net",
      "a2@example.net",
      "b@example.net",
    ]);
    strictEqual(host.connections, 1, "the lingering connection carried the third message");
    const mailAndRset = host.commands.filter((c) => c === "MAIL" || c === "RSET");
    deepStrictEqual(mailAndRset, ["MAIL", "MAIL", "RSET", "MAIL"]);
    await waitRemoved(spool, b.id);
  });
});

/**
 * A TCP relay to the smarthost that, once `dropNext` is set, closes both sides on the
 * next bytes from the client instead of passing them on: the upstream dropped an idle
 * connection and the client learns of it only when it next writes (a NAT or firewall
 * timeout, or a server that closed it without the client reading the end yet).
 */
function startDroppingRelay(targetPort: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const state = { dropNext: false, dropped: 0 };
  const tasks: Promise<void>[] = [];
  const open = new Set<Deno.Conn>();
  const closeQuietly = (c: Deno.Conn) => {
    open.delete(c);
    try {
      c.close();
    } catch { /* already closed */ }
  };
  const pipe = async (from: Deno.Conn, to: Deno.Conn, fromClient: boolean) => {
    const buf = new Uint8Array(16 * 1024);
    try {
      for (let i = 0; i < 100_000; i++) {
        const n = await from.read(buf);
        if (n === null) break;
        if (fromClient && state.dropNext) {
          state.dropNext = false;
          state.dropped++;
          break;
        }
        for (let off = 0; off < n;) off += await to.write(buf.subarray(off, n));
      }
    } catch {
      /* the other direction closed both */
    } finally {
      closeQuietly(from);
      closeQuietly(to);
    }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      open.add(client);
      try {
        const server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
        open.add(server);
        tasks.push(pipe(client, server, true), pipe(server, client, false));
      } catch {
        closeQuietly(client);
      }
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    state,
    async close() {
      listener.close();
      await accepting;
      for (const c of [...open]) closeQuietly(c);
      await Promise.all(tasks);
    },
  };
}

Deno.test("worker: an idle connection the upstream dropped meanwhile: the next message goes at once on a new connection, not deferred", async () => {
  await withEnv({}, async ({ spool, host, metrics, logs, worker }) => {
    const relay = startDroppingRelay(host.port);
    try {
      const w = worker({ concurrency: 1, port: relay.port });
      await w.start();
      const a = await enqueue(spool, { recipients: ["a@example.net"] });
      w.notify(a);
      await host.waitFor(1, 8000);
      await waitRemoved(spool, a.id);
      relay.state.dropNext = true; // the upstream side of the idle connection is gone
      await sleep(1000);
      const b = await enqueue(spool, { recipients: ["b@example.net"] });
      w.notify(b);
      // Retries are an hour away here: the first attempt delivers it, or it waits.
      // (Not read from the spool: a read racing the removal may see the emptied file.)
      const outcome = await waitUntil("the second message delivered or deferred", () => {
        if (host.received.length >= 2) return "delivered";
        const deferred = logs.find((l) => l.includes(" info deferred ") && l.includes(b.id));
        return deferred === undefined ? undefined : `deferred: ${deferred}`;
      });
      strictEqual(outcome, "delivered");
      deepStrictEqual(host.received[1].to, ["b@example.net"]);
      await waitRemoved(spool, b.id);
      strictEqual(relay.state.dropped, 1, "the check met the dropped connection");
      strictEqual(host.connections, 2, "a new connection for the second message");
      strictEqual(metrics.get("deferrals_total"), 0);
      strictEqual(metrics.get("delivery_attempts_total"), 2);
      ok(!logs.some((l) => l.includes(" info deferred ")), logs.join("\n"));
      await w.stop(1000);
    } finally {
      await relay.close();
    }
  });
});
