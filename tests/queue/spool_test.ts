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
import {
  encodeHeader,
  newQueueId,
  type NewRecordFields,
  validateRecord,
} from "../../src/queue/record.ts";
import { messageStream } from "../../src/queue/message_reader.ts";
import { Spool, UnknownMessageError } from "../../src/queue/spool.ts";
import { readStored, storedBytes } from "../support/spool.ts";
import { sampleRecord, storeMessage } from "./_helpers.ts";

async function withSpool(fn: (spool: Spool, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "carrier-spool-test-" });
  const spool = await Spool.open(join(dir, "spool"));
  try {
    await fn(spool, join(dir, "spool"));
  } finally {
    spool.close(); // the queue directory handle kept for its fsyncs
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

/** The envelope fields of a new message (what the connection passes to createMessage). */
const FIELDS: Omit<NewRecordFields, "id"> = {
  kind: "message",
  sender: "alice@example.com",
  recipients: ["bob@example.org", "carol@example.org"],
  smtputf8: false,
  body: "8BITMIME",
  client: { address: "127.0.0.1", port: 40000, tls: false },
  helo: "client.example.com",
  protocol: "ESMTP",
};

/** Writes and commits one message of the given bytes; returns its id. */
async function store(spool: Spool, bytes: Uint8Array, id = newQueueId()): Promise<string> {
  return (await storeMessage(spool, bytes, { id })).id;
}

/** The header line and the rest of a stored file. */
function splitFile(file: Uint8Array): { header: string; rest: Uint8Array } {
  const lf = file.indexOf(0x0a);
  ok(lf > 0, "the file has a header line");
  return { header: new TextDecoder().decode(file.subarray(0, lf)), rest: file.subarray(lf + 1) };
}

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
    await writer.abort(); // twice is harmless
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

Deno.test("delete requests stay until cleared; malformed request names are dropped", async () => {
  await withSpool(async (spool) => {
    const id = newQueueId();
    await spool.requests.askDelete(id);
    await Deno.writeTextFile(join(spool.requestDir, "delete-../../x"), "").catch(() => {});
    await Deno.writeTextFile(join(spool.requestDir, "junk"), "");
    deepStrictEqual(await spool.requests.deletes(), [id]);
    deepStrictEqual(await spool.requests.deletes(), [id], "still there until cleared");
    await spool.requests.clearDelete(id);
    deepStrictEqual(await spool.requests.deletes(), []);
    deepStrictEqual(await names(spool.requestDir), []);
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
