import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { buildConfig } from "../../src/config/build.ts";
import { ConfigError } from "../../src/config/error.ts";
import { shortDuration } from "../../src/queue/queue_command.ts";
import { newQueueId, type QueueRecord } from "../../src/queue/record.ts";
import { FLUSH_REQUEST_FILE } from "../../src/queue/requests.ts";
import type { Spool } from "../../src/queue/spool.ts";
import { run, store, withQueue } from "./_queue_cli.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

Deno.test("shortDuration: seconds, minutes, hours with zero-padded minutes, days with hours", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [-5 * SECOND, "0s"],
    [499, "0s"],
    [500, "1s"],
    [59 * SECOND, "59s"],
    [59.5 * SECOND, "1m"],
    [60 * SECOND, "1m"],
    [61 * SECOND, "1m"],
    [59 * MINUTE + 59 * SECOND, "59m"],
    [HOUR, "1h"],
    [HOUR + 5 * MINUTE, "1h05m"],
    [HOUR + 5 * MINUTE + 59 * SECOND, "1h05m"],
    [2 * HOUR + 30 * MINUTE, "2h30m"],
    [23 * HOUR + 59 * MINUTE, "23h59m"],
    [DAY, "1d"],
    [DAY + 59 * MINUTE, "1d"],
    [2 * DAY + 3 * HOUR, "2d3h"],
    [4 * DAY + 23 * HOUR + 59 * MINUTE, "4d23h"],
    [400 * DAY, "400d"],
    [NaN, "?"],
    [Infinity, "?"],
  ];
  for (const [ms, text] of cases) strictEqual(shortDuration(ms), text, `${ms} ms`);
});

Deno.test("shortDuration output is always a number and unit pairs", () => {
  for (let ms = 0; ms < 10 * DAY; ms += 7 * MINUTE + 13 * SECOND) {
    match(shortDuration(ms), /^(\d+s|\d+m|\d+h(\d\dm)?|\d+d(\d{1,2}h)?)$/, `${ms}`);
  }
});

/** Every file in the queue directory and its bytes. */
async function snapshot(spool: Spool): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(spool.queueDir)) {
    files.set(e.name, await Deno.readFile(join(spool.queueDir, e.name)));
  }
  return files;
}

Deno.test("queue commands refuse a directory that is not a spool", async () => {
  const dir = await Deno.makeTempDir({ prefix: "carrier-queue-cmd-test-" });
  try {
    const config = await buildConfig(
      { spool: join(dir, "nope") },
      () => undefined,
      () => "localhost",
    );
    await rejects(run(config, ["list"]), (e: unknown) => {
      ok(e instanceof ConfigError);
      ok(e.message.includes(join(dir, "nope")), e.message);
      return true;
    });
    await rejects(Deno.stat(join(dir, "nope")), Deno.errors.NotFound, "nothing was created");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("queue: unknown subcommand and wrong argument counts are ConfigErrors", async () => {
  await withQueue(async (_spool, config) => {
    await rejects(run(config, ["frobnicate"]), ConfigError);
    await rejects(run(config, ["list", "extra"]), /usage: carrier queue list/);
    await rejects(run(config, ["show"]), /usage: carrier queue show ID/);
    await rejects(run(config, ["delete"]), ConfigError);
  });
});

Deno.test("queue list: empty, then messages oldest first with ages", async () => {
  await withQueue(async (spool, config) => {
    const empty = await run(config, []);
    deepStrictEqual(empty, { out: ["queue is empty"], err: [], code: 0 });

    const now = Date.now();
    const older = await store(spool, "a", {
      id: newQueueId(now - 2 * HOUR),
      receivedAt: new Date(now - 2 * HOUR - 5 * MINUTE).toISOString(),
      nextAttemptAt: new Date(now + 10 * MINUTE).toISOString(),
      attempts: 3,
      lastError: "421 busy",
    });
    const newer = await store(spool, "bb", { id: newQueueId(now), kind: "bounce", sender: "" });
    const { out, err, code } = await run(config, ["list"]);
    strictEqual(code, 0);
    deepStrictEqual(err, []);
    const text = out.join("\n");
    ok(text.indexOf(older) < text.indexOf(newer), text);
    match(text, new RegExp(`${older}  age 2h0[45]m  1 bytes .* attempts 3  next in (9|10)m`));
    match(text, /last error: 421 busy/);
    match(text, new RegExp(`${newer}  bounce  age `));
    match(text, /pending +<bob@example\.org>/);
    strictEqual(out.at(-1), "2 messages");
  });
});

Deno.test("queue list --json reports corrupt records and exits 1", async () => {
  await withQueue(async (spool, config) => {
    const id = await store(spool, "hello");
    const bad = newQueueId();
    await Deno.writeTextFile(spool.messagePath(bad), "CARRIER1 { not json\nhello\r\n");
    const { out, code } = await run(config, ["list"], true);
    strictEqual(code, 1);
    const parsed = JSON.parse(out.join("\n"));
    deepStrictEqual(parsed.messages.map((m: QueueRecord) => m.id), [id]);
    strictEqual(parsed.problems.length, 1);
    ok(parsed.problems[0].includes(bad), parsed.problems[0]);
  });
});

Deno.test("queue show prints the record and the message bytes", async () => {
  await withQueue(async (spool, config) => {
    const id = await store(spool, "Subject: hi\r\n\r\nbody\r\n", { user: "app" });
    const json = await run(config, ["show", id], true);
    strictEqual(json.code, 0);
    const parsed = JSON.parse(json.out.join("\n"));
    strictEqual(parsed.id, id);
    strictEqual(parsed.message, "Subject: hi\r\n\r\nbody\r\n");
    const text = await run(config, ["show", id]);
    strictEqual(text.code, 0);
    match(text.out.join("\n"), new RegExp(`id: +${id}\n`));
    match(text.out.join("\n"), /user: +app/);
    strictEqual(text.out.at(-1), "Subject: hi\r\n\r\nbody\r\n");
    const unknown = await run(config, ["show", "../x"]);
    strictEqual(unknown.code, 1);
    match(unknown.err[0], /no message with id/);
  });
});

Deno.test("queue delete removes nothing unless every id exists", async () => {
  await withQueue(async (spool, config) => {
    const a = await store(spool, "a");
    const b = await store(spool, "b");
    const missing = newQueueId();
    const refused = await run(config, ["delete", a, missing]);
    strictEqual(refused.code, 1);
    ok(refused.err[0].includes(missing), refused.err[0]);
    deepStrictEqual((await spool.list()).records.map((r) => r.id), [a, b].sort());

    const done = await run(config, ["delete", a], true);
    strictEqual(done.code, 0);
    deepStrictEqual(JSON.parse(done.out[0]), { action: "delete", deleted: [a], requested: [] });
    deepStrictEqual((await spool.list()).records.map((r) => r.id), [b]);
  });
});

Deno.test("queue flush leaves a request file for the server and counts pending messages", async () => {
  await withQueue(async (spool, config) => {
    await store(spool, "a");
    await store(spool, "b", {
      recipients: [{ address: "x@example.org", status: "delivered" }],
    });
    const before = await snapshot(spool);
    const { out, code } = await run(config, ["flush"], true);
    strictEqual(code, 0);
    deepStrictEqual(JSON.parse(out[0]), { flushRequested: 1 });
    const stamp = await Deno.readTextFile(join(spool.dir, FLUSH_REQUEST_FILE));
    ok(!Number.isNaN(Date.parse(stamp.trim())), stamp);
    deepStrictEqual(await snapshot(spool), before, "records are not rewritten");
  });
});
