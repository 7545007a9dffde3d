import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { concatBytes } from "../../src/bytes.ts";
import {
  decideHeaders,
  type HeaderAddition,
  type HygieneDecision,
  hygieneFor,
  streamWithAddition,
  withAddition,
} from "../../src/relay/header_hygiene.ts";
import { sampleRecord } from "../queue/_helpers.ts";

const enc = new TextEncoder();

const RECEIVED = "Received: from client.test ([127.0.0.1])\r\n" +
  "\tby mx.test (Carrier) with ESMTP id Q1\r\n\tfor <b@example.net>; Mon, 1 Jan 2024 00:00:00 +0000\r\n";
const SOURCE = {
  id: "Q1",
  hostname: "mx.test",
  receivedAt: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
};
const MESSAGE_ID = "Message-ID: <Q1@mx.test>\r\n";
const DATE = "Date: Fri, 2 Jan 2026 03:04:05 +0000\r\n";

/** The message delivery sends for `text` (latin1, so any byte value can be written). */
function delivered(text: string, whole = true): string {
  const bytes = latin1Bytes(text);
  const d = decideHeaders(bytes, whole, SOURCE);
  return d.kind === "add" ? chars(withAddition(bytes, d.addition)) : text;
}

function latin1Bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** One character per byte (TextDecoder's "latin1" is windows-1252, not this). */
function chars(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => String.fromCharCode(b)).join("");
}

function decide(text: string, whole = true): HygieneDecision {
  return decideHeaders(latin1Bytes(text), whole, SOURCE);
}

Deno.test("hygiene: both missing: Message-ID and Date go right after the folded Received:", () => {
  const rest = "From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n";
  strictEqual(delivered(RECEIVED + rest), RECEIVED + MESSAGE_ID + DATE + rest);
});

Deno.test("hygiene: both present (any case, space before the colon): nothing added", () => {
  for (
    const [id, date] of [
      ["Message-ID: <x@y>", "Date: Mon, 1 Jan 2024 00:00:00 +0000"],
      ["message-id: <x@y>", "date: Mon, 1 Jan 2024 00:00:00 +0000"],
      ["MESSAGE-ID:<x@y>", "DATE:Mon, 1 Jan 2024 00:00:00 +0000"],
      ["Message-Id : <x@y>", "Date\t: x"],
    ]
  ) {
    const text = `${RECEIVED}From: a@b\r\n${date}\r\nSubject: s\r\n${id}\r\n\r\nbody\r\n`;
    deepStrictEqual(decide(text), { kind: "complete" }, text);
    strictEqual(delivered(text), text);
  }
});

Deno.test("hygiene: only the missing one is added", () => {
  const noDate = `${RECEIVED}Message-ID: <x@y>\r\n\r\nbody\r\n`;
  strictEqual(delivered(noDate), RECEIVED + DATE + noDate.slice(RECEIVED.length));
  const noId = `${RECEIVED}Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n`;
  strictEqual(delivered(noId), RECEIVED + MESSAGE_ID + noId.slice(RECEIVED.length));
});

Deno.test("hygiene: names inside continuations, in the body or longer names do not count", () => {
  const text = RECEIVED +
    "Subject: a long one\r\n Message-ID: <folded@x>\r\n\tDate: folded\r\n" +
    "X-Message-ID: <x@y>\r\nMessage-IDs: <x@y>\r\nDated: yes\r\nResent-Date: x\r\n" +
    "\r\nMessage-ID: <body@x>\r\nDate: in the body\r\n";
  strictEqual(delivered(text), RECEIVED + MESSAGE_ID + DATE + text.slice(RECEIVED.length));
});

Deno.test("hygiene: a message without a body (no empty line), with or without a last CRLF", () => {
  strictEqual(
    delivered(`${RECEIVED}Subject: s\r\n`),
    `${RECEIVED}${MESSAGE_ID}${DATE}Subject: s\r\n`,
  );
  strictEqual(delivered(`${RECEIVED}Subject: s`), `${RECEIVED}${MESSAGE_ID}${DATE}Subject: s`);
  strictEqual(delivered(`${RECEIVED}Date: x`), `${RECEIVED}${MESSAGE_ID}Date: x`);
  // Only our Received: (the client sent nothing at all).
  strictEqual(delivered(RECEIVED), RECEIVED + MESSAGE_ID + DATE);
});

Deno.test("hygiene: an empty header section: added before the empty line", () => {
  strictEqual(delivered(`${RECEIVED}\r\nbody\r\n`), `${RECEIVED}${MESSAGE_ID}${DATE}\r\nbody\r\n`);
});

Deno.test("hygiene: only CRLF CRLF ends the header section; a bare LF or CR there adds nothing", () => {
  // A bare-LF empty line is no end for Carrier, but is for a lenient reader: leave it alone.
  for (const text of ["Subject: s\n\nbody\r\n", "Subject: s\r\nX: a\rb\r\n\r\n", "A: b\n"]) {
    deepStrictEqual(decide(RECEIVED + text), { kind: "skip", reason: "bare-line-break" }, text);
    strictEqual(delivered(RECEIVED + text), RECEIVED + text);
  }
  // Both found before it: nothing is missing, nothing to note.
  deepStrictEqual(decide(`${RECEIVED}Date: x\r\nMessage-ID: <a@b>\r\nX: a\nb\r\n\r\n`), {
    kind: "complete",
  });
  // In the body they are content like any other.
  const body = `${RECEIVED}Subject: s\r\n\r\na\nb\rc\n\n`;
  strictEqual(delivered(body), RECEIVED + MESSAGE_ID + DATE + body.slice(RECEIVED.length));
});

Deno.test("hygiene: non-ASCII header bytes are kept exactly; the fields still found", () => {
  const raw =
    `${RECEIVED}Subject: caf\xc3\xa9 \xff\x80\r\nFrom: \xe2\x98\x83 <a@b>\r\n\r\n\xc3\xa9\r\n`;
  strictEqual(delivered(raw), RECEIVED + MESSAGE_ID + DATE + raw.slice(RECEIVED.length));
  const present = `${RECEIVED}Subject: \xff\r\nDate: \xc3\xa9\r\nMessage-ID: <\xc3\xa9@x>\r\n\r\n`;
  deepStrictEqual(decide(present), { kind: "complete" });
});

Deno.test("hygiene: the header end beyond the bytes read: nothing added unless nothing is missing", () => {
  const head = `${RECEIVED}From: a@b\r\nSubject: s\r\nX-Long: aaaa`;
  deepStrictEqual(decide(head, false), { kind: "skip", reason: "header-beyond-head" });
  deepStrictEqual(decide(`${RECEIVED}From: a@b\r\n`, false), {
    kind: "skip",
    reason: "header-beyond-head",
  });
  deepStrictEqual(decide(`${RECEIVED}Date: x\r\nMessage-ID: <a@b>\r\nX: y`, false), {
    kind: "complete",
  });
  // Not even the first line: a huge record header left few message bytes in the read.
  deepStrictEqual(decide("Received: from x", false), {
    kind: "skip",
    reason: "header-beyond-head",
  });
  deepStrictEqual(decide("", false), { kind: "skip", reason: "header-beyond-head" });
  // The end within the bytes read: the rest of the file is body and does not matter.
  const d = decide(`${RECEIVED}Subject: s\r\n\r\nbody starts`, false);
  strictEqual(d.kind, "add");
  strictEqual((d as { addition: HeaderAddition }).addition.at, RECEIVED.length);
});

Deno.test("hygiene: no Received: first, or text folded into it unterminated: nothing added", () => {
  deepStrictEqual(decide("Subject: s\r\n\r\nbody\r\n"), { kind: "skip", reason: "no-received" });
  deepStrictEqual(decide(""), { kind: "skip", reason: "no-received" });
  deepStrictEqual(decide(`${RECEIVED} tail`), { kind: "skip", reason: "received-unterminated" });
  // A client's first line that starts with a space is a continuation of Received:.
  const text = `${RECEIVED} more\r\nSubject: s\r\n\r\n`;
  strictEqual(delivered(text), `${RECEIVED} more\r\n${MESSAGE_ID}${DATE}Subject: s\r\n\r\n`);
});

Deno.test("hygieneFor: from the record (queue id, receivedAt); bounces get nothing; deterministic", () => {
  const record = sampleRecord({
    id: "0ABCDEFGHIJK",
    receivedAt: "2026-03-04T05:06:07.890Z",
    size: 0,
  });
  const bytes = enc.encode(`${RECEIVED}Subject: s\r\n\r\nbody\r\n`);
  const sized = { ...record, size: bytes.length };
  const first = hygieneFor(sized, bytes, "relay.example");
  ok(first.kind === "add");
  strictEqual(
    chars(first.addition.bytes),
    "Message-ID: <0ABCDEFGHIJK@relay.example>\r\nDate: Wed, 4 Mar 2026 05:06:07 +0000\r\n",
  );
  deepStrictEqual(hygieneFor(sized, bytes, "relay.example"), first, "the same on every attempt");
  deepStrictEqual(hygieneFor({ ...sized, kind: "bounce" }, bytes, "relay.example"), {
    kind: "complete",
  });
  // Fewer bytes than the message: the header end must be among them.
  deepStrictEqual(hygieneFor(sized, bytes.subarray(0, RECEIVED.length + 5), "relay.example"), {
    kind: "skip",
    reason: "header-beyond-head",
  });
});

Deno.test("streamWithAddition: the same bytes as withAddition however the stream is chunked", async () => {
  const message = concatBytes([
    enc.encode(RECEIVED),
    enc.encode("Subject: s\r\n\r\n"),
    new Uint8Array(5000).map((_, i) => i % 256),
  ]);
  const d = decideHeaders(message, true, SOURCE);
  ok(d.kind === "add");
  const expected = withAddition(message, d.addition);
  strictEqual(expected.length, message.length + MESSAGE_ID.length + DATE.length);
  for (const size of [1, 7, d.addition.at, d.addition.at + 1, 4096, message.length]) {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < message.length; i += size) chunks.push(message.slice(i, i + size));
    const out = await new Response(streamWithAddition(ReadableStream.from(chunks), d.addition))
      .bytes();
    deepStrictEqual(out, expected, `chunks of ${size}`);
  }
  // withAddition leaves its input alone.
  strictEqual(message.length, expected.length - d.addition.bytes.length);
});
