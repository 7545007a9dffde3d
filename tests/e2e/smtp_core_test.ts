/**
 * End-to-end: the real server as a subprocess (narrow permissions), driven by
 * swaks, Python's smtplib and a raw byte client; assertions on replies and on
 * the files in the spool.
 */

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { python, queueFiles, startCarrier, swaks } from "../support/carrier.ts";
import { queuedIds, storedMessages } from "../support/spool.ts";
import { RawClient } from "../support/raw_client.ts";

const decoder = new TextDecoder("latin1");

/** The message without our Received: header (its first two or three lines). */
function withoutReceived(bytes: Uint8Array): string {
  const text = decoder.decode(bytes);
  ok(
    text.startsWith("Received: from "),
    `starts with Received:, got ${JSON.stringify(text.slice(0, 40))}`,
  );
  const end = text.search(/\r\n(?![\t ])/);
  return text.slice(end + 2);
}

Deno.test("swaks with pipelining: queued, envelope and Received: header in the spool", async () => {
  const carrier = await startCarrier();
  try {
    const result = await swaks([
      "--server",
      `127.0.0.1:${carrier.port}`,
      "--pipeline",
      "--from",
      "cron@example.org",
      "--to",
      "ops@example.com,dev@example.com",
      "--header",
      "Subject: disk almost full",
      "--body",
      "87% used",
    ]);
    strictEqual(result.code, 0, result.output);
    ok(
      /<\*\* *250[- ]PIPELINING|<~?\s*250-PIPELINING/.test(result.output) ||
        result.output.includes("PIPELINING"),
    );
    const id = /queued as ([0-9A-Z]+)/.exec(result.output)?.[1];
    ok(id, result.output);
    const [stored] = await storedMessages(carrier.spool);
    strictEqual(stored.id, id);
    strictEqual(stored.record.sender, "cron@example.org");
    deepStrictEqual(
      stored.record.recipients.map((r) => r.address),
      ["ops@example.com", "dev@example.com"],
    );
    const text = decoder.decode(stored.bytes);
    ok(
      /^Received: from \S+ \(\[127\.0\.0\.1\]\)\r\n\tby carrier\.test \(Carrier\) with ESMTP id [0-9A-Z]+; /
        .test(text),
      text,
    );
    ok(text.includes("Subject: disk almost full\r\n"));
    ok(text.includes("\r\n\r\n87% used\r\n"));
    // Log lines are written in batches, a moment after the event: wait for it.
    await carrier.waitForLog(new RegExp(`queued conn=.* id=${id}`));
  } finally {
    strictEqual(await carrier.stop(), 0);
  }
});

Deno.test("pipelined commands are answered in order, in one group", async () => {
  const carrier = await startCarrier();
  const client = await RawClient.connect(carrier.port);
  try {
    strictEqual((await client.reply()).code, 220);
    await client.send("EHLO client.test\r\n");
    const ehlo = await client.reply();
    ok(ehlo.lines.includes("PIPELINING"));
    await client.send(
      "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<bad address>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n",
    );
    const replies = await client.replies(5);
    deepStrictEqual(replies.map((r) => r.code), [250, 250, 501, 250, 354]);
    await client.send("Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    const [done, bye] = await client.replies(2);
    strictEqual(done.code, 250);
    strictEqual(bye.code, 221);
    const [stored] = await storedMessages(carrier.spool);
    deepStrictEqual(stored.record.recipients.map((r) => r.address), [
      "b@example.com",
      "c@example.com",
    ]);
  } finally {
    client.close();
    await carrier.stop();
  }
});

Deno.test("smtplib: dot-stuffed lines and ISO-8859-1 bytes are stored byte-exact", async () => {
  const carrier = await startCarrier();
  try {
    const result = await python(
      `
import smtplib, sys
body = b"Subject: caf\\xe9\\r\\nContent-Type: text/plain; charset=iso-8859-1\\r\\n\\r\\n.leading dot\\r\\n..two dots\\r\\n.\\r\\nna\\xefve \\xa9 \\xff\\r\\nend"
with smtplib.SMTP("127.0.0.1", int(sys.argv[1])) as s:
    s.ehlo("py.test")
    s.sendmail("a@example.org", ["b@example.com"], body, mail_options=["BODY=8BITMIME"])
print("ok")
`,
      [String(carrier.port)],
    );
    strictEqual(result.code, 0, result.stderr);
    const [stored] = await storedMessages(carrier.spool);
    const expected = "Subject: caf\xe9\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n" +
      ".leading dot\r\n..two dots\r\n.\r\nna\xefve \xa9 \xff\r\nend\r\n";
    strictEqual(withoutReceived(stored.bytes), expected);
    strictEqual(stored.record.body, "8BITMIME");
  } finally {
    await carrier.stop();
  }
});

Deno.test("SMTP smuggling: only CRLF.CRLF ends DATA; the variants stay message content", async () => {
  const carrier = await startCarrier();
  const client = await RawClient.connect(carrier.port);
  try {
    await client.reply();
    await client.send(
      "EHLO x.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n",
    );
    deepStrictEqual((await client.replies(4)).map((r) => r.code), [250, 250, 250, 354]);
    const smuggled = "Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<evil@example.net>\r\n" +
      "second\r\n.\nRCPT TO:<victim@example.com>\r\nthird\n.\r\nDATA\r\nfourth\r.\r\nend\r\n.\r\n";
    await client.send(smuggled);
    const done = await client.reply();
    strictEqual(done.code, 250, done.raw);
    await client.send("QUIT\r\n");
    strictEqual((await client.reply()).code, 221);
    const stored = await storedMessages(carrier.spool);
    strictEqual(stored.length, 1);
    // "\r\n.\n..." is a line that starts with a dot: unstuffed like any other (RFC 5321 §4.5.2).
    strictEqual(
      withoutReceived(stored[0].bytes),
      smuggled.slice(0, -3).replace("second\r\n.\nRCPT", "second\r\n\nRCPT"),
    );
    deepStrictEqual(stored[0].record.recipients.map((r) => r.address), [
      "b@example.com",
    ]);
  } finally {
    client.close();
    await carrier.stop();
  }
});

Deno.test("oversize: SIZE= above the limit gets 552 at MAIL; a message growing past it gets 552 after the dot; the session goes on", async () => {
  const carrier = await startCarrier({ args: ["--max-message-size", "2000"] });
  const client = await RawClient.connect(carrier.port);
  try {
    await client.reply();
    await client.send("EHLO x.test\r\n");
    ok((await client.reply()).lines.includes("SIZE 2000"));
    await client.send("MAIL FROM:<a@example.org> SIZE=5000\r\n");
    const early = await client.reply();
    strictEqual(early.code, 552);
    ok(early.raw.includes("5.3.4"));
    await client.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
    deepStrictEqual((await client.replies(3)).map((r) => r.code), [250, 250, 354]);
    await client.send("Subject: big\r\n\r\n" + "x".repeat(70).concat("\r\n").repeat(100) + ".\r\n");
    const late = await client.reply();
    strictEqual(late.code, 552, late.raw);
    strictEqual((await queueFiles(carrier.spool)).length, 0);
    // The session goes on: a small message is accepted on the same connection.
    await client.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
    deepStrictEqual((await client.replies(3)).map((r) => r.code), [250, 250, 354]);
    await client.send("Subject: small\r\n\r\nok\r\n.\r\n");
    strictEqual((await client.reply()).code, 250);
    const ids = await queuedIds(carrier.spool);
    strictEqual(ids.length, 1);
    deepStrictEqual(
      await queueFiles(carrier.spool),
      [`${ids[0]}.msg`],
      "one file, no record beside it",
    );
  } finally {
    client.close();
    await carrier.stop();
  }
});

Deno.test("a client that disconnects mid-DATA leaves nothing queued and the server keeps serving", async () => {
  const carrier = await startCarrier();
  try {
    const client = await RawClient.connect(carrier.port);
    await client.reply();
    await client.send(
      "EHLO x.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n",
    );
    await client.replies(4);
    await client.send("Subject: half\r\n\r\n" + "partial line\r\n".repeat(1000));
    client.close();
    await carrier.waitForLog(/client disconnected in DATA/);
    await carrier.waitForLog(/disconnect conn=C1 /);
    deepStrictEqual(await queueFiles(carrier.spool), []);
    deepStrictEqual([...Deno.readDirSync(join(carrier.spool, "tmp"))], []);
    const result = await swaks([
      "--server",
      `127.0.0.1:${carrier.port}`,
      "--from",
      "a@example.org",
      "--to",
      "b@example.com",
    ]);
    strictEqual(result.code, 0, result.output);
    strictEqual((await queuedIds(carrier.spool)).length, 1);
  } finally {
    await carrier.stop();
  }
});

Deno.test("50 concurrent smtplib clients x 20 messages: every message in the spool exactly once", async () => {
  const carrier = await startCarrier();
  try {
    const result = await python(
      `
import smtplib, sys, threading
port = int(sys.argv[1]); errors = []
def client(n):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
            for m in range(20):
                token = "tok-%02d-%02d" % (n, m)
                s.sendmail("c%d@example.org" % n, ["r@example.com"], ("Subject: %s\\r\\n\\r\\n%s\\r\\n" % (token, token)).encode())
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
[t.start() for t in threads]; [t.join() for t in threads]
print(len(errors)); print("\\n".join(errors[:5]))
`,
      [String(carrier.port)],
    );
    strictEqual(result.code, 0, result.stderr);
    strictEqual(result.stdout.split("\n")[0], "0", result.stdout);
    const stored = await storedMessages(carrier.spool);
    strictEqual(stored.length, 1000);
    const tokens = stored.map((s) => /Subject: (tok-\d\d-\d\d)/.exec(decoder.decode(s.bytes))?.[1]);
    const expected = [];
    for (let n = 0; n < 50; n++) {
      for (let m = 0; m < 20; m++) {
        expected.push(`tok-${String(n).padStart(2, "0")}-${String(m).padStart(2, "0")}`);
      }
    }
    deepStrictEqual(tokens.sort(), expected.sort());
  } finally {
    await carrier.stop();
  }
});

Deno.test("an idle client gets 421 4.4.2 at the command timeout; a trickling one too", async () => {
  const carrier = await startCarrier({ args: ["--command-timeout", "1s"] });
  try {
    const idle = await RawClient.connect(carrier.port);
    await idle.reply();
    const bye = await idle.reply(5000);
    strictEqual(bye.code, 421);
    ok(bye.raw.includes("4.4.2"));
    ok(await idle.closedByPeer());
    idle.close();
    // One byte every 300 ms never completes a line within the deadline.
    const slow = await RawClient.connect(carrier.port);
    await slow.reply();
    const started = Date.now();
    let closed = false;
    for (let i = 0; i < 20 && !closed; i++) {
      try {
        await slow.send("N");
      } catch {
        closed = true;
      }
      await new Promise((r) => setTimeout(r, 300));
      if (Date.now() - started > 2500) break;
    }
    const reply = await slow.reply(5000);
    strictEqual(reply.code, 421);
    slow.close();
  } finally {
    await carrier.stop();
  }
});

Deno.test("connection limits: the connection over the per-client limit gets 421 4.7.0", async () => {
  const carrier = await startCarrier({ args: ["--max-connections-per-client", "2"] });
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const c = await RawClient.connect(carrier.port);
      clients.push(c);
      strictEqual((await c.reply()).code, 220);
    }
    const third = await RawClient.connect(carrier.port);
    clients.push(third);
    const refused = await third.reply();
    strictEqual(refused.code, 421);
    ok(refused.raw.includes("4.7.0"));
    ok(await third.closedByPeer());
    await carrier.waitForLog(/connection refused: too many connections/);
  } finally {
    for (const c of clients) c.close();
    await carrier.stop();
  }
});

Deno.test("too many errors: 421 and the connection closes", async () => {
  const carrier = await startCarrier({ args: ["--max-errors", "3"] });
  const client = await RawClient.connect(carrier.port);
  try {
    await client.reply();
    await client.send("FOO\r\nBAR\r\nBAZ\r\n");
    const replies = await client.replies(4);
    deepStrictEqual(replies.map((r) => r.code), [500, 500, 500, 421]);
    ok(await client.closedByPeer());
  } finally {
    client.close();
    await carrier.stop();
  }
});

Deno.test("an overlong command line gets 500 5.5.6 and the session goes on", async () => {
  const carrier = await startCarrier();
  const client = await RawClient.connect(carrier.port);
  try {
    await client.reply();
    await client.send("EHLO " + "a".repeat(100_000) + "\r\nNOOP\r\n");
    const [long, noop] = await client.replies(2);
    strictEqual(long.code, 500);
    ok(long.raw.includes("5.5.6"));
    strictEqual(noop.code, 250);
  } finally {
    client.close();
    await carrier.stop();
  }
});

Deno.test("IPv6 loopback listener", async () => {
  const carrier = await startCarrier({ plain: false, args: ["--listen", "[::1]:0"] });
  try {
    const port = Number(/listening address=\[::1\]:(\d+)/.exec(carrier.logs())?.[1]);
    const client = await RawClient.connect(port, { hostname: "::1" });
    strictEqual((await client.reply()).code, 220);
    await client.send("QUIT\r\n");
    strictEqual((await client.reply()).code, 221);
    client.close();
  } finally {
    await carrier.stop();
  }
});

Deno.test("an error at the end of DATA that reaches the error limit: 421 and the connection closes", async () => {
  const carrier = await startCarrier({ args: ["--max-errors", "2", "--max-message-size", "100"] });
  const client = await RawClient.connect(carrier.port);
  try {
    await client.reply();
    await client.send(
      "EHLO x.test\r\nBOGUS\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n",
    );
    deepStrictEqual((await client.replies(5)).map((r) => r.code), [250, 500, 250, 250, 354]);
    await client.send("x".repeat(300) + "\r\n.\r\n");
    deepStrictEqual((await client.replies(2)).map((r) => r.code), [552, 421]);
    ok(await client.closedByPeer(), "closed after 421");
  } finally {
    client.close();
    await carrier.stop();
  }
});
