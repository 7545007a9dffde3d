import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import fc from "fast-check";
import { DueQueue } from "../../src/relay/due_queue.ts";

/** Takes everything due by `now`, in order (bounded). */
function drain(q: DueQueue, now: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < 100_000; i++) {
    const id = q.takeDue(now);
    if (id === undefined) return out;
    out.push(id);
  }
  throw new Error("drain did not end");
}

Deno.test("DueQueue: empty", () => {
  const q = new DueQueue();
  strictEqual(q.size, 0);
  strictEqual(q.nextAt(), Infinity);
  strictEqual(q.takeDue(Number.MAX_SAFE_INTEGER), undefined);
  strictEqual(q.delete("A"), false);
  deepStrictEqual([...q.ids()], []);
});

Deno.test("DueQueue: earliest first; equal times in the order they were set", () => {
  const q = new DueQueue();
  q.set("A", 30);
  q.set("B", 10);
  q.set("C", 20);
  q.set("D", 10);
  q.set("E", 10);
  strictEqual(q.size, 5);
  strictEqual(q.nextAt(), 10);
  deepStrictEqual(drain(q, 100), ["B", "D", "E", "C", "A"]);
  strictEqual(q.size, 0);
});

Deno.test("DueQueue: takeDue takes nothing before its time", () => {
  const q = new DueQueue();
  q.set("A", 50);
  q.set("B", 60);
  strictEqual(q.takeDue(49), undefined);
  strictEqual(q.size, 2, "nothing taken");
  strictEqual(q.takeDue(50), "A", "due exactly at its time");
  strictEqual(q.takeDue(59), undefined);
  strictEqual(q.nextAt(), 60);
  strictEqual(q.takeDue(1000), "B");
});

Deno.test("DueQueue: set reschedules (later or earlier); the old slot is stale", () => {
  const q = new DueQueue();
  q.set("A", 10);
  q.set("B", 20);
  q.set("A", 30);
  strictEqual(q.size, 2);
  strictEqual(q.dueAt("A"), 30);
  strictEqual(q.nextAt(), 20, "A's old time no longer counts");
  deepStrictEqual(drain(q, 25), ["B"]);
  q.set("C", 40);
  q.set("C", 5);
  deepStrictEqual(drain(q, 100), ["C", "A"], "each once, at its latest time");
  strictEqual(q.takeDue(100), undefined);
});

Deno.test("DueQueue: delete unschedules; has, dueAt and ids follow", () => {
  const q = new DueQueue();
  q.set("A", 10);
  q.set("B", 20);
  ok(q.has("A"));
  deepStrictEqual([...q.ids()].sort(), ["A", "B"]);
  strictEqual(q.delete("A"), true);
  strictEqual(q.delete("A"), false);
  strictEqual(q.has("A"), false);
  strictEqual(q.dueAt("A"), undefined);
  strictEqual(q.size, 1);
  strictEqual(q.nextAt(), 20);
  deepStrictEqual(drain(q, 100), ["B"]);
});

Deno.test("DueQueue: a taken message is in flight until set again", () => {
  const q = new DueQueue();
  q.set("A", 10);
  strictEqual(q.takeDue(10), "A");
  strictEqual(q.has("A"), false);
  strictEqual(q.size, 0);
  strictEqual(q.takeDue(1000), undefined, "taken once only");
  q.set("A", 500); // a retry
  strictEqual(q.takeDue(499), undefined);
  strictEqual(q.takeDue(500), "A");
});

Deno.test("DueQueue: many reschedules of few ids (stale slots rebuilt away) keep the order", () => {
  const q = new DueQueue();
  for (let round = 0; round < 200; round++) {
    for (const [i, id] of ["A", "B", "C"].entries()) q.set(id, 1000 - round * 3 - i);
  }
  strictEqual(q.size, 3);
  deepStrictEqual(drain(q, 10_000), ["C", "B", "A"]);
  // And with many live ids and deletes mixed in.
  for (let i = 0; i < 500; i++) q.set(`M${i}`, i % 7);
  for (let i = 0; i < 500; i += 2) q.delete(`M${i}`);
  for (let i = 1; i < 500; i += 4) q.set(`M${i}`, 100);
  const order = drain(q, 10_000);
  strictEqual(order.length, 250);
  strictEqual(new Set(order).size, 250);
  const at = (id: string) => {
    const i = Number(id.slice(1));
    return i % 4 === 1 ? 100 : i % 7;
  };
  for (let k = 1; k < order.length; k++) ok(at(order[k - 1]) <= at(order[k]), order.join(" "));
});

type Op =
  | { kind: "set"; id: string; at: number }
  | { kind: "delete"; id: string }
  | { kind: "take"; now: number };

Deno.test("DueQueue behaves like a sorted list of (time, order set) per id", () => {
  const id = fc.constantFrom("A", "B", "C", "D", "E", "F", "G", "H");
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant("set" as const), id, at: fc.nat(50) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), id }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("take" as const), now: fc.nat(60) }) },
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
      const q = new DueQueue();
      const model = new Map<string, { at: number; seq: number }>();
      let seq = 0;
      for (const o of ops) {
        if (o.kind === "set") {
          q.set(o.id, o.at);
          model.set(o.id, { at: o.at, seq: seq++ });
        } else if (o.kind === "delete") {
          strictEqual(q.delete(o.id), model.delete(o.id));
        } else {
          const first = [...model.entries()].sort((a, b) =>
            a[1].at - b[1].at || a[1].seq - b[1].seq
          )[0];
          const expected = first && first[1].at <= o.now ? first[0] : undefined;
          strictEqual(q.takeDue(o.now), expected);
          if (expected !== undefined) model.delete(expected);
        }
        strictEqual(q.size, model.size);
        const next = Math.min(...[...model.values()].map((v) => v.at));
        strictEqual(q.nextAt(), next);
        for (const [k, v] of model) strictEqual(q.dueAt(k), v.at);
      }
    }),
    { numRuns: 300 },
  );
});
