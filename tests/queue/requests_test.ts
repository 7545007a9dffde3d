import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { newQueueId, UnknownMessageError } from "../../src/queue/record.ts";
import { names, withSpool } from "./_spool_helpers.ts";

Deno.test("requests stay until cleared; malformed request names are dropped", async () => {
  await withSpool(async (spool) => {
    const id = newQueueId();
    await spool.requests.ask("delete", id);
    await Deno.writeTextFile(join(spool.requestDir, "delete-../../x"), "").catch(() => {});
    await Deno.writeTextFile(join(spool.requestDir, "junk"), "");
    await Deno.writeTextFile(join(spool.requestDir, `explode-${id}`), "");
    deepStrictEqual(await spool.requests.pending(), [{ action: "delete", id }]);
    deepStrictEqual(await spool.requests.pending(), [{ action: "delete", id }], "until cleared");
    strictEqual(await spool.requests.waiting({ action: "delete", id }), true);
    await spool.requests.clear({ action: "delete", id });
    strictEqual(await spool.requests.waiting({ action: "delete", id }), false);
    deepStrictEqual(await spool.requests.pending(), []);
    deepStrictEqual(await names(spool.requestDir), []);
  });
});

Deno.test("requests: deletes come first; a release replaces a hold not yet applied", async () => {
  await withSpool(async (spool) => {
    const [a, b] = [newQueueId(), newQueueId()];
    await spool.requests.ask("requeue", a);
    await spool.requests.ask("hold", b);
    await spool.requests.ask("delete", a);
    await spool.requests.ask("release", b);
    deepStrictEqual(await spool.requests.pending(), [
      { action: "delete", id: a },
      { action: "release", id: b },
      { action: "requeue", id: a },
    ]);
    await spool.requests.ask("hold", b);
    deepStrictEqual((await spool.requests.pending()).filter((r) => r.id === b), [
      { action: "hold", id: b },
    ]);
  });
});

Deno.test("requests: an id that is not a queue id is refused before any file is written", async () => {
  await withSpool(async (spool) => {
    await rejects(spool.requests.ask("hold", "../etc"), UnknownMessageError);
    deepStrictEqual(await spool.requests.pending(), []);
  });
});
