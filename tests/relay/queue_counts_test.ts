import { deepStrictEqual } from "node:assert/strict";
import { newQueueId } from "../../src/queue/record.ts";
import { DueQueue } from "../../src/relay/due_queue.ts";
import { queueCounts } from "../../src/relay/queue_counts.ts";

Deno.test("queueCounts: due, deferred and in flight from the schedule; the oldest from the ids", () => {
  const now = 1_800_000_000_000;
  const schedule = new DueQueue();
  const old = newQueueId(now - 3_600_000);
  schedule.set(old, now + 60_000); // deferred
  schedule.set(newQueueId(now - 10_000), now - 1); // due
  const flying = newQueueId(now - 5_000);
  deepStrictEqual(queueCounts(schedule, [flying], [], false, now), {
    depth: { due: 2, deferred: 1, held: 0 },
    oldestAt: now - 3_600_000,
  });
  deepStrictEqual(queueCounts(schedule, [], [], true, now).depth, { due: 0, deferred: 0, held: 2 });
  deepStrictEqual(queueCounts(new DueQueue(), [], [], false, now), {
    depth: { due: 0, deferred: 0, held: 0 },
    oldestAt: undefined,
  });
});

Deno.test("queueCounts: messages on hold count as held, and as the oldest", () => {
  const now = 1_800_000_000_000;
  const schedule = new DueQueue();
  schedule.set(newQueueId(now - 1000), now - 1);
  deepStrictEqual(queueCounts(schedule, [], [newQueueId(now - 86_400_000)], false, now), {
    depth: { due: 1, deferred: 0, held: 1 },
    oldestAt: now - 86_400_000,
  });
});
