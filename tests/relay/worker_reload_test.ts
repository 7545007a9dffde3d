/**
 * The worker under a reload and under concurrency: an attempt keeps the upstream list it
 * started with (no recipient sent twice, none through another route's upstream), and lanes
 * at once never overshoot a quota. In-memory upstreams, a real spool.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { Logger } from "../../src/ops/log.ts";
import { Metrics } from "../../src/ops/metrics.ts";
import { Spool } from "../../src/queue/spool.ts";
import { Router } from "../../src/relay/routes.ts";
import { DeliveryWorker, type WorkerOptions } from "../../src/relay/worker.ts";
import { fakeTarget, greylisting } from "./_fake_upstream.ts";
import { enqueue, readRecord, sleep, waitRemoved, waitUntil } from "./_worker_helpers.ts";

const retry = { minMs: 300, maxMs: 60_000, lifetimeMs: 86_400_000 };
const common = { hostname: "carrier.test", concurrency: 1, messagesPerConnection: 50, retry };

async function withSpool(fn: (spool: Spool, logs: string[], log: Logger) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "carrier-worker-reload-" });
  const spool = await Spool.open(join(dir, "spool"));
  const logs: string[] = [];
  try {
    await fn(spool, logs, new Logger("text", (l) => logs.push(l)));
  } finally {
    spool.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function worker(spool: Spool, log: Logger, opts: Partial<WorkerOptions>): DeliveryWorker {
  return new DeliveryWorker({
    spool,
    log,
    metrics: new Metrics(),
    upstreams: [],
    pollMs: 50,
    ...common,
    ...opts,
  });
}

Deno.test("reload during a transaction: a shorter list does not send the message again", async () => {
  await withSpool(async (spool, logs, log) => {
    const sends: string[][] = [];
    const w = worker(spool, log, {
      upstreams: [fakeTarget("a", sends, 10), fakeTarget("b", sends, 500)],
      router: new Router({ defaultVia: [1], routes: [] }),
    });
    await w.start();
    try {
      const r = await enqueue(spool, { recipients: ["bob@example.net"] });
      w.notify(r);
      await sleep(150); // the transaction on b is under way
      w.reconfigure({
        ...common,
        upstreams: [fakeTarget("b", sends, 10)],
        router: new Router({ defaultVia: [0], routes: [] }),
      });
      await waitRemoved(spool, r.id);
      deepStrictEqual(sends, [["b", "bob@example.net"]]);
      strictEqual(logs.filter((l) => l.includes("unexpectedly")).length, 0, logs.join("\n"));
    } finally {
      await w.stop(1000);
    }
  });
});

Deno.test("reload during an attempt: each route's recipients still go through its own upstream", async () => {
  await withSpool(async (spool, _logs, log) => {
    const sends: string[][] = [];
    const route = (a: number, b: number) => [
      { from: [], to: ["a.org"], via: [a] },
      { from: [], to: ["b.org"], via: [b] },
    ];
    const w = worker(spool, log, {
      upstreams: [fakeTarget("x", sends, 500), fakeTarget("y", sends, 10)],
      router: new Router({ defaultVia: [0], routes: route(0, 1) }),
    });
    await w.start();
    try {
      const r = await enqueue(spool, { recipients: ["r1@a.org", "r2@b.org"] });
      w.notify(r);
      await sleep(200); // r1's transaction on x is under way
      w.reconfigure({
        ...common,
        upstreams: [
          fakeTarget("z", sends, 10),
          fakeTarget("x", sends, 10),
          fakeTarget("y", sends, 10),
        ],
        router: new Router({ defaultVia: [0], routes: route(1, 2) }),
      });
      await waitRemoved(spool, r.id);
      deepStrictEqual(sends, [["x", "r1@a.org"], ["y", "r2@b.org"]]);
    } finally {
      await w.stop(1000);
    }
  });
});

Deno.test("quota: six lanes at once send no more than the daily quota allows", async () => {
  await withSpool(async (spool, _logs, log) => {
    const sends: string[][] = [];
    const quota = { messagesPerMinute: 0, dailyMessages: 2, dailyRecipients: 0 };
    const w = worker(spool, log, {
      upstreams: [fakeTarget("gmail", sends, 400, quota)],
      concurrency: 6,
      retry: { minMs: 60_000, maxMs: 60_000, lifetimeMs: 86_400_000 },
    });
    const ids = [];
    for (let i = 0; i < 8; i++) {
      ids.push(await enqueue(spool, { recipients: [`r${i}@example.net`] }));
    }
    await w.start();
    try {
      await waitUntil("every message tried", async () => {
        const records = (await spool.list()).records;
        return records.length === 6 && records.every((r) => r.lastError) || undefined;
      });
      strictEqual(sends.length, 2, JSON.stringify(sends));
    } finally {
      await w.stop(1000);
    }
  });
});

Deno.test("quota beside a delivery: what one route delivered is recorded, never sent again", async () => {
  await withSpool(async (spool, _logs, log) => {
    // B's daily quota of 1 was used a second ago (a previous run's state).
    await Deno.writeTextFile(
      join(spool.dir, "quota-state.json"),
      JSON.stringify({ upstreams: { B: [[Date.now() - 1000, 1]] } }),
    );
    const sends: string[][] = [];
    const w = worker(spool, log, {
      upstreams: [
        greylisting("A", sends),
        fakeTarget("B", sends, 0, { messagesPerMinute: 0, dailyMessages: 1, dailyRecipients: 0 }),
      ],
      router: new Router({
        defaultVia: [0],
        routes: [{ from: [], to: ["a.org"], via: [0] }, { from: [], to: ["b.org"], via: [1] }],
      }),
      // Backoff longer than the quota: the retry comes when B's quota frees.
      retry: { minMs: 48 * 3600_000, maxMs: 48 * 3600_000, lifetimeMs: 5 * 86_400_000 },
    });
    await w.start();
    try {
      const r = await enqueue(spool, { recipients: ["x@a.org", "y@b.org"] });
      w.notify(r);
      await waitUntil(
        "attempt 1",
        async () => (await readRecord(spool, r.id))?.attempts || undefined,
      );
      await waitUntil("x delivered on the flush", async () => {
        await spool.requests.askFlush(); // `carrier queue flush`
        await sleep(300);
        return sends.length > 0 || undefined;
      });
      await spool.requests.askFlush(); // and once more: x is not sent again
      await sleep(600);
      deepStrictEqual(sends.filter((s) => s[0] === "A"), [["A", "x@a.org"]]);
      const after = await readRecord(spool, r.id);
      strictEqual(after?.recipients.find((x) => x.address === "x@a.org")?.status, "delivered");
    } finally {
      await w.stop(1000);
    }
  });
});

Deno.test("stop: a lane waiting for a connection slot leaves its message due at the next start", async () => {
  await withSpool(async (spool, _logs, log) => {
    const sends: string[][] = [];
    const inner = fakeTarget("gmail", sends, 1500);
    // Counts the connections open, as the slots do.
    const slots = { open: 0 };
    const target = {
      ...inner,
      maxConnections: 1,
      connect: async () => {
        const session = await inner.connect();
        slots.open++;
        const close = session.close.bind(session);
        let closed = false;
        session.close = () => {
          if (!closed) slots.open--;
          closed = true;
          return close();
        };
        return session;
      },
    };
    const w = worker(spool, log, {
      upstreams: [target],
      concurrency: 2,
      messagesPerConnection: 1,
      retry: { minMs: 3600_000, maxMs: 3600_000, lifetimeMs: 5 * 86_400_000 },
    });
    const a = await enqueue(spool, { recipients: ["a@example.net"] });
    const b = await enqueue(spool, { recipients: ["b@example.net"] });
    await w.start();
    await waitUntil("one sending, one waiting", () => slots.open === 1 || undefined);
    await sleep(1200); // the second lane started (slow start) and waits for the slot
    await w.stop(3000);
    const left = (await Promise.all([a.id, b.id].map((id) => readRecord(spool, id))))
      .filter((r) => r !== undefined);
    for (const r of left) {
      strictEqual(r!.attempts, 0, "a stop is not a failed attempt");
      ok(Date.parse(r!.nextAttemptAt) <= Date.now(), "due again at the next start");
    }
    strictEqual(slots.open, 0);
  });
});
