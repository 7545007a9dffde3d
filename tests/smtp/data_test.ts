import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import fc from "fast-check";
import { DataScanner } from "../../src/smtp/data.ts";
import { ReferenceData } from "./_reference_data.ts";
import { concat, enc, latin1 } from "./_helpers.ts";

interface Scanned {
  /** The message bytes (latin1), as the spool writer would get them. */
  message: string;
  /** Index of the chunk the data ended in, and the offset just after ".\r\n" there. */
  endChunk: number;
  end: number;
  /** What follows the end in that chunk (left for the command reader). */
  after: string;
  scanner: DataScanner;
}

/** Scans raw DATA bytes (in the given chunks), as the connection does, up to the end. */
function scanData(chunks: Uint8Array[], opts: { maxSize?: number } = {}): Scanned {
  const scanner = new DataScanner(opts.maxSize ?? 1_000_000);
  const parts: Uint8Array[] = [];
  for (const [i, chunk] of chunks.entries()) {
    // Copy each span at once, as the spool writer does: the chunk may be reused.
    const { spans, end } = scanner.scan(chunk);
    for (const s of spans) parts.push(s.slice());
    if (end !== -1) {
      return {
        message: latin1(concat(parts)),
        endChunk: i,
        end,
        after: latin1(chunk.subarray(end)),
        scanner,
      };
    }
  }
  return { message: latin1(concat(parts)), endChunk: -1, end: -1, after: "", scanner };
}

const text = (s: string) => enc(s);

Deno.test("DataScanner: lines are passed through with their CRLF", () => {
  const r = scanData([text("Subject: hi\r\n\r\nbody\r\n.\r\n")]);
  strictEqual(r.message, "Subject: hi\r\n\r\nbody\r\n");
  strictEqual(r.end, 24);
  strictEqual(r.scanner.size, 21);
  strictEqual(r.scanner.tooBig, false);
});

Deno.test("DataScanner: dot-unstuffing removes one dot at the start of a line only", () => {
  const r = scanData([text("..x\r\n..\r\n.x\r\nx.\r\n .\r\nx\r\n...\r\n.\r\n")]);
  strictEqual(r.message, ".x\r\n.\r\nx\r\nx.\r\n .\r\nx\r\n..\r\n");
  strictEqual(r.scanner.size, r.message.length, "size counts unstuffed bytes");
});

Deno.test("DataScanner: the line '.' ends the data; an empty message is just that", () => {
  const r = scanData([text(".\r\n")]);
  deepStrictEqual([r.message, r.end, r.scanner.size], ["", 3, 0]);
  const scanner = new DataScanner(10);
  deepStrictEqual(scanner.scan(text(".\r\n")), { spans: [], end: 3 });
});

Deno.test("DataScanner: scanning starts at `start` (after the DATA line in the same chunk)", () => {
  const chunk = text("DATA\r\nSubject: x\r\n\r\n.y\r\n.\r\nQUIT\r\n");
  const scanner = new DataScanner(1000);
  const { spans, end } = scanner.scan(chunk, 6);
  strictEqual(latin1(concat(spans)), "Subject: x\r\n\r\ny\r\n");
  strictEqual(latin1(chunk.subarray(end)), "QUIT\r\n", "what follows is left for the commands");
  // An empty message right after the DATA line.
  const empty = text("DATA\r\n.\r\nNOOP\r\n");
  deepStrictEqual(new DataScanner(10).scan(empty, 6), { spans: [], end: 9 });
});

Deno.test("DataScanner: a whole message and the next command, in every two- and three-chunk split", () => {
  const raw = text("From: a@b.c\r\n\r\n..leading dot\r\n.\r\nNOOP\r\n");
  const endAt = latin1(raw).indexOf("\r\n.\r\n") + 5;
  for (let i = 0; i <= raw.length; i++) {
    for (let j = i; j <= raw.length; j++) {
      const r = scanData([raw.subarray(0, i), raw.subarray(i, j), raw.subarray(j)]);
      const where = `split at ${i}, ${j}`;
      strictEqual(r.message, "From: a@b.c\r\n\r\n.leading dot\r\n", where);
      const chunkStart = [0, i, j][r.endChunk];
      strictEqual(chunkStart + r.end, endAt, where);
      strictEqual(r.scanner.size, 29, where);
    }
  }
});

Deno.test("DataScanner: chunk boundaries inside CRLF, inside CRLF.CRLF, and in a dot line", () => {
  const cases: [string[], string][] = [
    [["abc\r", "\n.\r\n"], "abc\r\n"],
    [["abc\r\n", ".\r\n"], "abc\r\n"],
    [["abc\r\n.", "\r\n"], "abc\r\n"],
    [["abc\r\n.\r", "\n"], "abc\r\n"],
    [["abc", "\r", "\n", ".", "\r", "\n"], "abc\r\n"],
    [["x\r\n.", ".y\r\n.\r\n"], "x\r\n.y\r\n"],
    [["x\r\n.", ".", "y\r\n.\r\n"], "x\r\n.y\r\n"],
    [["x\r\n.", "\r", "z\r\n.\r\n"], "x\r\n\rz\r\n"],
    [["x\r\n.\r", "\r\n.\r\n"], "x\r\n\r\r\n"],
    [["..abc", ".def\r\n.\r\n"], ".abc.def\r\n"],
    [["", "a\r\n", "", ".\r\n"], "a\r\n"],
  ];
  for (const [chunks, expected] of cases) {
    const r = scanData(chunks.map(text));
    ok(r.end !== -1, JSON.stringify(chunks));
    strictEqual(r.message, expected, JSON.stringify(chunks));
    strictEqual(r.scanner.size, expected.length, JSON.stringify(chunks));
  }
});

Deno.test("DataScanner: smuggling sequences do not end the data and are kept byte-exact", () => {
  const variants = ["\n.\n", "\n.\r\n", "\r.\r\n", "\n..\n", "\r.\n", "\r\n\r.\r\n"];
  for (const v of variants) {
    const body = `Subject: x\r\n\r\nbefore${v}MAIL FROM:<evil@x.y>\r\nafter\r\n`;
    for (
      const chunks of [
        [enc(body + ".\r\n")],
        Array.from(enc(body + ".\r\n"), (b) => new Uint8Array([b])),
      ]
    ) {
      const r = scanData(chunks);
      ok(r.end !== -1, JSON.stringify(v));
      strictEqual(r.message, body, `variant ${JSON.stringify(v)}`);
    }
  }
});

Deno.test("DataScanner: CRLF '.' LF and CRLF '.' CR do not end the data", () => {
  // After a CRLF the next line starts with "." and is unstuffed as RFC 5321 §4.5.2 says;
  // the message goes on and nothing after it is taken as a command.
  const r = scanData([text("a\r\n.\nMAIL FROM:<x@y.z>\r\nb\r\n.\r\n")]);
  strictEqual(r.message, "a\r\n\nMAIL FROM:<x@y.z>\r\nb\r\n");
  // A client that stuffs correctly gets its bytes back exactly.
  const stuffed = scanData([text("a\r\n..\nMAIL FROM:<x@y.z>\r\nb\r\n.\r\n")]);
  strictEqual(stuffed.message, "a\r\n.\nMAIL FROM:<x@y.z>\r\nb\r\n");
  // The same for CRLF "." CR.
  const cr = scanData([text("a\r\n.\rQUIT\r\n.\r\n")]);
  strictEqual(cr.message, "a\r\n\rQUIT\r\n");
});

Deno.test("DataScanner: without CRLF.CRLF the data does not end", () => {
  for (const raw of ["a\r\n.", "a\r\n.\n", "a\n.\r\n", "a\r.\r\n", "a\r\n. \r\n", "a\r\n.\r"]) {
    strictEqual(scanData([text(raw)]).end, -1, JSON.stringify(raw));
    strictEqual(scanData(Array.from(text(raw), (b) => Uint8Array.of(b))).end, -1, raw);
  }
});

Deno.test("DataScanner: binary bytes are kept exactly", () => {
  const bytes = new Uint8Array(256).map((_, i) => i);
  const r = scanData([bytes, text("\r\n.\r\n")]);
  strictEqual(r.message, latin1(bytes) + "\r\n");
});

Deno.test("DataScanner: size limit: tooBig after exceeding, nothing more kept, end still found", () => {
  const scanner = new DataScanner(10);
  const first = scanner.scan(text("12345678\r\n"));
  strictEqual(latin1(concat(first.spans)), "12345678\r\n");
  strictEqual(scanner.size, 10);
  strictEqual(scanner.tooBig, false, "exactly the limit is fine");
  deepStrictEqual(scanner.scan(text("x\r\n")), { spans: [], end: -1 });
  strictEqual(scanner.tooBig, true);
  strictEqual(scanner.size, 13);
  deepStrictEqual(scanner.scan(text("yy")), { spans: [], end: -1 });
  deepStrictEqual(scanner.scan(text("\r\n..\r\n")), { spans: [], end: -1 });
  strictEqual(scanner.size, 13 + 4 + 3);
  deepStrictEqual(scanner.scan(text(".\r\n")), { spans: [], end: 3 });
  strictEqual(scanner.tooBig, true);
});

Deno.test("DataScanner: a large message is tooBig but ends, with the size of all of it", () => {
  const line = text("x".repeat(1000) + "\r\n");
  const chunks = Array(200).fill(line);
  chunks.push(text(".\r\n"));
  const r = scanData(chunks, { maxSize: 50_000 });
  strictEqual(r.endChunk, 200);
  ok(r.scanner.tooBig);
  strictEqual(r.scanner.size, 200 * 1002);
  ok(r.message.length <= 50_000, "output stops at the limit");
});

Deno.test("DataScanner: a 1 MB line without CRLF comes back as views of the input, nothing held", () => {
  const MB = 1024 * 1024;
  const piece = 64 * 1024;
  const scanner = new DataScanner(10 * MB);
  let total = 0;
  for (let i = 0; i < MB / piece; i++) {
    const chunk = new Uint8Array(piece).fill(i % 2 === 0 ? 0x61 : 0x2e); // "a…" and "…" dots
    const { spans, end } = scanner.scan(chunk);
    strictEqual(end, -1);
    for (const s of spans) {
      strictEqual(s.buffer, chunk.buffer, "a span is a view of the chunk, not a copy");
      total += s.length;
    }
    strictEqual(total, (i + 1) * piece, "every byte is handed on at once; nothing is buffered");
  }
  strictEqual(scanner.size, MB);
  // One 1 MB chunk at once: a single view of it.
  const one = new DataScanner(10 * MB);
  const big = new Uint8Array(MB).fill(0x62);
  const { spans } = one.scan(big);
  strictEqual(spans.length, 1);
  strictEqual(spans[0].buffer, big.buffer);
  strictEqual(spans[0].length, MB);
  // The end after it.
  const tail = one.scan(text("\r\n.\r\n"));
  strictEqual(tail.end, 5);
  strictEqual(latin1(concat(tail.spans)), "\r\n");
  strictEqual(one.size, MB + 2);
});

// ---- the scanner against the old line-based reader ----

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/** Bytes with CR, LF and "." far more frequent than chance, and the sequences that matter. */
const dataBytes = fc.array(
  fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 0, max: 255 }).map((b) => [b]) },
    { weight: 4, arbitrary: fc.constantFrom(CR, LF, DOT, 0x61).map((b) => [b]) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        "\r\n",
        "\r\n.",
        "\r\n..",
        ".\r",
        "\r\n.\r",
        "\r\n.\r\n",
        "\n.\n",
        "\r.\r\n",
      ).map((s) => Array.from(enc(s))),
    },
  ),
  { maxLength: 120 },
).map((pieces) => Uint8Array.from(pieces.flat()));

/** Splits `bytes` at the given cut points (taken modulo the length; empty pieces possible). */
function cut(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const at = points.map((p) => p % (bytes.length + 1)).sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let last = 0;
  for (const p of at) {
    pieces.push(bytes.subarray(last, p));
    last = p;
  }
  pieces.push(bytes.subarray(last));
  return pieces;
}

/** Runs both readers over the same chunks and checks they agree; tells whether the data ended. */
function compare(
  chunks: Uint8Array[],
  maxSize: number,
  maxLength: number,
  prefix: number,
): { ended: boolean } {
  const scanner = new DataScanner(maxSize);
  const reference = new ReferenceData(maxSize, maxLength);
  const got: Uint8Array[] = [];
  const want: Uint8Array[] = [];
  for (const [i, chunk] of chunks.entries()) {
    // The first chunk may carry command bytes before the data (the DATA line).
    const start = i === 0 ? Math.min(prefix, chunk.length) : 0;
    const a = scanner.scan(chunk, start);
    for (const s of a.spans) got.push(s.slice());
    const b = reference.scan(chunk, start);
    want.push(...b.parts);
    strictEqual(a.end, b.end, `end in chunk ${i}`);
    if (a.end !== -1) {
      // (Before the end the two may differ: the old reader counted a line once it was split off.)
      strictEqual(scanner.size, reference.size, "size");
      strictEqual(scanner.tooBig, reference.tooBig, "tooBig");
      if (!reference.tooBig) strictEqual(latin1(concat(got)), latin1(concat(want)), "bytes");
      return { ended: true };
    }
  }
  return { ended: false };
}

Deno.test("DataScanner gives the same bytes, end and size as the old line reader, for any chunking", () => {
  fc.assert(
    fc.property(
      dataBytes,
      fc.array(fc.nat(), { maxLength: 12 }),
      fc.oneof(fc.constant(1_000_000), fc.integer({ min: 0, max: 80 })),
      fc.integer({ min: 1, max: 70 }),
      fc.nat(4),
      (input, points, maxSize, maxLength, prefix) => {
        const chunks = cut(input, points);
        if (compare(chunks, maxSize, maxLength, prefix).ended) return;
        // No end in the input: both must agree on the rest of the message once the client
        // ends it (the pending CR of ".\r", a half line, a held dot all count the same).
        const ending = enc("\r\n.\r\n");
        const { ended } = compare([...chunks, ending], maxSize, maxLength, prefix);
        ok(ended, "CRLF.CRLF always ends the data");
      },
    ),
    { numRuns: 3000 },
  );
});

Deno.test("DataScanner and the old reader agree on dot-stuffed messages split into many chunks", () => {
  fc.assert(
    fc.property(
      dataBytes,
      fc.array(fc.nat(), { maxLength: 40 }),
      (body, points) => {
        // What a client sends (RFC 5321 §4.5.2): CRLF at the end, lines starting "." stuffed.
        let t = latin1(body);
        if (!t.endsWith("\r\n")) t += "\r\n";
        const stuffed = t.slice(0, -2).split("\r\n").map((l) => l.startsWith(".") ? "." + l : l)
          .join("\r\n") + "\r\n.\r\nQUIT\r\n";
        const wire = Uint8Array.from(stuffed, (c) => c.charCodeAt(0));
        const chunks = cut(wire, points);
        ok(compare(chunks, 1_000_000, 1000, 0).ended);
        const r = scanData(chunks);
        strictEqual(r.message, t, "the client's bytes come back exactly");
        strictEqual(r.scanner.size, t.length);
        const rest = r.after + chunks.slice(r.endChunk + 1).map(latin1).join("");
        strictEqual(rest, "QUIT\r\n", "exactly the bytes after the end are left");
      },
    ),
    { numRuns: 1000 },
  );
});
