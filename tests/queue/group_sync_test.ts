import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { GroupSync } from "../../src/queue/group_sync.ts";

/** A sync whose every call waits until the test settles it. */
function controlledSync() {
  const calls: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const sync = () =>
    new Promise<void>((resolve, reject) => {
      calls.push({ resolve, reject });
    });
  return { sync, calls };
}

/** Lets every pending promise callback run (no timers involved). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** Records when a promise settled, without letting a rejection go unhandled. */
function track(p: Promise<void>) {
  const state = { done: false, error: undefined as unknown };
  p.then(() => state.done = true, (e) => {
    state.done = true;
    state.error = e;
  });
  return state;
}

Deno.test("GroupSync: one request runs one sync round", async () => {
  let calls = 0;
  const group = new GroupSync(() => {
    calls++;
    return Promise.resolve();
  });
  strictEqual(group.rounds, 0);
  await group.request();
  strictEqual(calls, 1);
  strictEqual(group.rounds, 1);
  await group.request();
  strictEqual(calls, 2, "a later request needs a round of its own");
});

Deno.test("GroupSync: requests made together share one round", async () => {
  const { sync, calls } = controlledSync();
  const group = new GroupSync(sync);
  const waiters = Array.from({ length: 10 }, () => track(group.request()));
  await settle();
  strictEqual(calls.length, 1, "one sync for all ten");
  deepStrictEqual(waiters.map((w) => w.done), Array(10).fill(false), "none done before it ends");
  calls[0].resolve();
  await settle();
  deepStrictEqual(waiters.map((w) => w.done), Array(10).fill(true));
  strictEqual(group.rounds, 1);
});

Deno.test("GroupSync: a request made while a sync runs waits for the next round", async () => {
  const { sync, calls } = controlledSync();
  const group = new GroupSync(sync);
  const first = track(group.request());
  await settle();
  strictEqual(calls.length, 1, "round 1 is running");
  // Made after round 1 began: its change may not be covered by it.
  const second = track(group.request());
  const third = track(group.request());
  await settle();
  strictEqual(calls.length, 1, "round 2 does not start while round 1 runs");
  calls[0].resolve();
  await settle();
  strictEqual(first.done, true);
  strictEqual(second.done, false, "round 1 ending does not release a later request");
  strictEqual(third.done, false);
  strictEqual(calls.length, 2, "round 2 started once round 1 ended");
  calls[1].resolve();
  await settle();
  strictEqual(second.done, true);
  strictEqual(third.done, true);
  strictEqual(group.rounds, 2, "the two later requests shared round 2");
});

Deno.test("GroupSync: a failed sync rejects its waiters; the next round still runs", async () => {
  const { sync, calls } = controlledSync();
  const group = new GroupSync(sync);
  const a = group.request();
  const b = group.request();
  await settle();
  const later = track(group.request()); // waits for round 2
  calls[0].reject(new Error("EIO"));
  await rejects(a, /EIO/);
  await rejects(b, /EIO/);
  await settle();
  strictEqual(later.done, false);
  strictEqual(calls.length, 2, "round 2 runs after the failure");
  calls[1].resolve();
  await settle();
  strictEqual(later.done, true);
  strictEqual(later.error, undefined, "round 2 succeeded");
  // And rounds go on after that.
  const next = group.request();
  await settle();
  calls[2].resolve();
  await next;
  strictEqual(group.rounds, 3);
});

Deno.test("GroupSync: a sync that throws synchronously rejects like a failed one", async () => {
  let fail = true;
  const group = new GroupSync(() => {
    if (fail) throw new Error("sync threw");
    return Promise.resolve();
  });
  await rejects(group.request(), /sync threw/);
  fail = false;
  await group.request();
  strictEqual(group.rounds, 2);
});
