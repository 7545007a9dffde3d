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
import { newQueueId } from "../../src/queue/record.ts";
import { Spool, UnknownMessageError } from "../../src/queue/spool.ts";
import { sampleRecord } from "./_helpers.ts";

async function withSpool(fn: (spool: Spool, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "carrier-spool-test-" });
  try {
    await fn(await Spool.open(join(dir, "spool")), join(dir, "spool"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) out.push(entry.name);
  return out.sort();
}

/** Deterministic pseudo-random bytes (every byte value, CR, LF, NUL included). */
function bytesOf(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Writes and commits one message of the given bytes; returns its id. */
async function store(spool: Spool, bytes: Uint8Array, id = newQueueId()): Promise<string> {
  const writer = await spool.createMessage(id);
  await writer.write(bytes);
  await writer.commit(sampleRecord({ id }));
  return id;
}

Deno.test("Spool.open creates tmp/, queue/ and requests/ private to the owner", async () => {
  await withSpool(async (spool, dir) => {
    deepStrictEqual(await names(dir), ["queue", "requests", "tmp"]);
    strictEqual((await Deno.stat(spool.tmpDir)).mode! & 0o777, 0o700);
    strictEqual((await Deno.stat(spool.queueDir)).mode! & 0o777, 0o700);
    strictEqual((await Deno.stat(spool.requestDir)).mode! & 0o777, 0o700);
    const again = await Spool.open(dir); // opening an existing spool is fine
    strictEqual(again.queueDir, spool.queueDir);
  });
});

Deno.test("commit stores the exact bytes and the record as ID.msg + ID.json, mode 0600", async () => {
  await withSpool(async (spool) => {
    const parts: Uint8Array[] = [];
    let seed = 1;
    // Many small pieces, some pieces larger than the 64 KiB buffer, and pieces that
    // land exactly on and around the buffer boundary.
    for (let i = 0; i < 2_000; i++) parts.push(bytesOf(1 + (i * 7919) % 97, seed++));
    parts.push(bytesOf(70 * 1024, seed++));
    for (let i = 0; i < 50; i++) parts.push(bytesOf(1 + i, seed++));
    parts.push(bytesOf(64 * 1024, seed++));
    parts.push(bytesOf(64 * 1024 - 1, seed++));
    parts.push(new Uint8Array(0));
    parts.push(bytesOf(200 * 1024 + 3, seed++));
    parts.push(bytesOf(3, seed++));
    const expected = concatBytes(parts);

    const id = newQueueId();
    const writer = await spool.createMessage(id);
    strictEqual(writer.id, id);
    for (const p of parts) await writer.write(p);
    strictEqual(writer.size, expected.length);
    deepStrictEqual(await names(spool.queueDir), [], "nothing visible before commit");
    await writer.commit(sampleRecord({ id, size: 1 }));

    deepStrictEqual(await names(spool.queueDir), [`${id}.json`, `${id}.msg`]);
    deepStrictEqual(await names(spool.tmpDir), []);
    const stored = await Deno.readFile(spool.messagePath(id));
    strictEqual(stored.length, expected.length);
    deepStrictEqual(stored, expected);
    for (const path of [spool.messagePath(id), spool.recordPath(id)]) {
      strictEqual((await Deno.stat(path)).mode! & 0o777, 0o600, path);
    }
    const record = await spool.read(id);
    strictEqual(record.id, id);
    strictEqual(record.size, expected.length, "commit records the bytes actually written");
    deepStrictEqual(JSON.parse(await Deno.readTextFile(spool.recordPath(id))), record);
  });
});

Deno.test("write copies small pieces: reusing the caller's buffer does not change the message", async () => {
  await withSpool(async (spool) => {
    const id = newQueueId();
    const writer = await spool.createMessage(id);
    const buffer = new Uint8Array(10);
    for (let i = 0; i < 5; i++) {
      buffer.fill(0x41 + i);
      await writer.write(buffer);
    }
    await writer.commit(sampleRecord({ id }));
    strictEqual(
      new TextDecoder().decode(await Deno.readFile(spool.messagePath(id))),
      "AAAAAAAAAABBBBBBBBBBCCCCCCCCCCDDDDDDDDDDEEEEEEEEEE",
    );
  });
});

Deno.test("an empty message commits as an empty file", async () => {
  await withSpool(async (spool) => {
    const id = newQueueId();
    const writer = await spool.createMessage(id);
    await writer.commit(sampleRecord({ id }));
    strictEqual((await Deno.readFile(spool.messagePath(id))).length, 0);
    strictEqual((await spool.read(id)).size, 0);
  });
});

Deno.test("abort leaves nothing in tmp/ or queue/", async () => {
  await withSpool(async (spool) => {
    const id = newQueueId();
    const writer = await spool.createMessage(id);
    await writer.write(bytesOf(100, 1));
    await writer.write(bytesOf(100 * 1024, 2));
    await writer.write(bytesOf(10, 3));
    deepStrictEqual(await names(spool.tmpDir), [`${id}.msg`]);
    await writer.abort();
    deepStrictEqual(await names(spool.tmpDir), []);
    deepStrictEqual(await names(spool.queueDir), []);
    await writer.abort(); // twice is harmless
    await rejects(spool.read(id), UnknownMessageError);
  });
});

Deno.test("createMessage refuses an id that is already being written", async () => {
  await withSpool(async (spool) => {
    const id = newQueueId();
    const first = await spool.createMessage(id);
    await first.write(bytesOf(10, 1));
    await rejects(spool.createMessage(id), Deno.errors.AlreadyExists);
    await first.abort();
  });
});

Deno.test("createMessage refuses a malformed id (no path outside tmp/)", async () => {
  await withSpool(async (spool, dir) => {
    for (const id of ["../x", "", "a/b", "abc"]) {
      await rejects(spool.createMessage(id), /invalid queue id/, id);
    }
    deepStrictEqual(await names(dir), ["queue", "requests", "tmp"]);
    deepStrictEqual(await names(spool.tmpDir), []);
  });
});

Deno.test("recover removes tmp/ leftovers and .msg without .json, keeps complete pairs", async () => {
  await withSpool(async (spool) => {
    const kept = [await store(spool, bytesOf(500, 1)), await store(spool, bytesOf(70_000, 2))];
    // A crash mid-write: files in tmp/ (a message and a record, as publish makes them).
    const crashed = newQueueId();
    await Deno.writeFile(join(spool.tmpDir, `${crashed}.msg`), bytesOf(10, 3));
    await Deno.writeTextFile(join(spool.tmpDir, `${crashed}.json`), "{");
    await Deno.writeTextFile(join(spool.tmpDir, `${kept[0]}.json.${crypto.randomUUID()}`), "{");
    // A crash between the two renames of publish: the bytes without their record.
    const orphan = newQueueId();
    await Deno.writeFile(spool.messagePath(orphan), bytesOf(10, 4));
    // A record whose bytes are gone: undeliverable, removed (serve logs it as an error).
    const broken = newQueueId();
    await Deno.writeTextFile(spool.recordPath(broken), "{}");

    const result = await spool.recover();
    deepStrictEqual(result, { removedTmp: 3, removedOrphans: 1, removedBroken: 1 });
    deepStrictEqual(await names(spool.tmpDir), []);
    deepStrictEqual(
      await names(spool.queueDir),
      kept.flatMap((id) => [`${id}.json`, `${id}.msg`]).sort(),
    );
    deepStrictEqual(await Deno.readFile(spool.messagePath(kept[1])), bytesOf(70_000, 2));
    deepStrictEqual((await spool.list()).records.map((r) => r.id), [...kept].sort());

    deepStrictEqual(
      await spool.recover(),
      { removedTmp: 0, removedOrphans: 0, removedBroken: 0 },
      "idempotent",
    );
  });
});

Deno.test("update rewrites the record atomically (a new file renamed into place)", async () => {
  await withSpool(async (spool) => {
    const id = await store(spool, bytesOf(100, 1));
    const before = await Deno.stat(spool.recordPath(id));
    const record = await spool.read(id);
    const updated = {
      ...record,
      attempts: 1,
      lastError: "421 try later",
      recipients: [{ ...record.recipients[0], status: "delivered" as const, response: "250 ok" }],
    };
    await spool.update(updated);
    deepStrictEqual(await spool.read(id), updated);
    const after = await Deno.stat(spool.recordPath(id));
    notStrictEqual(after.ino, before.ino, "the record was replaced by rename, not rewritten");
    strictEqual(after.mode! & 0o777, 0o600);
    deepStrictEqual(await names(spool.tmpDir), []);
    deepStrictEqual(await Deno.readFile(spool.messagePath(id)), bytesOf(100, 1));
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
    deepStrictEqual(await names(dir), ["queue", "requests", "tmp", "x.json"]);
    deepStrictEqual(await names(spool.tmpDir), []);
  });
});

Deno.test("read rejects malformed and unknown ids with UnknownMessageError", async () => {
  await withSpool(async (spool, dir) => {
    // A valid-looking record just outside the queue directory must stay unreachable.
    await Deno.writeTextFile(join(dir, "x.json"), JSON.stringify(sampleRecord()));
    for (const id of ["../x", "..", "", "abc", "a/b", "0123456789abcdef", `${newQueueId()}.json`]) {
      await rejects(spool.read(id), (e: unknown) => {
        ok(e instanceof UnknownMessageError, `${id}: ${e}`);
        strictEqual(e.id, id);
        ok(e.message.includes(JSON.stringify(id)), e.message);
        return true;
      });
    }
    await rejects(spool.read(newQueueId()), UnknownMessageError);
    await rejects(spool.openMessage("../x"), UnknownMessageError);
    await rejects(spool.openMessage(newQueueId()), UnknownMessageError);
  });
});

Deno.test("openMessage streams the stored bytes", async () => {
  await withSpool(async (spool) => {
    const id = await store(spool, bytesOf(150_000, 9));
    const file = await spool.openMessage(id);
    const bytes = new Uint8Array(await new Response(file.readable).arrayBuffer());
    deepStrictEqual(bytes, bytesOf(150_000, 9));
  });
});

Deno.test("list sorts by id and reports a corrupt record as a problem without failing", async () => {
  await withSpool(async (spool) => {
    const ids = [
      newQueueId(1_700_000_000_500),
      newQueueId(1_700_000_000_000),
      newQueueId(1_700_000_001_000),
      newQueueId(1_600_000_000_000),
    ];
    for (const [i, id] of ids.entries()) await store(spool, bytesOf(10, i + 1), id);
    const corrupt = newQueueId(1_650_000_000_000);
    await Deno.writeFile(spool.messagePath(corrupt), bytesOf(10, 7));
    await Deno.writeTextFile(spool.recordPath(corrupt), '{"version": 1, "id": ');
    const invalid = newQueueId(1_650_000_000_001);
    await Deno.writeFile(spool.messagePath(invalid), bytesOf(10, 8));
    await Deno.writeTextFile(spool.recordPath(invalid), JSON.stringify({ version: 1 }));
    // Files that are not queue records are ignored.
    await Deno.writeTextFile(join(spool.queueDir, "notes.txt"), "hello");
    await Deno.writeTextFile(join(spool.queueDir, "bad-name.json"), "{}");

    const { records, problems } = await spool.list();
    deepStrictEqual(records.map((r) => r.id), [...ids].sort());
    strictEqual(problems.length, 2, problems.join("\n"));
    const corruptProblem = problems.find((p) => p.includes(corrupt));
    ok(corruptProblem, `the problem names the broken record: ${problems.join(" | ")}`);
    match(corruptProblem, /JSON/);
    const invalidProblem = problems.find((p) => p.includes(invalid));
    ok(invalidProblem, problems.join(" | "));
    match(invalidProblem, /"id"/);
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

Deno.test("remove deletes both files; unknown and malformed ids throw UnknownMessageError", async () => {
  await withSpool(async (spool) => {
    const a = await store(spool, bytesOf(10, 1));
    const b = await store(spool, bytesOf(10, 2));
    await spool.remove(a);
    deepStrictEqual(await names(spool.queueDir), [`${b}.json`, `${b}.msg`]);
    await rejects(spool.read(a), UnknownMessageError);
    await rejects(spool.remove(a), UnknownMessageError);
    await rejects(spool.remove("../x"), UnknownMessageError);
    await rejects(spool.remove(newQueueId()), UnknownMessageError);
    deepStrictEqual((await spool.list()).records.map((r) => r.id), [b]);
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

Deno.test("delete requests stay until cleared; malformed request names are dropped", async () => {
  await withSpool(async (spool) => {
    const id = newQueueId();
    await spool.requestDelete(id);
    await Deno.writeTextFile(join(spool.requestDir, "delete-../../x"), "").catch(() => {});
    await Deno.writeTextFile(join(spool.requestDir, "junk"), "");
    deepStrictEqual(await spool.deleteRequests(), [id]);
    deepStrictEqual(await spool.deleteRequests(), [id], "still there until cleared");
    await spool.clearDeleteRequest(id);
    deepStrictEqual(await spool.deleteRequests(), []);
    deepStrictEqual(await names(spool.requestDir), []);
  });
});
