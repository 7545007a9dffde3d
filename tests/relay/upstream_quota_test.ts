import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { Logger } from "../../src/ops/log.ts";
import { ConnectionSlots } from "../../src/relay/connection_slots.ts";
import type { UpstreamSession } from "../../src/relay/upstream.ts";
import { QUOTA_STATE_FILE, QuotaBook, UpstreamQuota } from "../../src/relay/upstream_quota.ts";

const none = { messagesPerMinute: 0, dailyMessages: 0, dailyRecipients: 0 };
const DAY = 24 * 3600_000;

Deno.test("UpstreamQuota: messages a minute in a sliding window", () => {
  const q = new UpstreamQuota("gmail", { ...none, messagesPerMinute: 2 });
  const t = 1_000_000;
  strictEqual(q.check(t), undefined);
  q.count(1, t);
  q.count(1, t + 10_000);
  const wait = q.check(t + 20_000);
  deepStrictEqual(wait, {
    until: t + 60_000,
    reason: "upstream gmail rate of 2 messages a minute reached",
  });
  strictEqual(q.check(t + 60_000), undefined); // the first send left the window
  q.count(1, t + 60_000);
  strictEqual(q.check(t + 60_001)?.until, t + 70_000);
});

Deno.test("UpstreamQuota: daily messages and recipients; room for a partial message", () => {
  const q = new UpstreamQuota("g", { ...none, dailyMessages: 3, dailyRecipients: 10 });
  const t = 5 * DAY;
  q.count(4, t);
  q.count(4, t + 1000);
  strictEqual(q.recipientRoom(t + 2000), 2);
  strictEqual(q.check(t + 2000), undefined);
  q.count(2, t + 2000);
  deepStrictEqual(q.check(t + 3000), {
    until: t + DAY,
    reason: "upstream g daily quota of 3 messages reached",
  });
  strictEqual(q.recipientRoom(t + DAY), 4); // the first message's 4 recipients are out
  strictEqual(q.check(t + DAY), undefined);
  const r = new UpstreamQuota("r", { ...none, dailyRecipients: 5 });
  r.count(3, t);
  r.count(2, t + 500);
  deepStrictEqual(r.check(t + 600), {
    until: t + DAY,
    reason: "upstream r daily quota of 5 recipients reached",
  });
});

Deno.test("QuotaBook: the day's counts survive a restart, kept by upstream name", async () => {
  const dir = await Deno.makeTempDir({ prefix: "carrier-quota-test-" });
  const log = new Logger("text", () => {});
  try {
    const upstreams = [
      { name: "a", quota: { ...none, dailyMessages: 2 } },
      { name: "b", quota: none },
    ];
    const book = new QuotaBook(dir, log, upstreams);
    await book.load();
    book.of("a").count(1, Date.now());
    book.of("a").count(3, Date.now());
    book.of("b").count(1, Date.now()); // no quota: not counted, not saved
    book.changed();
    await book.close();
    const saved = JSON.parse(await Deno.readTextFile(join(dir, QUOTA_STATE_FILE)));
    deepStrictEqual(Object.keys(saved.upstreams), ["a"]);
    strictEqual(saved.upstreams.a.length, 2);
    // A new server, with the list in another order: "a" is still over its quota.
    const again = new QuotaBook(dir, log, [upstreams[1]!, upstreams[0]!]);
    await again.load();
    ok(again.of("a").check(Date.now())?.reason.includes("daily quota of 2 messages"));
    strictEqual(again.of("b").check(Date.now()), undefined);
    // A reload that raises the quota keeps the counts, the same object for attempts under way.
    const before = again.of("a");
    again.resize([{ name: "a", quota: { ...none, dailyMessages: 3 } }]);
    strictEqual(again.of("a"), before);
    strictEqual(again.of("a").check(Date.now()), undefined);
    again.of("a").count(1, Date.now());
    ok(again.of("a").check(Date.now()));
    await again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("QuotaBook: a malformed saved entry is skipped; a reload keeps the minute's window", async () => {
  const dir = await Deno.makeTempDir({ prefix: "carrier-quota-test-" });
  const log = new Logger("text", () => {});
  try {
    const now = Date.now();
    await Deno.writeTextFile(
      join(dir, QUOTA_STATE_FILE),
      JSON.stringify({ upstreams: { a: [1, 2, [now - 1000, 1], "x", [now, "y"]] } }),
    );
    const book = new QuotaBook(dir, log, [{ name: "a", quota: { ...none, dailyMessages: 1 } }]);
    await book.load();
    ok(book.of("a").check(now), "the one good entry counts");
    book.resize([{ name: "a", quota: { ...none, messagesPerMinute: 1 } }]);
    book.of("a").count(1, now);
    book.resize([{ name: "a", quota: { ...none, messagesPerMinute: 1 } }]); // a SIGHUP
    ok(book.of("a").check(now + 1000), "the minute's send still counts after a reload");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("UpstreamQuota: a reservation counts at once; a failed send gives it back", () => {
  const q = new UpstreamQuota("g", { ...none, dailyMessages: 2, dailyRecipients: 10 });
  const t = 1_000_000;
  const a = q.reserve(4, t);
  const b = q.reserve(4, t);
  ok(q.check(t), "two sends under way fill a quota of two");
  b.settle(0); // that one failed
  strictEqual(q.check(t), undefined);
  a.settle(3); // three of four recipients taken
  strictEqual(q.recipientRoom(t), 7);
  a.settle(0); // settles once
  strictEqual(q.recipientRoom(t), 7);
});

Deno.test("ConnectionSlots: at most N open; closing one lets a waiter in", async () => {
  const slots = new ConnectionSlots(1);
  let opened = 0;
  const fake = () => {
    opened++;
    return Promise.resolve({ close: () => Promise.resolve() } as unknown as UpstreamSession);
  };
  const first = await slots.connect(fake);
  let second: UpstreamSession | undefined;
  const waiting = slots.connect(fake).then((s) => second = s);
  await new Promise((r) => setTimeout(r, 20));
  strictEqual(opened, 1);
  strictEqual(second, undefined);
  await first.close();
  await first.close(); // a second close frees nothing more
  await waiting;
  strictEqual(opened, 2);
  strictEqual(slots.open, 1);
  // A failed connect frees its slot.
  await second!.close();
  await slots.connect(() => Promise.reject(new Error("refused"))).catch(() => {});
  strictEqual(slots.open, 0);
});
