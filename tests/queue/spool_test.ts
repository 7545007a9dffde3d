/**
 * The spool's message files: the CARRIER1 format, writing, aborting, reusing free files,
 * headers, and recovery after a crash.
 */
import { concatBytes } from "../../src/bytes.ts";
import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { encodeHeader, newQueueId, validateRecord } from "../../src/queue/record.ts";
import { Spool, UnknownMessageError } from "../../src/queue/spool.ts";
import { readStored, storedBytes } from "../support/spool.ts";
import { bytesOf, FIELDS, names, splitFile, store, withSpool } from "./_spool_helpers.ts";

Deno.test("Spool.open creates tmp/, queue/, free/ and requests/ private to the owner", async () => {
  await withSpool(async (spool, dir) => {
    deepStrictEqual(await names(dir), ["free", "queue", "requests", "tmp"]);
    for (const d of [spool.tmpDir, spool.queueDir, spool.requestDir, spool.freeDir]) {
      strictEqual((await Deno.stat(d)).mode! & 0o777, 0o700, d);
    }
    const again = await Spool.open(dir); // opening an existing spool is fine
    strictEqual(again.queueDir, spool.queueDir);
  });
});

Deno.test("commit stores one file, ID.msg: the CARRIER1 header line, then the exact bytes, mode 0600", async () => {
  await withSpool(async (spool) => {
    const parts: Uint8Array[] = [];
    let seed = 1;
    // Many small pieces, pieces larger than the write buffer, and pieces that land on and
    // around the 64 KiB and 128 KiB boundaries.
    for (let i = 0; i < 2_000; i++) parts.push(bytesOf(1 + (i * 7919) % 97, seed++));
    parts.push(bytesOf(70 * 1024, seed++));
    for (let i = 0; i < 50; i++) parts.push(bytesOf(1 + i, seed++));
    parts.push(bytesOf(64 * 1024, seed++));
    parts.push(bytesOf(64 * 1024 - 1, seed++));
    parts.push(new Uint8Array(0));
    parts.push(bytesOf(128 * 1024, seed++));
    parts.push(bytesOf(128 * 1024 + 1, seed++));
    parts.push(bytesOf(200 * 1024 + 3, seed++));
    parts.push(bytesOf(3, seed++));
    const expected = concatBytes(parts);

    const id = newQueueId();
    const writer = await spool.createMessage({ ...FIELDS, id });
    strictEqual(writer.id, id);
    strictEqual(writer.record.id, id);
    for (const p of parts) {
      writer.write(p);
    }
    strictEqual(writer.size, expected.length);
    deepStrictEqual(await names(spool.queueDir), [], "nothing visible before commit");
    await writer.commit();

    deepStrictEqual(await names(spool.queueDir), [`${id}.msg`], "one file, no record beside it");
    deepStrictEqual(await names(spool.tmpDir), []);
    strictEqual((await Deno.stat(spool.messagePath(id))).mode! & 0o777, 0o600);

    // On disk: `CARRIER1 {record JSON}\n`, then the bytes.
    const file = await Deno.readFile(spool.messagePath(id));
    const { header, rest } = splitFile(file);
    ok(header.startsWith("CARRIER1 {"), header.slice(0, 20));
    const inHeader = validateRecord(JSON.parse(header.slice("CARRIER1 ".length)), "header");
    deepStrictEqual(encodeHeader(inHeader), file.subarray(0, header.length + 1));
    strictEqual(rest.length, expected.length);
    deepStrictEqual(rest, expected);

    const record = await spool.read(id);
    strictEqual(record.id, id);
    strictEqual(record.size, expected.length, "the size is the file's length after the header");
    deepStrictEqual(record, { ...inHeader, size: expected.length });
    deepStrictEqual(record.recipients, [
      { address: "bob@example.org", status: "pending" },
      { address: "carol@example.org", status: "pending" },
    ]);
    strictEqual(record.attempts, 0);
    strictEqual(record.nextAttemptAt, record.receivedAt, "due at once");
    deepStrictEqual(await storedBytes(spool, id), expected);
  });
});

Deno.test("createMessage makes a fresh id when none is given; ids never repeat", async () => {
  await withSpool(async (spool) => {
    const writers = [];
    for (let i = 0; i < 200; i++) writers.push(await spool.createMessage({ ...FIELDS }));
    const ids = new Set(writers.map((w) => w.id));
    strictEqual(ids.size, 200);
    for (const w of writers) await w.abort();
    deepStrictEqual(await names(spool.queueDir), []);
  });
});

Deno.test("write copies small pieces: reusing the caller's buffer does not change the message", async () => {
  await withSpool(async (spool) => {
    const writer = await spool.createMessage({ ...FIELDS });
    const buffer = new Uint8Array(10);
    for (let i = 0; i < 5; i++) {
      buffer.fill(0x41 + i);
      writer.write(buffer);
    }
    await writer.commit();
    strictEqual(
      new TextDecoder().decode(await storedBytes(spool, writer.id)),
      "AAAAAAAAAABBBBBBBBBBCCCCCCCCCCDDDDDDDDDDEEEEEEEEEE",
    );
  });
});

Deno.test("an empty message commits as the header alone", async () => {
  await withSpool(async (spool) => {
    const writer = await spool.createMessage({ ...FIELDS });
    await writer.commit();
    const file = await Deno.readFile(spool.messagePath(writer.id));
    strictEqual(splitFile(file).rest.length, 0);
    strictEqual((await spool.read(writer.id)).size, 0);
    strictEqual((await storedBytes(spool, writer.id)).length, 0);
  });
});

Deno.test("abort leaves nothing in queue/; the file goes back to free/ and the next message reuses it", async () => {
  await withSpool(async (spool) => {
    const writer = await spool.createMessage({ ...FIELDS });
    await writer.write(bytesOf(100, 1));
    await writer.write(bytesOf(200 * 1024, 2));
    await writer.write(bytesOf(10, 3));
    const spare = await names(spool.freeDir);
    strictEqual(spare.length, 1, "the message is written in free/");
    const inode = (await Deno.stat(join(spool.freeDir, spare[0]))).ino;
    await writer.abort();
    deepStrictEqual(await names(spool.queueDir), []);
    deepStrictEqual(await names(spool.tmpDir), []);
    deepStrictEqual(await names(spool.freeDir), spare, "given back as a spare file");
    await writer.abort(); // twice is harmless: the spare file stays
    deepStrictEqual(await names(spool.freeDir), spare, "a second abort removes nothing");
    await rejects(spool.read(writer.id), UnknownMessageError);

    // The next message is written over it, and nothing of the aborted one survives.
    const id = await store(spool, bytesOf(5, 4));
    strictEqual((await Deno.stat(spool.messagePath(id))).ino, inode);
    deepStrictEqual(await storedBytes(spool, id), bytesOf(5, 4));
    deepStrictEqual(await names(spool.freeDir), []);
  });
});

Deno.test("createMessage refuses a malformed id (no path outside the spool)", async () => {
  await withSpool(async (spool, dir) => {
    for (const id of ["../x", "", "a/b", "abc"]) {
      await rejects(spool.createMessage({ ...FIELDS, id }), /invalid queue id/, id);
    }
    deepStrictEqual(await names(dir), ["free", "queue", "requests", "tmp"]);
    deepStrictEqual(await names(spool.freeDir), []);
    deepStrictEqual(await names(spool.queueDir), []);
  });
});

Deno.test("a record with many long addresses: a header longer than one read still reads", async () => {
  await withSpool(async (spool) => {
    const recipients = Array.from({ length: 400 }, (_, i) => `${"r".repeat(200)}${i}@example.org`);
    const bytes = bytesOf(50_000, 5);
    const writer = await spool.createMessage({ ...FIELDS, recipients });
    await writer.write(bytes);
    await writer.commit();
    ok(encodeHeader(writer.record).length > 64 * 1024, "the header spans several reads");
    const { record, bytes: back } = await readStored(spool, writer.id);
    deepStrictEqual(record.recipients.map((r) => r.address), recipients);
    strictEqual(record.size, bytes.length);
    deepStrictEqual(back, bytes);
  });
});

Deno.test("a broken header is an error naming the file, not an unknown message", async () => {
  await withSpool(async (spool) => {
    const truncated = newQueueId();
    await Deno.writeTextFile(spool.messagePath(truncated), 'CARRIER1 {"version": 1, "id"');
    const invalid = newQueueId();
    await Deno.writeTextFile(spool.messagePath(invalid), "CARRIER1 {not json\r\nbody\r\n");
    for (const [id, pattern] of [[truncated, /truncated record header/], [invalid, /header/]]) {
      await rejects(spool.read(id as string), (e: unknown) => {
        ok(e instanceof Error && !(e instanceof UnknownMessageError), String(e));
        ok(e.message.includes(spool.messagePath(id as string)), e.message);
        match(e.message, pattern as RegExp);
        return true;
      });
    }
  });
});

Deno.test("recover removes tmp/ leftovers and records whose message is gone; a message alone is normal", async () => {
  await withSpool(async (spool) => {
    const kept = [await store(spool, bytesOf(500, 1)), await store(spool, bytesOf(70_000, 2))];
    // One of them was updated by delivery: its record is beside it.
    await spool.update({ ...(await spool.read(kept[1])), attempts: 1 });
    // A crash in the middle of a record update: files in tmp/.
    await Deno.writeTextFile(join(spool.tmpDir, `${kept[0]}.json.${crypto.randomUUID()}`), "{");
    await Deno.writeTextFile(join(spool.tmpDir, `${kept[1]}.json.${crypto.randomUUID()}`), "{");
    // A record whose message is gone: undeliverable, removed (serve logs it as an error).
    const broken = newQueueId();
    await Deno.writeTextFile(spool.recordPath(broken), "{}");

    const result = await spool.recover();
    deepStrictEqual(result, { removedTmp: 2, removedBroken: 1, removedStale: 0 });
    deepStrictEqual(await names(spool.tmpDir), []);
    deepStrictEqual(
      await names(spool.queueDir),
      [`${kept[0]}.msg`, `${kept[1]}.json`, `${kept[1]}.msg`].sort(),
    );
    deepStrictEqual(await storedBytes(spool, kept[1]), bytesOf(70_000, 2));
    deepStrictEqual((await spool.list()).records.map((r) => r.id), [...kept].sort());
    strictEqual((await spool.read(kept[1])).attempts, 1);

    deepStrictEqual(
      await spool.recover(),
      { removedTmp: 0, removedBroken: 0, removedStale: 0 },
      "idempotent",
    );
  });
});

Deno.test("recover removes message files no record names: an older Carrier's uncommitted bytes, an entry whose file holds another message", async () => {
  await withSpool(async (spool) => {
    const kept = await store(spool, bytesOf(300, 1));
    // An older Carrier's message file whose record never landed (never acknowledged).
    const orphan = newQueueId();
    await Deno.writeFile(spool.messagePath(orphan), new TextEncoder().encode("Received: x\r\n"));
    // A crash brought back an entry whose file was meanwhile reused for another message.
    const other = await store(spool, bytesOf(200, 2));
    const resurrected = newQueueId();
    await Deno.link(spool.messagePath(other), spool.messagePath(resurrected));
    await rejects(spool.read(resurrected), UnknownMessageError);

    deepStrictEqual(await spool.recover(), { removedTmp: 0, removedBroken: 0, removedStale: 2 });
    deepStrictEqual(await names(spool.queueDir), [`${kept}.msg`, `${other}.msg`].sort());
    deepStrictEqual(await storedBytes(spool, other), bytesOf(200, 2));
  });
});
