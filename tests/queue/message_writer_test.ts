/**
 * The writer on its own, with a publisher that records what the spool would be asked
 * to do: the file's content, the in-memory copy of a small message, and what commit
 * and abort do when publishing fails.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { concatBytes } from "../../src/bytes.ts";
import { MessageWriter, type Publisher } from "../../src/queue/message_writer.ts";
import { encodeHeader } from "../../src/queue/record.ts";
import { sampleRecord } from "./_helpers.ts";

class RecordingPublisher implements Publisher {
  published: [string, string][] = [];
  discarded: string[] = [];
  fail: Error | undefined;

  publish(id: string, path: string): Promise<void> {
    this.published.push([id, path]);
    return this.fail ? Promise.reject(this.fail) : Promise.resolve();
  }

  discard(path: string): void {
    this.discarded.push(path);
  }
}

async function withWriter(
  fn: (writer: MessageWriter, publisher: RecordingPublisher, path: string) => Promise<void>,
  record = sampleRecord(),
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "carrier-writer-test-" });
  const path = join(dir, "F1");
  const file = await Deno.open(path, { write: true, create: true, mode: 0o600 });
  const publisher = new RecordingPublisher();
  try {
    await fn(new MessageWriter(publisher, record, file, path), publisher, path);
  } finally {
    try {
      file.close();
    } catch { /* closed by the writer */ }
    await Deno.remove(dir, { recursive: true });
  }
}

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

Deno.test("MessageWriter: a small message is the header and its bytes; a copy stays in memory", async () => {
  await withWriter(async (writer, publisher, path) => {
    const record = writer.record;
    writer.write(bytes(10, 0x41));
    const reused = bytes(5, 0x42);
    writer.write(reused);
    reused.fill(0x5a); // the writer copied it
    strictEqual(writer.size, 15);
    strictEqual(writer.bytes, undefined, "nothing before commit");
    await writer.commit();
    deepStrictEqual(publisher.published, [[record.id, path]]);
    deepStrictEqual(publisher.discarded, []);
    const expected = concatBytes([bytes(10, 0x41), bytes(5, 0x42)]);
    deepStrictEqual(writer.bytes, expected);
    deepStrictEqual(await Deno.readFile(path), concatBytes([encodeHeader(record), expected]));
  });
});

Deno.test("MessageWriter: a message larger than the write buffer is written through; no copy kept", async () => {
  await withWriter(async (writer, _publisher, path) => {
    const parts = [
      bytes(100_000, 0x61),
      bytes(100_000, 0x62),
      bytes(300_000, 0x63),
      bytes(7, 0x64),
    ];
    for (const p of parts) writer.write(p);
    await writer.commit();
    strictEqual(writer.bytes, undefined);
    strictEqual(writer.size, 500_007);
    deepStrictEqual(
      await Deno.readFile(path),
      concatBytes([encodeHeader(writer.record), ...parts]),
    );
  });
});

Deno.test("MessageWriter: a header longer than the write buffer", async () => {
  const recipients = Array.from({ length: 800 }, (_, i) => ({
    address: `${"x".repeat(200)}${i}@example.org`,
    status: "pending" as const,
  }));
  await withWriter(async (writer, _publisher, path) => {
    ok(encodeHeader(writer.record).length > 128 * 1024);
    writer.write(bytes(1000, 0x41));
    await writer.commit();
    deepStrictEqual(
      await Deno.readFile(path),
      concatBytes([encodeHeader(writer.record), bytes(1000, 0x41)]),
    );
  }, sampleRecord({ recipients }));
});

Deno.test("MessageWriter: abort before commit hands the file back to the spool", async () => {
  await withWriter(async (writer, publisher, path) => {
    writer.write(bytes(200_000, 0x41));
    await writer.abort();
    deepStrictEqual(publisher.discarded, [path]);
    deepStrictEqual(publisher.published, []);
    await writer.abort();
    deepStrictEqual(publisher.discarded, [path], "once");
  });
});

Deno.test("MessageWriter: a commit whose publish fails rejects; abort then removes the file", async () => {
  await withWriter(async (writer, publisher, path) => {
    publisher.fail = new Error("EIO on rename");
    writer.write(bytes(10, 0x41));
    await rejects(writer.commit(), /EIO on rename/);
    await writer.abort();
    deepStrictEqual(publisher.discarded, [], "not given back: it may be half-published");
    await rejects(Deno.stat(path), Deno.errors.NotFound);
  });
});
