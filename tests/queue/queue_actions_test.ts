import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert/strict";
import { newQueueId } from "../../src/queue/record.ts";
import { writeServerState } from "../../src/queue/server_state.ts";
import { run, store, withQueue } from "./_queue_cli.ts";

Deno.test("queue hold and release without a server change the record at once", async () => {
  await withQueue(async (spool, config) => {
    const a = await store(spool, "a");
    const held = await run(config, ["hold", a]);
    deepStrictEqual(held, { out: [`held ${a}`], err: [], code: 0 });
    strictEqual((await spool.read(a)).held, true);
    match(
      (await run(config, ["list"])).out.join("\n"),
      new RegExp(`next held \\(carrier queue release ${a}\\)`),
    );

    const released = await run(config, ["release", a], true);
    deepStrictEqual(JSON.parse(released.out[0]), {
      action: "release",
      released: [a],
      requested: [],
    });
    strictEqual((await spool.read(a)).held, undefined);
  });
});

Deno.test("queue hold --all and release --all take every message; ids and --all exclude each other", async () => {
  await withQueue(async (spool, config) => {
    const ids = [await store(spool, "a"), await store(spool, "b")].sort();
    deepStrictEqual(
      (await run(config, ["hold"], false, true)).out.sort(),
      ids.map((i) => `held ${i}`),
    );
    for (const id of ids) strictEqual((await spool.read(id)).held, true);
    deepStrictEqual(
      (await run(config, ["release"], false, true)).out.sort(),
      ids.map((i) => `released ${i}`),
    );
    for (const id of ids) strictEqual((await spool.read(id)).held, undefined);
    await rejects(run(config, ["hold", ids[0]], false, true), /give ids or --all, not both/);
    await rejects(run(config, ["requeue"], false, true), /--all is for hold and release only/);
    await rejects(run(config, ["hold"]), /give at least one message id \(or --all\)/);
  });
});

Deno.test("queue requeue makes a message due now and restarts its backoff", async () => {
  await withQueue(async (spool, config) => {
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const a = await store(spool, "a", { attempts: 4, nextAttemptAt: later, held: true });
    const before = Date.now();
    deepStrictEqual((await run(config, ["requeue", a])).out, [`requeued ${a}`]);
    const r = await spool.read(a);
    ok(Date.parse(r.nextAttemptAt) >= before - 1000 && Date.parse(r.nextAttemptAt) <= Date.now());
    strictEqual(r.attempts, 4, "the history stays");
    strictEqual(r.backoffFrom, 4);
    strictEqual(r.held, undefined, "a requeued message is no longer held");
  });
});

Deno.test("queue hold of an unknown id changes nothing and exits 1", async () => {
  await withQueue(async (spool, config) => {
    const a = await store(spool, "a");
    const r = await run(config, ["hold", a, newQueueId()]);
    strictEqual(r.code, 1);
    match(r.err[0], /no message with id/);
    strictEqual((await spool.read(a)).held, undefined);
  });
});

Deno.test("queue list says why mail waits: hold mode, an upstream pause, or no server", async () => {
  await withQueue(async (spool, config) => {
    const a = await store(spool, "a");
    match((await run(config, ["list"])).out[0], /next now \(no server running\)$/);
    await writeServerState(spool.dir, { mode: "hold", updatedAt: new Date().toISOString() });
    match(
      (await run(config, ["list"])).out[0],
      /next never: hold mode \(the server has no upstream\)$/,
    );
    await writeServerState(spool.dir, {
      mode: "relay",
      pausedUntil: new Date(Date.now() + 125_000).toISOString(),
      pauseError: "535 5.7.8 bad credentials",
      updatedAt: new Date().toISOString(),
    });
    match(
      (await run(config, ["list"])).out[0],
      /next after the upstream pause, in 2m: 535 5\.7\.8 bad credentials$/,
    );
    match(
      (await run(config, ["show", a])).out.join("\n"),
      /attempts: +0, next after the upstream pause/,
    );
  });
});
