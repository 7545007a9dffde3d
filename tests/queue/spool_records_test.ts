/**
 * The spool's records: updates beside the message, older spools, races with removal,
 * reads, lists, removal, the lock and delete requests.
 */
import { concatBytes } from "../../src/bytes.ts";
import {
  deepStrictEqual,
  match,
  notStrictEqual,
  ok,
  rejects,
  strictEqual,
} from "node:assert/strict";
import { join } from "node:path";
import { encodeHeader, newQueueId } from "../../src/queue/record.ts";
import { messageStream } from "../../src/queue/message_reader.ts";
import { UnknownMessageError } from "../../src/queue/spool.ts";
import { storedBytes } from "../support/spool.ts";
import { sampleRecord } from "./_helpers.ts";
import { bytesOf, FIELDS, names, store, withSpool } from "./_spool_helpers.ts";

Deno.test("update writes the record beside the message, atomically; it then wins over the header", async () => {
  await withSpool(async (spool) => {
    const id = await store(spool, bytesOf(100, 1));
    const file = await Deno.readFile(spool.messagePath(id));
    const record = await spool.read(id);
    const updated = {
      ...record,
      attempts: 1,
      lastError: "421 try later",
      recipients: [{ ...record.recipients[0], status: "delivered" as const, response: "250 ok" }],
    };
    await spool.update(updated);
    deepStrictEqual(await names(spool.queueDir), [`${id}.json`, `${id}.msg`]);
    deepStrictEqual(await spool.read(id), updated, "the record beside it wins over the header");
    deepStrictEqual(JSON.parse(await Deno.readTextFile(spool.recordPath(id))), updated);
    deepStrictEqual(
      await Deno.readFile(spool.messagePath(id)),
      file,
      "the message file is untouched",
    );
    strictEqual((await Deno.stat(spool.recordPath(id))).mode! & 0o777, 0o600);

    const before = await Deno.stat(spool.recordPath(id));
    const again = { ...updated, attempts: 2 };
    await spool.update(again);
    deepStrictEqual(await spool.read(id), again);
    notStrictEqual(
      (await Deno.stat(spool.recordPath(id))).ino,
      before.ino,
      "the record was replaced by rename, not rewritten",
    );
    deepStrictEqual(await names(spool.tmpDir), []);
    deepStrictEqual(await storedBytes(spool, id), bytesOf(100, 1));
  });
});

Deno.test("an older spool (raw ID.msg without the header, and its ID.json) still reads, updates and removes", async () => {
  await withSpool(async (spool) => {
    const id = newQueueId();
    const bytes = concatBytes([
      new TextEncoder().encode("Received: from x\r\n\r\n"),
      bytesOf(90_000, 6),
    ]);
    await Deno.writeFile(spool.messagePath(id), bytes);
    const legacy = sampleRecord({ id, size: bytes.length });
    await Deno.writeTextFile(spool.recordPath(id), JSON.stringify(legacy, null, 2) + "\n");

    deepStrictEqual(await spool.read(id), legacy);
    deepStrictEqual(await storedBytes(spool, id), bytes);
    deepStrictEqual((await spool.list()).records, [legacy]);
    const updated = { ...legacy, attempts: 1 };
    await spool.update(updated);
    deepStrictEqual(await spool.read(id), updated);
    deepStrictEqual(await storedBytes(spool, id), bytes);
    deepStrictEqual(await spool.recover(), { removedTmp: 0, removedBroken: 0, removedStale: 0 });
    await spool.remove(id);
    deepStrictEqual(await names(spool.queueDir), []);
  });
});

Deno.test("update of a removed message throws UnknownMessageError and does not resurrect it", async () => {
  await withSpool(async (spool) => {
    const id = await store(spool, bytesOf(100, 1));
    const record = await spool.read(id);
    await spool.remove(id);
    await rejects(spool.update({ ...record, attempts: 1 }), UnknownMessageError);
    deepStrictEqual(await names(spool.queueDir), []);
    deepStrictEqual(await names(spool.tmpDir), []);
    await rejects(spool.read(id), UnknownMessageError);
  });
});

Deno.test("update racing a remove (removed after the existence check) does not resurrect it", async () => {
  await withSpool(async (spool) => {
    const id = await store(spool, bytesOf(100, 1));
    const record = await spool.read(id);
    // Run the whole remove() right before update's rename, i.e. after its check.
    const rename = Deno.rename;
    let raced = false;
    Deno.rename = async (from: string | URL, to: string | URL) => {
      if (!raced && String(to) === spool.recordPath(id)) {
        raced = true;
        await spool.remove(id);
      }
      return await rename(from, to);
    };
    try {
      await rejects(spool.update({ ...record, attempts: 1 }), UnknownMessageError);
    } finally {
      Deno.rename = rename;
    }
    ok(raced, "the race was staged");
    deepStrictEqual(await names(spool.queueDir), []);
    deepStrictEqual(await names(spool.tmpDir), []);
    deepStrictEqual((await spool.list()).records, []);
  });
});

Deno.test("update rejects a malformed id without touching files outside the spool", async () => {
  await withSpool(async (spool, dir) => {
    const outside = join(dir, "x.json");
    await Deno.writeTextFile(outside, "precious\n");
    await rejects(spool.update(sampleRecord({ id: "../x" })), UnknownMessageError);
    strictEqual(await Deno.readTextFile(outside), "precious\n");
    deepStrictEqual(await names(dir), ["free", "queue", "requests", "tmp", "x.json"]);
    deepStrictEqual(await names(spool.tmpDir), []);
  });
});

Deno.test("read rejects malformed and unknown ids with UnknownMessageError", async () => {
  await withSpool(async (spool, dir) => {
    // A valid-looking message just outside the queue directory must stay unreachable.
    await Deno.writeFile(join(dir, "x.msg"), encodeHeader(sampleRecord()));
    for (const id of ["../x", "..", "", "abc", "a/b", "0123456789abcdef", `${newQueueId()}.msg`]) {
      await rejects(spool.read(id), (e: unknown) => {
        ok(e instanceof UnknownMessageError, `${id}: ${e}`);
        strictEqual(e.id, id);
        ok(e.message.includes(JSON.stringify(id)), e.message);
        return true;
      });
    }
    await rejects(spool.read(newQueueId()), UnknownMessageError);
    await rejects(spool.open("../x"), UnknownMessageError);
    await rejects(spool.openMessage("../x"), UnknownMessageError);
    await rejects(spool.openMessage(newQueueId()), UnknownMessageError);
  });
});

/** For the tests of reading: every file they open must be closed when they end. */
const CLOSES_FILES = { sanitizeResources: true, sanitizeOps: true };

Deno.test(
  "openMessage streams the stored bytes without the header, small and large",
  CLOSES_FILES,
  async () => {
    await withSpool(async (spool) => {
      for (const [length, seed] of [[0, 1], [1, 2], [3000, 3], [150_000, 9], [1_000_003, 10]]) {
        const id = await store(spool, bytesOf(length, seed));
        const stream = await spool.openMessage(id);
        const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
        deepStrictEqual(bytes, bytesOf(length, seed), `${length} bytes`);
      }
    });
  },
);

Deno.test(
  "open: the record, the first bytes read with it, the file after them; messageStream joins them",
  CLOSES_FILES,
  async () => {
    await withSpool(async (spool) => {
      const bytes = bytesOf(300_000, 11);
      const id = await store(spool, bytes);
      const opened = await spool.open(id);
      try {
        strictEqual(opened.record.id, id);
        strictEqual(opened.record.size, bytes.length);
        ok(opened.head.length > 0 && opened.head.length < bytes.length, `${opened.head.length}`);
        deepStrictEqual(opened.head, bytes.subarray(0, opened.head.length));
      } catch (e) {
        opened.file.close();
        throw e;
      }
      const all = new Uint8Array(await new Response(messageStream(opened)).arrayBuffer());
      deepStrictEqual(all, bytes);

      // A small message comes whole with its header.
      const small = await store(spool, bytesOf(500, 12));
      const whole = await spool.open(small);
      whole.file.close();
      deepStrictEqual(whole.head, bytesOf(500, 12));
      strictEqual(whole.record.size, 500);

      // A stream cancelled half-way closes the file (the resource sanitizer checks it).
      const reader = (await spool.openMessage(id)).getReader();
      await reader.read();
      await reader.cancel();
    });
  },
);

Deno.test(
  "open with the record already known skips the header and returns that record",
  CLOSES_FILES,
  async () => {
    await withSpool(async (spool) => {
      const bytes = bytesOf(2000, 13);
      const writer = await spool.createMessage({ ...FIELDS });
      await writer.write(bytes);
      await writer.commit();
      const known = { ...writer.record, size: writer.size };
      const opened = await spool.open(writer.id, known);
      strictEqual(opened.record, known, "the caller's record, not a parsed copy");
      const back = new Uint8Array(await new Response(messageStream(opened)).arrayBuffer());
      deepStrictEqual(back, bytes);
      deepStrictEqual(await spool.read(writer.id), JSON.parse(JSON.stringify(known)));
    });
  },
);

Deno.test("list sorts by id and reports unreadable messages as problems without failing", async () => {
  await withSpool(async (spool) => {
    const ids = [
      newQueueId(1_700_000_000_500),
      newQueueId(1_700_000_000_000),
      newQueueId(1_700_000_001_000),
      newQueueId(1_600_000_000_000),
    ];
    for (const [i, id] of ids.entries()) await store(spool, bytesOf(10, i + 1), id);
    // A record beside a message that is corrupt JSON, and one that is not a record.
    const corrupt = await store(spool, bytesOf(10, 7), newQueueId(1_650_000_000_000));
    await Deno.writeTextFile(spool.recordPath(corrupt), '{"version": 1, "id": ');
    const invalid = await store(spool, bytesOf(10, 8), newQueueId(1_650_000_000_001));
    await Deno.writeTextFile(spool.recordPath(invalid), JSON.stringify({ version: 1 }));
    // A message file whose header is broken.
    const badHeader = newQueueId(1_650_000_000_002);
    await Deno.writeTextFile(spool.messagePath(badHeader), "CARRIER1 {oops\nbody\r\n");
    // Raw bytes without a header and without a record (nothing says where they go).
    const noRecord = newQueueId(1_650_000_000_003);
    await Deno.writeFile(spool.messagePath(noRecord), bytesOf(10, 9));
    // Files that are not queue entries are ignored.
    await Deno.writeTextFile(join(spool.queueDir, "notes.txt"), "hello");
    await Deno.writeTextFile(join(spool.queueDir, "bad-name.json"), "{}");
    await Deno.writeTextFile(join(spool.queueDir, "bad-name.msg"), "x");

    const { records, problems } = await spool.list();
    deepStrictEqual(records.map((r) => r.id), [...ids].sort());
    strictEqual(problems.length, 4, problems.join("\n"));
    const about = (id: string) => {
      const p = problems.find((p) => p.includes(id));
      ok(p, `a problem names ${id}: ${problems.join(" | ")}`);
      return p;
    };
    match(about(corrupt), /JSON/);
    match(about(invalid), /"id"/);
    match(about(badHeader), /header/);
    match(about(noRecord), /no record/);
    await rejects(spool.read(corrupt), (e: unknown) => {
      ok(e instanceof Error && !(e instanceof UnknownMessageError));
      ok(e.message.includes(spool.recordPath(corrupt)), e.message);
      return true;
    });
  });
});

Deno.test("list of an empty queue", async () => {
  await withSpool(async (spool) => {
    deepStrictEqual(await spool.list(), { records: [], problems: [] });
  });
});

Deno.test("remove recycles the message file into free/ and drops its record; unknown ids throw", async () => {
  await withSpool(async (spool) => {
    const a = await store(spool, bytesOf(10, 1));
    const b = await store(spool, bytesOf(10, 2));
    await spool.update({ ...(await spool.read(a)), attempts: 1 });
    const inode = (await Deno.stat(spool.messagePath(a))).ino;
    await spool.remove(a);
    deepStrictEqual(await names(spool.queueDir), [`${b}.msg`]);
    const spare = await names(spool.freeDir);
    strictEqual(spare.length, 1);
    strictEqual((await Deno.stat(join(spool.freeDir, spare[0]))).ino, inode, "kept for reuse");
    await rejects(spool.read(a), UnknownMessageError);
    await rejects(spool.remove(a), UnknownMessageError);
    await rejects(spool.remove("../x"), UnknownMessageError);
    await rejects(spool.remove(newQueueId()), UnknownMessageError);
    deepStrictEqual((await spool.list()).records.map((r) => r.id), [b]);

    // `noRecord`: the caller knows there is none; a large message's file is emptied.
    const big = await store(spool, bytesOf(300 * 1024, 3));
    await spool.remove(big, { noRecord: true });
    deepStrictEqual(await names(spool.queueDir), [`${b}.msg`]);
    const sizes = [];
    for (const name of await names(spool.freeDir)) {
      sizes.push((await Deno.stat(join(spool.freeDir, name))).size);
    }
    ok(sizes.includes(0), `the large file was emptied: ${sizes}`);

    // The next message reuses a spare file rather than creating one.
    const before = new Set(await names(spool.freeDir));
    const c = await store(spool, bytesOf(10, 4));
    strictEqual((await names(spool.freeDir)).length, before.size - 1);
    deepStrictEqual(await storedBytes(spool, c), bytesOf(10, 4));
  });
});

Deno.test("tryLock: one holder at a time; released when closed", async () => {
  await withSpool(async (spool) => {
    const first = await spool.tryLock();
    ok(first, "first lock taken");
    strictEqual(await spool.tryLock(), undefined, "second refused at once");
    first.close();
    const again = await spool.tryLock();
    ok(again, "free again after close");
    again.close();
  });
});

Deno.test("a read racing a removal sees UnknownMessageError, never a broken record", async () => {
  await withSpool(async (spool) => {
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push(await store(spool, bytesOf(200, i)));
    const reads = ids.map((id) =>
      spool.read(id).then(
        (r) => strictEqual(r.id, id),
        (e) => ok(e instanceof UnknownMessageError, String(e)),
      )
    );
    await Promise.all([...reads, ...ids.map((id) => spool.remove(id))]);
  });
});
