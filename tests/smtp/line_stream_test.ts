import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import fc from "fast-check";
import { type Line, LineSplitter, LineStream } from "../../src/smtp/line_stream.ts";
import { concat, dec, enc, latin1 } from "./_helpers.ts";

/** A line as [bytes as binary string, complete, start], for exact comparisons. */
type Shape = [string, boolean, boolean];
const shape = (lines: Line[]): Shape[] => lines.map((l) => [latin1(l.bytes), l.complete, l.start]);

function splitAll(maxLength: number, chunks: Uint8Array[]): Shape[] {
  const splitter = new LineSplitter(maxLength);
  const out: Line[] = [];
  for (const chunk of chunks) out.push(...splitter.push(chunk));
  out.push(...splitter.flush());
  return shape(out);
}

// CRLF lines, bare LF, bare CR, CR CR LF, an empty line, an overlong line and an unterminated tail.
const SAMPLE = enc(
  "EHLO a\r\nx\ny\rz\r\n\r\r\n\r\nabcdefghijklmnopq\r\n.\r\n\n.\n0123456789\r\r\nlast",
);

Deno.test("LineSplitter: whole lines, no CRLF in the output, start flags", () => {
  deepStrictEqual(splitAll(80, [enc("HELO a\r\nMAIL FROM:<>\r\n\r\n")]), [
    ["HELO a", true, true],
    ["MAIL FROM:<>", true, true],
    ["", true, true],
  ]);
});

Deno.test("LineSplitter: the sample input gives the expected pieces", () => {
  deepStrictEqual(splitAll(8, [SAMPLE]), [
    ["EHLO a", true, true],
    ["x\ny\rz", true, true],
    ["\r", true, true],
    ["", true, true],
    ["abcdefgh", false, true],
    ["ijklmnop", false, false],
    ["q", true, false],
    [".", true, true],
    ["\n.\n01234", false, true],
    ["56789\r", true, false],
    ["last", false, true],
  ]);
});

Deno.test("LineSplitter: every single split point gives the same lines", () => {
  const expected = splitAll(8, [SAMPLE]);
  for (let i = 0; i <= SAMPLE.length; i++) {
    const got = splitAll(8, [SAMPLE.subarray(0, i), SAMPLE.subarray(i)]);
    deepStrictEqual(got, expected, `split at ${i}`);
  }
});

Deno.test("LineSplitter: every pair of split points (with an empty chunk) gives the same lines", () => {
  const expected = splitAll(8, [SAMPLE]);
  for (let i = 0; i <= SAMPLE.length; i++) {
    for (let j = i; j <= SAMPLE.length; j++) {
      const got = splitAll(8, [
        SAMPLE.subarray(0, i),
        new Uint8Array(0),
        SAMPLE.subarray(i, j),
        SAMPLE.subarray(j),
      ]);
      deepStrictEqual(got, expected, `split at ${i} and ${j}`);
    }
  }
});

Deno.test("LineSplitter: one byte per chunk gives the same lines", () => {
  const chunks = Array.from(SAMPLE, (b) => new Uint8Array([b]));
  deepStrictEqual(splitAll(8, chunks), splitAll(8, [SAMPLE]));
});

Deno.test("LineSplitter: CRLF across a chunk boundary", () => {
  const splitter = new LineSplitter(100);
  deepStrictEqual(shape(splitter.push(enc("abc\r"))), []);
  strictEqual(splitter.buffered, 4, "3 bytes and the held CR");
  deepStrictEqual(shape(splitter.push(enc("\ndef\r\n"))), [["abc", true, true], [
    "def",
    true,
    true,
  ]]);
  strictEqual(splitter.buffered, 0);
});

Deno.test("LineSplitter: CR, an empty chunk, then LF is still CRLF", () => {
  const splitter = new LineSplitter(100);
  deepStrictEqual(splitter.push(enc("abc\r")), []);
  deepStrictEqual(splitter.push(new Uint8Array(0)), []);
  strictEqual(splitter.buffered, 4);
  deepStrictEqual(shape(splitter.push(enc("\n"))), [["abc", true, true]]);
  strictEqual(splitter.buffered, 0);
});

Deno.test("LineSplitter: a held CR followed by something else is data", () => {
  const splitter = new LineSplitter(100);
  splitter.push(enc("a\r"));
  deepStrictEqual(shape(splitter.push(enc("b\r\n"))), [["a\rb", true, true]]);
  splitter.push(enc("c\r"));
  deepStrictEqual(shape(splitter.push(enc("\r\n"))), [["c\r", true, true]]);
});

Deno.test("LineSplitter: bare LF and bare CR never end a line", () => {
  deepStrictEqual(splitAll(100, [enc("a\nb\rc\n\rd\r\n")]), [["a\nb\rc\n\rd", true, true]]);
  deepStrictEqual(splitAll(100, [enc("\n\n\r\r")]), [["\n\n\r\r", false, true]]);
  deepStrictEqual(splitAll(100, [enc("x\n\r\n")]), [["x\n", true, true]]);
  deepStrictEqual(splitAll(100, [enc("\n.\n")]), [["\n.\n", false, true]]);
});

Deno.test("LineSplitter: overlong lines come out as fragments with the right flags", () => {
  deepStrictEqual(splitAll(4, [enc("abcdefghij\r\nxy\r\n")]), [
    ["abcd", false, true],
    ["efgh", false, false],
    ["ij", true, false],
    ["xy", true, true],
  ]);
});

Deno.test("LineSplitter: a line of exactly maxLength is whole; one more byte is not", () => {
  deepStrictEqual(splitAll(4, [enc("abcd\r\n")]), [["abcd", true, true]]);
  deepStrictEqual(splitAll(4, [enc("abcde\r\n")]), [["abcd", false, true], ["e", true, false]]);
  deepStrictEqual(splitAll(4, [enc("abcdefgh\r\n")]), [["abcd", false, true], [
    "efgh",
    true,
    false,
  ]]);
  // The CR of the CRLF does not count against the bound, even when held across chunks.
  deepStrictEqual(splitAll(4, [enc("abcd\r"), enc("\n")]), [["abcd", true, true]]);
  // A CR that turns out to be data does count.
  deepStrictEqual(splitAll(4, [enc("abcd\r"), enc("x\r\n")]), [
    ["abcd", false, true],
    ["\rx", true, false],
  ]);
});

Deno.test("LineSplitter: maxLength 1 still makes progress", () => {
  deepStrictEqual(splitAll(1, [enc("ab\r\n\r\nc")]), [
    ["a", false, true],
    ["b", true, false],
    ["", true, true],
    ["c", false, true],
  ]);
});

Deno.test("LineSplitter: 100 MiB without CRLF never buffers more than maxLength + 1", () => {
  // 1285 divides 65535 (the bytes of the first chunk before its held CR): the worst case,
  // a full buffer plus a held CR, really occurs.
  const maxLength = 1285;
  const chunkSize = 64 * 1024;
  const chunks = 1600; // 100 MiB
  const chunk = new Uint8Array(chunkSize).fill(0x61);
  // Bare LFs and a trailing CR (held, then followed by "a", so never a CRLF).
  for (let i = 100; i < chunkSize; i += 4096) chunk[i] = 0x0a;
  chunk[chunkSize - 1] = 0x0d;
  const splitter = new LineSplitter(maxLength);
  let fragments = 0;
  let maxBuffered = 0;
  let fragmentBytes = 0;
  for (let i = 0; i < chunks; i++) {
    for (const l of splitter.push(chunk)) {
      fragments++;
      fragmentBytes += l.bytes.length;
      if (l.complete || l.start !== (fragments === 1) || l.bytes.length !== maxLength) {
        throw new Error(`unexpected piece #${fragments}: ${JSON.stringify({ ...l, bytes: 0 })}`);
      }
    }
    maxBuffered = Math.max(maxBuffered, splitter.buffered);
  }
  const total = chunkSize * chunks;
  strictEqual(total, 100 * 1024 * 1024);
  ok(maxBuffered <= maxLength + 1, `buffered ${maxBuffered}`);
  ok(maxBuffered === maxLength + 1, "the held CR on top of a full buffer is seen");
  // Only full fragments are emitted while input keeps coming; the rest (1..maxLength bytes,
  // plus the final CR, held) waits for more bytes.
  const appended = total - 1;
  strictEqual(fragments, Math.ceil(appended / maxLength) - 1);
  strictEqual(fragments, 81601);
  strictEqual(fragmentBytes + splitter.buffered, total);
  const tail = splitter.flush();
  strictEqual(tail.length, 1);
  strictEqual(tail[0].complete, false);
  strictEqual(tail[0].start, false);
  strictEqual(fragmentBytes + tail[0].bytes.length, total);
  strictEqual(tail[0].bytes[tail[0].bytes.length - 1], 0x0d, "the final held CR is returned");
  strictEqual(splitter.buffered, 0);
});

Deno.test("LineSplitter: reset() drops buffered bytes, a held CR and the line state", () => {
  const splitter = new LineSplitter(4);
  deepStrictEqual(shape(splitter.push(enc("abcdef\r"))), [["abcd", false, true]]);
  strictEqual(splitter.buffered, 3);
  splitter.reset();
  strictEqual(splitter.buffered, 0);
  // The held CR is gone: this LF is data, and the next piece starts a line.
  deepStrictEqual(shape(splitter.push(enc("\nxy\r\n"))), [["\nxy", true, true]]);
  deepStrictEqual(splitter.flush(), []);
});

Deno.test("LineSplitter: flush() returns the unterminated rest once", () => {
  const splitter = new LineSplitter(100);
  deepStrictEqual(splitter.flush(), []);
  deepStrictEqual(shape(splitter.push(enc("one\r\ntwo"))), [["one", true, true]]);
  deepStrictEqual(shape(splitter.flush()), [["two", false, true]]);
  deepStrictEqual(splitter.flush(), []);
  strictEqual(splitter.buffered, 0);
  // A held CR at the end of input is data.
  const held = new LineSplitter(100);
  held.push(enc("three\r"));
  deepStrictEqual(shape(held.flush()), [["three\r", false, true]]);
  strictEqual(held.buffered, 0);
  const lone = new LineSplitter(100);
  lone.push(enc("\r"));
  deepStrictEqual(shape(lone.flush()), [["\r", false, true]]);
});

Deno.test("LineSplitter: flush() after fragments marks the rest as a continuation", () => {
  const splitter = new LineSplitter(2);
  deepStrictEqual(shape(splitter.push(enc("abcde"))), [["ab", false, true], ["cd", false, false]]);
  deepStrictEqual(shape(splitter.flush()), [["e", false, false]]);
});

Deno.test("LineSplitter: output does not alias a reused input buffer", () => {
  const splitter = new LineSplitter(100);
  const buffer = enc("abc\r\ndef");
  const first = splitter.push(buffer);
  buffer.fill(0x7a);
  const second = splitter.push(enc("\r\n"));
  strictEqual(dec(first[0].bytes), "abc");
  strictEqual(dec(second[0].bytes), "def");
});

Deno.test("LineSplitter: maxLength must be a positive integer", () => {
  throws(() => new LineSplitter(0), RangeError);
  throws(() => new LineSplitter(1.5), RangeError);
  const splitter = new LineSplitter(10);
  throws(() => (splitter.maxLength = -1), RangeError);
  strictEqual(splitter.maxLength, 10);
});

Deno.test("LineSplitter: raising maxLength lets longer lines through whole", () => {
  const splitter = new LineSplitter(4);
  deepStrictEqual(shape(splitter.push(enc("abcdef"))), [["abcd", false, true]]);
  splitter.maxLength = 100;
  deepStrictEqual(shape(splitter.push(enc("0123456789\r\n"))), [["ef0123456789", true, false]]);
});

Deno.test("LineSplitter: lowering maxLength with more pending keeps every byte", () => {
  // (The server reads DATA with the scanner now and keeps the command bound; the setter
  // still keeps every byte when a caller lowers it under what is buffered.)
  const splitter = new LineSplitter(1000);
  deepStrictEqual(splitter.push(enc("A".repeat(800))), []);
  splitter.maxLength = 510;
  const out = splitter.push(enc("B".repeat(600) + "\r\nNOOP\r\n"));
  strictEqual(out.map((l) => dec(l.bytes)).join(""), "A".repeat(800) + "B".repeat(600) + "NOOP");
  deepStrictEqual(out.map((l) => [l.complete, l.start]), [
    [false, true],
    [false, false],
    [true, false],
    [true, true],
  ]);
  ok(out.slice(1).every((l) => l.bytes.length <= 510), "later pieces respect the new bound");
  strictEqual(dec(out[3].bytes), "NOOP");
});

/** Drives `take` over a chunk the way the connection does; returns each call's output and end. */
function takeAll(splitter: LineSplitter, chunk: Uint8Array): { lines: Line[]; end: number }[] {
  const calls: { lines: Line[]; end: number }[] = [];
  let pos = 0;
  for (let i = 0; pos < chunk.length; i++) {
    if (i > chunk.length) throw new Error("take made no progress");
    const lines: Line[] = [];
    const end = splitter.take(chunk, pos, lines);
    ok(end > pos && end <= chunk.length, `take(${pos}) returned ${end}`);
    calls.push({ lines, end });
    pos = end;
  }
  return calls;
}

Deno.test("LineSplitter.take: one line per call, stopping right after its CRLF", () => {
  const splitter = new LineSplitter(80);
  const chunk = enc("EHLO a\r\nMAIL FROM:<>\r\nDATA\r\nSubject: not a command");
  const calls = takeAll(splitter, chunk);
  deepStrictEqual(calls.map((c) => [shape(c.lines), c.end]), [
    [[["EHLO a", true, true]], 8],
    [[["MAIL FROM:<>", true, true]], 22],
    [[["DATA", true, true]], 28],
    [[], chunk.length],
  ]);
  // What follows DATA was not split into lines: it is still there for the data reader...
  strictEqual(latin1(chunk.subarray(28)), "Subject: not a command");
  // ...though this splitter, having been given it, holds it as the start of a line.
  strictEqual(splitter.buffered, "Subject: not a command".length);
});

Deno.test("LineSplitter.take: at or past the end of the chunk it takes nothing", () => {
  const splitter = new LineSplitter(10);
  const out: Line[] = [];
  strictEqual(splitter.take(enc("abc"), 3, out), 3);
  strictEqual(splitter.take(enc("abc"), 7, out), 3);
  strictEqual(splitter.take(new Uint8Array(0), 0, out), 0);
  deepStrictEqual(out, []);
  strictEqual(splitter.buffered, 0);
});

Deno.test("LineSplitter.take: a CR held from the last chunk pairs with an LF at pos", () => {
  const splitter = new LineSplitter(80);
  const first = enc("NOOP\r");
  deepStrictEqual(takeAll(splitter, first).map((c) => c.lines), [[]]);
  const second = enc("\nQUIT\r\n");
  const calls = takeAll(splitter, second);
  deepStrictEqual(calls.map((c) => [shape(c.lines), c.end]), [
    [[["NOOP", true, true]], 1],
    [[["QUIT", true, true]], 7],
  ]);
  // A held CR followed by something else is data, and take goes on to the line end.
  const other = new LineSplitter(80);
  other.take(enc("a\r"), 0, []);
  const out: Line[] = [];
  strictEqual(other.take(enc("b\r\nc"), 0, out), 3);
  deepStrictEqual(shape(out), [["a\rb", true, true]]);
});

Deno.test("LineSplitter.take: fragments of an overlong line come before the whole line that ends it", () => {
  const splitter = new LineSplitter(4);
  const chunk = enc("abcdefghij\r\nxy\r\n");
  const calls = takeAll(splitter, chunk);
  deepStrictEqual(calls.map((c) => [shape(c.lines), c.end]), [
    [[["abcd", false, true], ["efgh", false, false], ["ij", true, false]], 12],
    [[["xy", true, true]], 16],
  ]);
});

Deno.test("LineSplitter.take gives the same lines as push, with a whole line always last", () => {
  const byte = fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 0, max: 255 }) },
    { weight: 2, arbitrary: fc.constantFrom(0x0d, 0x0a, 0x2e, 0x61) },
  );
  fc.assert(
    fc.property(
      fc.array(byte, { maxLength: 300 }).map((a) => Uint8Array.from(a)),
      fc.integer({ min: 1, max: 40 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.boolean(),
      (input, maxLength, points, discardOverlong) => {
        const at = points.map((p) => p % (input.length + 1)).sort((a, b) => a - b);
        const chunks: Uint8Array[] = [];
        let last = 0;
        for (const p of [...at, input.length]) {
          chunks.push(input.subarray(last, p));
          last = p;
        }
        const byPush = new LineSplitter(maxLength, discardOverlong);
        const byTake = new LineSplitter(maxLength, discardOverlong);
        const pushed: Line[] = [];
        const taken: Line[] = [];
        for (const chunk of chunks) {
          pushed.push(...byPush.push(chunk));
          for (const { lines, end } of takeAll(byTake, chunk)) {
            const whole = lines.filter((l) => l.complete);
            ok(whole.length <= 1, "at most one whole line per call");
            if (whole.length === 1) {
              strictEqual(lines.at(-1), whole[0], "the whole line is the last thing appended");
              strictEqual(chunk[end - 1], 0x0a, "and the call stopped right after its LF");
            }
            taken.push(...lines);
          }
          strictEqual(byTake.buffered, byPush.buffered);
        }
        deepStrictEqual(shape(taken), shape(pushed));
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("LineStream: a TransformStream end to end", async () => {
  const chunks = [
    enc("EHLO x\r"),
    enc(""),
    enc("\nMAIL"),
    enc(" FROM:<>\r\nabcdefghij"),
    enc("\r"),
  ];
  const lines: Line[] = [];
  await ReadableStream.from(chunks)
    .pipeThrough(new LineStream(8))
    .pipeTo(new WritableStream({ write: (l) => void lines.push(l) }));
  deepStrictEqual(shape(lines), [
    ["EHLO x", true, true],
    ["MAIL FRO", false, true],
    ["M:<>", true, false],
    ["abcdefgh", false, true],
    ["ij\r", false, false],
  ]);
});

Deno.test("LineStream: same output as LineSplitter over the sample", async () => {
  const chunks = [SAMPLE.subarray(0, 7), SAMPLE.subarray(7, 30), SAMPLE.subarray(30)];
  const lines: Line[] = [];
  for await (const l of ReadableStream.from(chunks).pipeThrough(new LineStream(8))) {
    lines.push(l);
  }
  deepStrictEqual(shape(lines), splitAll(8, [SAMPLE]));
  strictEqual(
    latin1(concat(lines.map((l) => l.complete ? concat([l.bytes, enc("\r\n")]) : l.bytes))),
    latin1(SAMPLE),
  );
});

Deno.test("LineSplitter: with discardOverlong, an overlong line is one fragment and an empty end", () => {
  const splitter = new LineSplitter(8, true);
  const chunk = new TextEncoder().encode("x".repeat(50));
  const out = [
    ...splitter.push(chunk),
    ...splitter.push(chunk),
    ...splitter.push(enc("y\r\nNOOP\r\n")),
  ];
  deepStrictEqual(out.map((l) => [latin1(l.bytes), l.complete, l.start]), [
    ["xxxxxxxx", false, true],
    ["", true, false],
    ["NOOP", true, true],
  ]);
  strictEqual(splitter.buffered, 0);
});

Deno.test("LineSplitter.inLine: true from a line's first byte to its CRLF, overlong or not", () => {
  const splitter = new LineSplitter(8, true);
  strictEqual(splitter.inLine, false, "nothing received yet");
  splitter.push(enc("NO"));
  strictEqual(splitter.inLine, true, "bytes held");
  splitter.push(enc("OP\r"));
  strictEqual(splitter.inLine, true, "a CR held");
  splitter.push(enc("\n"));
  strictEqual(splitter.inLine, false, "the line ended");
  // An overlong line: with discardOverlong nothing of it stays held, yet it goes on.
  strictEqual(splitter.push(enc("x".repeat(50))).length, 1);
  strictEqual(splitter.buffered, 0);
  strictEqual(splitter.inLine, true, "the overlong line has not ended");
  splitter.push(enc("x"));
  strictEqual(splitter.buffered, 0);
  strictEqual(splitter.inLine, true, "still the same line");
  splitter.push(enc("\r"));
  strictEqual(splitter.inLine, true, "a CR held after the overlong line");
  splitter.push(enc("\nQUIT\r\n"));
  strictEqual(splitter.inLine, false, "ended, and the next line is whole");
  splitter.push(enc("abc"));
  strictEqual(splitter.inLine, true);
  splitter.reset();
  strictEqual(splitter.inLine, false, "reset ends the line");
  // Without discardOverlong the same holds for a line split into fragments.
  const keeping = new LineSplitter(8);
  strictEqual(keeping.push(enc("y".repeat(16))).length, 1);
  strictEqual(keeping.inLine, true);
  keeping.push(enc("\r\n"));
  strictEqual(keeping.inLine, false);
});
