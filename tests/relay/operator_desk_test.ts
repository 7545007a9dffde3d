/**
 * `carrier queue hold|release|requeue` as the running worker applies them (through request
 * files in the spool), and the server state file that tells `queue list` why mail waits.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { readServerState } from "../../src/queue/server_state.ts";
import { enqueue, readRecord, sleep, waitRemoved, waitUntil, withEnv } from "./_worker_helpers.ts";

const LATER = () => new Date(Date.now() + 3_600_000);

Deno.test("worker: a held message is not tried, even by a flush, nor after a restart; requeue sends it", async () => {
  await withEnv({}, async ({ spool, host, metrics, logs, worker }) => {
    const record = await enqueue(spool, {
      recipients: ["bob@example.net"],
      nextAttemptAt: LATER(),
      attempts: 3,
    });
    const w = worker();
    await w.start();
    await spool.requests.ask("hold", record.id);
    // The record is written before the log line: wait for both.
    const logged = () =>
      logs.some((l) => l.includes(" info held by operator ") && l.includes(record.id));
    await waitUntil(
      "the hold to be applied and logged",
      async () => (await readRecord(spool, record.id))?.held && logged() ? true : undefined,
    );
    deepStrictEqual(w.queueCounts(Date.now()).depth, { due: 0, deferred: 0, held: 1 });
    await spool.requests.askFlush();
    await sleep(400);
    strictEqual(host.received.length, 0, "a flush does not send held mail");
    await w.stop(1000);

    const again = worker();
    await again.start();
    await sleep(300);
    strictEqual(host.received.length, 0, "still held after a restart");
    strictEqual(again.queueCounts(Date.now()).depth.held, 1);

    await spool.requests.ask("requeue", record.id);
    const [mail] = await host.waitFor(1, 8000);
    deepStrictEqual(mail.to, ["bob@example.net"]);
    ok(logs.some((l) => l.includes(" info requeued by operator ") && l.includes(record.id)));
    await waitRemoved(spool, record.id);
    strictEqual(metrics.get("deliveries_total"), 1);
  });
});

Deno.test("worker: release puts a held message back on its retry schedule", async () => {
  await withEnv({}, async ({ spool, host, worker }) => {
    const due = await enqueue(spool, { recipients: ["due@example.net"], nextAttemptAt: LATER() });
    const w = worker();
    await w.start();
    await spool.requests.ask("hold", due.id);
    await waitUntil("held", async () => (await readRecord(spool, due.id))?.held ? true : undefined);
    await spool.requests.ask("release", due.id);
    await waitUntil("released", async () => {
      const r = await readRecord(spool, due.id);
      return r && r.held === undefined &&
          !(await spool.requests.waiting({ action: "release", id: due.id }))
        ? true
        : undefined;
    });
    deepStrictEqual(w.queueCounts(Date.now()).depth, { due: 0, deferred: 1, held: 0 });
    strictEqual(host.received.length, 0, "its retry is an hour away");
  });
});

Deno.test("worker: an upstream pause is written for queue list, and removed at a clean stop", async () => {
  await withEnv({}, async ({ spool, worker }) => {
    const w = worker({ password: "not-the-password" });
    await w.start();
    strictEqual((await readServerState(spool.dir))?.mode, "relay");
    const record = await enqueue(spool, { recipients: ["bob@example.net"] });
    w.notify(record);
    const state = await waitUntil("the pause in the state file", async () => {
      const s = await readServerState(spool.dir);
      return s?.pausedUntil ? s : undefined;
    });
    ok(Date.parse(state.pausedUntil!) > Date.now(), state.pausedUntil);
    ok(/535/.test(state.pauseError ?? ""), state.pauseError);
    ok(!(state.pauseError ?? "").includes("not-the-password"));
    await w.stop(1000);
    strictEqual(await readServerState(spool.dir), undefined);
  });
});

Deno.test("worker: hold mode says so in the state file", async () => {
  await withEnv({}, async ({ spool, worker }) => {
    const w = worker({ hold: true });
    await w.start();
    strictEqual((await readServerState(spool.dir))?.mode, "hold");
  });
});
