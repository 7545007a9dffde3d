/**
 * In-process tests of `Connection`: a real Session and a real spool in a temp dir, driven
 * over an in-memory Transport whose every write is recorded, so reply grouping (RFC 2920)
 * and the order of "on disk" and "250" can be checked exactly.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { concatBytes } from "../../src/bytes.ts";
import { Logger } from "../../src/ops/log.ts";
import { Metrics } from "../../src/ops/metrics.ts";
import type { QueueRecord } from "../../src/queue/record.ts";
import { Spool } from "../../src/queue/spool.ts";
import { storedBytes } from "../support/spool.ts";
import { Connection, type ConnectionDeps } from "../../src/server/connection.ts";
import type { Transport } from "../../src/server/transport.ts";
import { OPEN_POLICY } from "../../src/smtp/policy.ts";
import { Session, type SessionOptions } from "../../src/smtp/session.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** An in-memory transport: the test pushes input chunks; writes are recorded one by one. */
class MemoryTransport implements Transport {
  readonly writes: Uint8Array[] = [];
  closed = false;
  /** Called synchronously on every write, before it is recorded; may throw to fail it. */
  onWrite: ((bytes: Uint8Array) => void) | undefined;
  #input: (Uint8Array | null)[] = [];
  #reader: ((chunk: Uint8Array | null) => void) | undefined;

  /** Queues one chunk of input (a string is encoded as UTF-8). */
  push(chunk: string | Uint8Array): void {
    this.#deliver(typeof chunk === "string" ? enc.encode(chunk) : chunk);
  }

  /** End of input (the client closed its side). */
  end(): void {
    this.#deliver(null);
  }

  #deliver(chunk: Uint8Array | null): void {
    const reader = this.#reader;
    if (reader) {
      this.#reader = undefined;
      reader(chunk);
    } else {
      this.#input.push(chunk);
    }
  }

  read(): Promise<Uint8Array | null> {
    if (this.#input.length > 0) return Promise.resolve(this.#input.shift()!);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => this.#reader = resolve);
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Error("write on a closed transport"));
    try {
      this.onWrite?.(bytes);
    } catch (e) {
      return Promise.reject(e);
    }
    this.writes.push(bytes.slice());
    return Promise.resolve();
  }

  close(): void {
    this.closed = true;
    this.#deliver(null);
  }

  startTls(): Promise<Transport> {
    return Promise.reject(new Error("no TLS in memory"));
  }

  /** The text of every write, in order. */
  get texts(): string[] {
    return this.writes.map((w) => dec.decode(w));
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until `check` is true; bounded. */
async function waitUntil(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await check()) return;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

interface Harness {
  t: MemoryTransport;
  spool: Spool;
  logs: string[];
  metrics: Metrics;
  queued: QueueRecord[];
  /** The bytes handed over with each queued record (small messages only). */
  queuedBytes: (Uint8Array | undefined)[];
  shutdown: AbortController;
  /** Resolves when `Connection.run()` has returned. */
  done: Promise<void>;
  /** Waits until there are `count` writes and returns the text of the last one. */
  write(count: number): Promise<string>;
}

async function withConnection(
  opts: { deps?: Partial<ConnectionDeps>; session?: Partial<SessionOptions> },
  fn: (h: Harness) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "carrier-conn-test-" });
  const spool = await Spool.open(join(dir, "spool"));
  const t = new MemoryTransport();
  const logs: string[] = [];
  const metrics = new Metrics();
  const queued: QueueRecord[] = [];
  const queuedBytes: (Uint8Array | undefined)[] = [];
  const shutdown = new AbortController();
  const session = new Session({
    hostname: "mx.test",
    maxMessageSize: 1_000_000,
    maxRecipients: 100,
    maxErrors: 10,
    starttls: false,
    auth: false,
    authOnPlaintext: false,
    policy: OPEN_POLICY,
    ...opts.session,
  }, { address: "127.0.0.1", port: 40000, tls: false });
  const connection = new Connection("C1", t, session, {
    spool,
    log: new Logger("text", (line) => logs.push(line)),
    metrics,
    hostname: "mx.test",
    commandTimeoutMs: 10_000,
    dataTimeoutMs: 10_000,
    dataTotalTimeoutMs: 60_000,
    onQueued: (r, bytes) => {
      queued.push(r);
      queuedBytes.push(bytes);
    },
    shutdown: shutdown.signal,
    ...opts.deps,
  });
  const done = connection.run();
  try {
    await fn({
      t,
      spool,
      logs,
      metrics,
      queued,
      queuedBytes,
      shutdown,
      done,
      async write(count) {
        await waitUntil(`write #${count}`, () => t.writes.length >= count);
        return t.texts[count - 1];
      },
    });
  } finally {
    t.close();
    await done;
    spool.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Greeting, EHLO and one envelope up to the 354; returns the number of writes so far. */
async function openTransaction(h: Harness, rcpts = ["bob@example.net"]): Promise<number> {
  await h.write(1);
  h.t.push("EHLO client.test\r\n");
  await h.write(2);
  h.t.push(
    "MAIL FROM:<alice@example.com> BODY=8BITMIME\r\n" +
      rcpts.map((r) => `RCPT TO:<${r}>\r\n`).join("") + "DATA\r\n",
  );
  const reply = await h.write(3);
  match(reply, /354 End data/);
  return 3;
}

Deno.test("connection: greeting, then a lone command is answered at once", async () => {
  await withConnection({}, async (h) => {
    strictEqual(await h.write(1), "220 mx.test ESMTP Carrier\r\n");
    h.t.push("EHLO client.test\r\n");
    const ehlo = await h.write(2);
    ok(ehlo.startsWith("250-mx.test\r\n"), ehlo);
    ok(ehlo.endsWith("250-DSN\r\n250 CHUNKING\r\n"), ehlo);
    h.t.push("NOOP\r\n");
    strictEqual(await h.write(3), "250 2.0.0 Ok\r\n");
    h.t.push("QUIT\r\n");
    strictEqual(await h.write(4), "221 2.0.0 Bye\r\n");
    await h.done;
    ok(h.t.closed);
    strictEqual(h.t.writes.length, 4);
  });
});

Deno.test("connection: replies to a pipelined batch go out in one write (RFC 2920)", async () => {
  await withConnection({}, async (h) => {
    await h.write(1);
    h.t.push("EHLO client.test\r\n");
    await h.write(2);
    h.t.push(
      "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\n" +
        "RCPT TO:<carol@example.net>\r\nVRFY x\r\nRSET\r\n",
    );
    strictEqual(
      await h.write(3),
      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n" +
        "252 2.5.0 Cannot VRFY user, but will accept message\r\n250 2.0.0 Ok\r\n",
    );
    // A group ending in DATA: the 354 goes out with the envelope replies, once.
    h.t.push("MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n");
    strictEqual(
      await h.write(4),
      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
    );
    // The message, its end and the next commands in one chunk: the 250 for the message goes
    // out as soon as it is stored, the replies to the commands after it together.
    h.t.push("Subject: x\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n");
    match(await h.write(5), /^250 2\.0\.0 Ok: queued as [0-9A-Z]+\r\n$/);
    strictEqual(await h.write(6), "250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n");
    await h.done;
    strictEqual(h.t.writes.length, 6);
    strictEqual(h.queued.length, 1);
  });
});

Deno.test("connection: DATA stores the message; 250 only once it and its record are on disk", async () => {
  await withConnection({}, async (h) => {
    let onDiskAt250: boolean | undefined;
    h.t.onWrite = (bytes) => {
      const m = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]+)/.exec(dec.decode(bytes));
      if (!m) return;
      try {
        // One file in queue/: the record in its header line, then the message.
        const file = Deno.readFileSync(h.spool.messagePath(m[1]));
        const header = dec.decode(file.subarray(0, file.indexOf(0x0a)));
        onDiskAt250 = header.startsWith(`CARRIER1 {`) && header.includes(`"id":"${m[1]}"`);
      } catch {
        onDiskAt250 = false;
      }
    };
    const n = await openTransaction(h, ["bob@example.net", "carol@example.net"]);
    const body = concatBytes([
      enc.encode("From: alice@example.com\r\nSubject: stored\r\n\r\n"),
      new Uint8Array([0xc3, 0xa9, 0xff, 0x0d, 0x0a]),
      enc.encode("..dot-stuffed line\r\nbare\nLF stays\r\n"),
    ]);
    h.t.push(body.subarray(0, 20)); // in two chunks, split mid-line
    h.t.push(concatBytes([body.subarray(20), enc.encode(".\r\n")]));
    const reply = await h.write(n + 1);
    const id = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]+)\r\n$/.exec(reply)?.[1];
    ok(id, reply);
    strictEqual(onDiskAt250, true, "record and message on disk when the 250 was written");

    const stored = await storedBytes(h.spool, id);
    const text = dec.decode(stored);
    match(text, /^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.test \(Carrier\)/);
    match(text, new RegExp(`with ESMTP id ${id}; `));
    const headerEnd = text.indexOf("\r\nFrom: ") + 2;
    const expected = concatBytes([
      enc.encode("From: alice@example.com\r\nSubject: stored\r\n\r\n"),
      new Uint8Array([0xc3, 0xa9, 0xff, 0x0d, 0x0a]),
      enc.encode(".dot-stuffed line\r\nbare\nLF stays\r\n"),
    ]);
    deepStrictEqual(stored.subarray(enc.encode(text.slice(0, headerEnd)).length), expected);

    const record = await h.spool.read(id);
    strictEqual(record.kind, "message");
    strictEqual(record.sender, "alice@example.com");
    deepStrictEqual(record.recipients, [
      { address: "bob@example.net", status: "pending" },
      { address: "carol@example.net", status: "pending" },
    ]);
    strictEqual(record.body, "8BITMIME");
    strictEqual(record.helo, "client.test");
    strictEqual(record.protocol, "ESMTP");
    strictEqual(record.attempts, 0);
    strictEqual(record.size, stored.length);
    deepStrictEqual(record.client, { address: "127.0.0.1", port: 40000, tls: false });
    await waitUntil("onQueued", () => h.queued.length === 1);
    deepStrictEqual(JSON.parse(JSON.stringify(h.queued[0])), record);
    deepStrictEqual(h.queuedBytes[0], stored, "a small message is handed on with its bytes");
    strictEqual(h.metrics.get("messages_accepted_total"), 1);
    strictEqual(h.metrics.get("bytes_accepted_total"), stored.length);
    deepStrictEqual(await names(h.spool.tmpDir), []);
    deepStrictEqual(await names(h.spool.queueDir), [`${id}.msg`]);

    h.t.push("QUIT\r\n");
    strictEqual(await h.write(n + 2), "221 2.0.0 Bye\r\n");
    await h.done;
  });
});

Deno.test("connection: end of input in the middle of DATA leaves nothing behind", async () => {
  await withConnection({}, async (h) => {
    await openTransaction(h);
    h.t.push("Subject: cut\r\n\r\npart of a message\r\nand a half line");
    // The message is written over a spare file in free/ (a new one: none was prepared).
    await waitUntil(
      "the message file in free/",
      async () => (await names(h.spool.freeDir)).length > 0,
    );
    const file = await names(h.spool.freeDir);
    h.t.end();
    await h.done;
    deepStrictEqual(await names(h.spool.tmpDir), []);
    deepStrictEqual(await names(h.spool.queueDir), []);
    deepStrictEqual(await names(h.spool.freeDir), file, "its file is a spare again, nothing else");
    strictEqual(h.queued.length, 0);
    strictEqual(h.metrics.get("messages_accepted_total"), 0);
    ok(h.logs.some((l) => l.includes("client disconnected in DATA")), h.logs.join("\n"));
  });
});

Deno.test("connection: a message over the size limit is refused with 552, nothing kept", async () => {
  await withConnection({ session: { maxMessageSize: 100 } }, async (h) => {
    const n = await openTransaction(h);
    h.t.push("Subject: big\r\n\r\n" + "x".repeat(200) + "\r\n.\r\n");
    match(await h.write(n + 1), /^552 5\.3\.4 /);
    deepStrictEqual(await names(h.spool.tmpDir), []);
    deepStrictEqual(await names(h.spool.queueDir), []);
    strictEqual((await names(h.spool.freeDir)).length, 1, "only the spare file it was written in");
    strictEqual(h.queued.length, 0);
    strictEqual(h.metrics.get("messages_rejected_total"), 1);
  });
});

Deno.test("connection: a spool that cannot be written gives 451, never 250", async () => {
  await withConnection({}, async (h) => {
    await Deno.remove(h.spool.freeDir, { recursive: true }); // no file can be taken
    const n = await openTransaction(h);
    h.t.push("Subject: lost\r\n\r\nbody\r\n.\r\n");
    match(await h.write(n + 1), /^451 4\.3\.0 /);
    deepStrictEqual(await names(h.spool.queueDir), []);
    strictEqual(h.queued.length, 0);
    ok(h.logs.some((l) => l.includes("spool write failed")), h.logs.join("\n"));
  });
});

Deno.test("connection: the command timeout ends the session with 421 4.4.2", async () => {
  await withConnection({ deps: { commandTimeoutMs: 200 } }, async (h) => {
    await h.write(1);
    h.t.push("EHLO client.test\r\n");
    await h.write(2);
    // Nothing more: the deadline passes.
    strictEqual(await h.write(3), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    await h.done;
    ok(h.t.closed);
    ok(h.logs.some((l) => l.includes(" warn timeout ")), h.logs.join("\n"));
  });
});

Deno.test("connection: the data timeout gives 421 4.4.2 and discards the message", async () => {
  await withConnection({ deps: { dataTimeoutMs: 200 } }, async (h) => {
    const n = await openTransaction(h);
    h.t.push("Subject: slow\r\n\r\nstarted\r\n");
    strictEqual(await h.write(n + 1), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    await h.done;
    deepStrictEqual(await names(h.spool.tmpDir), []);
    deepStrictEqual(await names(h.spool.queueDir), []);
  });
});

Deno.test("connection: a partial command after a long DATA gets a fresh command deadline", async () => {
  // The message takes longer than the command timeout (allowed: DATA has its own); the chunk
  // with the final dot also carries the start of the next command.
  await withConnection({ deps: { commandTimeoutMs: 500 } }, async (h) => {
    const n = await openTransaction(h);
    h.t.push("Subject: slow\r\n\r\nfirst part\r\n");
    await sleep(700);
    h.t.push("last part\r\n.\r\nQU");
    match(await h.write(n + 1), /^250 2\.0\.0 Ok: queued as /);
    await sleep(20); // the connection is now waiting for the rest of the line
    h.t.push("IT\r\n");
    strictEqual(await h.write(n + 2), "221 2.0.0 Bye\r\n");
    await h.done;
  });
});

Deno.test("connection: shutdown ends an idle session with 421 4.3.2", async () => {
  await withConnection({}, async (h) => {
    await h.write(1);
    h.t.push("EHLO client.test\r\n");
    await h.write(2);
    h.shutdown.abort();
    strictEqual(await h.write(3), "421 4.3.2 mx.test Service shutting down\r\n");
    await h.done;
    ok(h.t.closed);
  });
});

Deno.test("connection: shutdown lets a transaction under way finish, then 421", async () => {
  await withConnection({}, async (h) => {
    await h.write(1);
    h.t.push("EHLO client.test\r\n");
    await h.write(2);
    h.t.push("MAIL FROM:<alice@example.com>\r\n");
    strictEqual(await h.write(3), "250 2.1.0 Ok\r\n");
    h.shutdown.abort();
    await sleep(20);
    h.t.push("RCPT TO:<bob@example.net>\r\n");
    strictEqual(await h.write(4), "250 2.1.5 Ok\r\n");
    h.t.push("DATA\r\n");
    match(await h.write(5), /^354 /);
    h.t.push("Subject: last\r\n\r\nbody\r\n.\r\n");
    match(await h.write(6), /^250 2\.0\.0 Ok: queued as /);
    strictEqual(await h.write(7), "421 4.3.2 mx.test Service shutting down\r\n");
    await h.done;
    strictEqual(h.queued.length, 1);
    deepStrictEqual((await h.spool.list()).records.map((r) => r.id), [h.queued[0].id]);
  });
});

Deno.test("connection: a message stored but whose 250 cannot be written is still handed on", async () => {
  await withConnection({}, async (h) => {
    const n = await openTransaction(h);
    h.t.onWrite = (bytes) => {
      if (dec.decode(bytes).includes("queued as")) throw new Error("connection reset by peer");
    };
    h.t.push("Subject: gone\r\n\r\nbody\r\n.\r\n");
    await h.done;
    strictEqual(h.t.writes.length, n);
    const { records } = await h.spool.list();
    strictEqual(records.length, 1, "the message was committed");
    // Delivery must learn of it now, not at the next restart.
    deepStrictEqual(h.queued.map((r) => r.id), [records[0].id]);
  });
});

Deno.test("connection: DATA and the message in the same chunk as the envelope: the scanner takes over after DATA", async () => {
  await withConnection({}, async (h) => {
    await h.write(1);
    h.t.push("EHLO client.test\r\n");
    await h.write(2);
    // A client that does not wait for the 354 (and puts QUIT right behind the dot).
    h.t.push(
      "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n" +
        "Subject: eager\r\n\r\nRCPT TO:<not-a-command@example.net>\r\n..dot\r\n.\r\nQUIT\r\n",
    );
    strictEqual(
      await h.write(3),
      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
    );
    const id = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]+)\r\n$/.exec(await h.write(4))?.[1];
    ok(id);
    strictEqual(await h.write(5), "221 2.0.0 Bye\r\n");
    await h.done;
    const text = dec.decode(await storedBytes(h.spool, id));
    ok(
      text.endsWith("\r\nSubject: eager\r\n\r\nRCPT TO:<not-a-command@example.net>\r\n.dot\r\n"),
      text,
    );
    deepStrictEqual((await h.spool.read(id)).recipients.map((r) => r.address), [
      "bob@example.net",
    ]);
  });
});

Deno.test("connection: a 300 KB line without CRLF, in many chunks, is stored whole (no fragment limit)", async () => {
  await withConnection({}, async (h) => {
    const n = await openTransaction(h);
    const line = new Uint8Array(300 * 1024);
    for (let i = 0; i < line.length; i++) line[i] = 0x41 + (i % 26);
    line[0] = 0x2e; // a dot-stuffed line start: one dot is removed
    line[1] = 0x2e;
    h.t.push("Subject: long\r\n\r\n");
    for (let at = 0; at < line.length; at += 7000) h.t.push(line.slice(at, at + 7000));
    h.t.push("\r\n.\r\n");
    const id = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]+)\r\n$/.exec(await h.write(n + 1))?.[1];
    ok(id);
    const stored = await storedBytes(h.spool, id);
    const body = stored.subarray(stored.length - (line.length - 1 + 2));
    deepStrictEqual(body, concatBytes([line.subarray(1), enc.encode("\r\n")]));
    strictEqual((await h.spool.read(id)).size, stored.length);
    await waitUntil("onQueued", () => h.queued.length === 1);
    strictEqual(h.queuedBytes[0], undefined, "a large message is read back from the spool");
  });
});

Deno.test("connection: the next message of the session is written over the spare file of an aborted one", async () => {
  await withConnection({ session: { maxMessageSize: 100 } }, async (h) => {
    const n = await openTransaction(h);
    h.t.push("x".repeat(300) + "\r\n.\r\n");
    match(await h.write(n + 1), /^552 /);
    const [spare] = await names(h.spool.freeDir);
    const inode = (await Deno.stat(join(h.spool.freeDir, spare))).ino;
    h.t.push("MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n");
    match(await h.write(n + 2), /354 /);
    h.t.push("Subject: small\r\n\r\nok\r\n.\r\n");
    const id = /queued as ([0-9A-Z]+)/.exec(await h.write(n + 3))?.[1];
    ok(id);
    strictEqual((await Deno.stat(h.spool.messagePath(id))).ino, inode);
    deepStrictEqual(await names(h.spool.freeDir), []);
    ok(dec.decode(await storedBytes(h.spool, id)).endsWith("\r\nSubject: small\r\n\r\nok\r\n"));
  });
});

Deno.test("connection: the command deadline holds after an overlong line trickled one byte at a time", async () => {
  // Regression: with the overlong line's bytes discarded, nothing stays buffered, and the
  // deadline used to restart on every read: a client trickling bytes was never timed out.
  await withConnection({ deps: { commandTimeoutMs: 300 } }, async (h) => {
    await h.write(1);
    h.t.push("EHLO client.test\r\n");
    await h.write(2);
    h.t.push("X".repeat(600)); // longer than 510 bytes, no CRLF
    // One byte every 50 ms (well within the 300 ms timeout), for at most 4 s.
    for (let i = 0; i < 80 && !h.t.closed; i++) {
      await sleep(50);
      if (!h.t.closed) h.t.push("X");
    }
    ok(h.t.closed, "the connection was closed while the client kept trickling");
    await h.done;
    ok(
      h.t.texts.includes("421 4.4.2 mx.test Error: timeout exceeded\r\n"),
      JSON.stringify(h.t.texts),
    );
    ok(h.logs.some((l) => l.includes(" warn timeout ")), h.logs.join("\n"));
  });
});
