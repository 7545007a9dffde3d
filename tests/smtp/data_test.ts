import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { DataReader } from "../../src/smtp/data.ts";
import { type Line, LineSplitter } from "../../src/smtp/line_stream.ts";
import { concat, enc, latin1 } from "./_helpers.ts";

const whole = (text: string): Line => ({ bytes: enc(text), complete: true, start: true });

/** Feeds raw DATA bytes (in the given chunks) through a splitter and a reader. */
function readData(
  chunks: Uint8Array[],
  opts: { maxSize?: number; maxLength?: number } = {},
): { message: string; ended: boolean; afterEnd: Line[]; reader: DataReader } {
  const splitter = new LineSplitter(opts.maxLength ?? 1000);
  const reader = new DataReader(opts.maxSize ?? 1_000_000);
  const parts: Uint8Array[] = [];
  let ended = false;
  const afterEnd: Line[] = [];
  for (const chunk of chunks) {
    for (const l of splitter.push(chunk)) {
      if (ended) {
        afterEnd.push(l);
        continue;
      }
      const out = reader.push(l);
      parts.push(...out.parts);
      if (out.end) {
        ok(out.parts.length === 0, "the end line adds nothing");
        ended = true;
      }
    }
  }
  return { message: latin1(concat(parts)), ended, afterEnd, reader };
}

Deno.test("DataReader: lines are passed through with CRLF", () => {
  const reader = new DataReader(1000);
  const out = reader.push(whole("Subject: hi"));
  deepStrictEqual(out.end, false);
  strictEqual(latin1(concat(out.parts)), "Subject: hi\r\n");
  strictEqual(latin1(concat(reader.push(whole("")).parts)), "\r\n");
  strictEqual(reader.size, 15);
  strictEqual(reader.tooBig, false);
});

Deno.test("DataReader: dot-unstuffing", () => {
  const reader = new DataReader(1000);
  strictEqual(latin1(concat(reader.push(whole("..x")).parts)), ".x\r\n");
  strictEqual(latin1(concat(reader.push(whole("..")).parts)), ".\r\n");
  strictEqual(latin1(concat(reader.push(whole(".x")).parts)), "x\r\n");
  strictEqual(latin1(concat(reader.push(whole("x.")).parts)), "x.\r\n");
  strictEqual(latin1(concat(reader.push(whole(" .")).parts)), " .\r\n");
  strictEqual(reader.size, 4 + 3 + 3 + 4 + 4);
});

Deno.test("DataReader: the line '.' ends the data", () => {
  const reader = new DataReader(1000);
  deepStrictEqual(reader.push(whole(".")), { parts: [], end: true });
  strictEqual(reader.size, 0);
});

Deno.test("DataReader: a dot starting a fragmented line is unstuffed only at the line start", () => {
  const reader = new DataReader(1000);
  // ".." + long line: the first fragment starts the line and loses one dot.
  let out = reader.push({ bytes: enc("..abc"), complete: false, start: true });
  strictEqual(latin1(concat(out.parts)), ".abc");
  // A continuation fragment that happens to start with a dot is kept.
  out = reader.push({ bytes: enc(".def"), complete: false, start: false });
  strictEqual(latin1(concat(out.parts)), ".def");
  // A final piece that is exactly "." is not the end of data: it continues a line.
  out = reader.push({ bytes: enc("."), complete: true, start: false });
  deepStrictEqual([latin1(concat(out.parts)), out.end], [".\r\n", false]);
  // A first fragment that is just "." (a line ".xyz" split after one byte) is unstuffed, not an end.
  out = reader.push({ bytes: enc("."), complete: false, start: true });
  deepStrictEqual([latin1(concat(out.parts)), out.end], ["", false]);
  out = reader.push({ bytes: enc("xyz"), complete: true, start: false });
  strictEqual(latin1(concat(out.parts)), "xyz\r\n");
  strictEqual(reader.size, 4 + 4 + 3 + 0 + 5);
});

Deno.test("DataReader: through the splitter, long lines keep their bytes and one dot is removed", () => {
  const line = "." + ".x".repeat(20); // 41 bytes, split every 8
  const { message, ended } = readData([enc(`${line}\r\n.\r\n`)], { maxLength: 8 });
  ok(ended);
  strictEqual(message, line.slice(1) + "\r\n");
});

Deno.test("DataReader: a whole message through the splitter, in every two-chunk split", () => {
  const raw = "From: a@b.c\r\n\r\n..leading dot\r\n.\r\nNOOP\r\n";
  const bytes = enc(raw);
  for (let i = 0; i <= bytes.length; i++) {
    const r = readData([bytes.subarray(0, i), bytes.subarray(i)]);
    ok(r.ended, `split at ${i}`);
    strictEqual(r.message, "From: a@b.c\r\n\r\n.leading dot\r\n", `split at ${i}`);
    deepStrictEqual(r.afterEnd.map((l) => latin1(l.bytes)), ["NOOP"], `split at ${i}`);
  }
});

Deno.test("DataReader: smuggling sequences do not end the data and are kept byte-exact", () => {
  const variants = ["\n.\n", "\n.\r\n", "\r.\r\n", "\n..\n", "\r.\n", "\r\n\r.\r\n"];
  for (const v of variants) {
    const body = `Subject: x\r\n\r\nbefore${v}MAIL FROM:<evil@x.y>\r\nafter\r\n`;
    for (
      const chunks of [
        [enc(body + ".\r\n")],
        Array.from(enc(body + ".\r\n"), (b) => new Uint8Array([b])),
      ]
    ) {
      const r = readData(chunks);
      ok(r.ended, JSON.stringify(v));
      strictEqual(r.message, body, `variant ${JSON.stringify(v)}`);
    }
  }
});

Deno.test("DataReader: CRLF '.' LF and CRLF '.' CR do not end the data", () => {
  // After a CRLF the next line starts with "." and is unstuffed as RFC 5321 §4.5.2 says;
  // the message goes on and nothing after it is taken as a command.
  const r = readData([enc("a\r\n.\nMAIL FROM:<x@y.z>\r\nb\r\n.\r\n")]);
  ok(r.ended);
  strictEqual(r.message, "a\r\n\nMAIL FROM:<x@y.z>\r\nb\r\n");
  // A client that stuffs correctly gets its bytes back exactly.
  const stuffed = readData([enc("a\r\n..\nMAIL FROM:<x@y.z>\r\nb\r\n.\r\n")]);
  ok(stuffed.ended);
  strictEqual(stuffed.message, "a\r\n.\nMAIL FROM:<x@y.z>\r\nb\r\n");
  // The same for CRLF "." CR.
  const cr = readData([enc("a\r\n.\rQUIT\r\n.\r\n")]);
  ok(cr.ended);
  strictEqual(cr.message, "a\r\n\rQUIT\r\n");
});

Deno.test("DataReader: without CRLF.CRLF the data does not end", () => {
  for (const raw of ["a\r\n.", "a\r\n.\n", "a\n.\r\n", "a\r.\r\n", "a\r\n. \r\n", "a\r\n.\r"]) {
    strictEqual(readData([enc(raw)]).ended, false, JSON.stringify(raw));
  }
  strictEqual(readData([enc(".\r\n")]).ended, true, "an empty message ends at once");
});

Deno.test("DataReader: binary bytes are kept exactly", () => {
  const bytes = new Uint8Array(256).map((_, i) => i);
  const r = readData([bytes, enc("\r\n.\r\n")]);
  ok(r.ended);
  strictEqual(r.message, latin1(bytes) + "\r\n");
});

Deno.test("DataReader: size limit: tooBig after exceeding, parts empty, end still found", () => {
  const reader = new DataReader(10);
  strictEqual(latin1(concat(reader.push(whole("12345678")).parts)), "12345678\r\n");
  strictEqual(reader.size, 10);
  strictEqual(reader.tooBig, false, "exactly the limit is fine");
  deepStrictEqual(reader.push(whole("x")), { parts: [], end: false });
  strictEqual(reader.tooBig, true);
  strictEqual(reader.size, 13);
  deepStrictEqual(reader.push({ bytes: enc("yy"), complete: false, start: true }), {
    parts: [],
    end: false,
  });
  deepStrictEqual(reader.push(whole("..")), { parts: [], end: false });
  strictEqual(reader.size, 13 + 2 + 3);
  deepStrictEqual(reader.push(whole(".")), { parts: [], end: true });
  strictEqual(reader.tooBig, true);
});

Deno.test("DataReader: size counts unstuffed bytes", () => {
  const reader = new DataReader(3);
  reader.push(whole(".a"));
  strictEqual(reader.size, 3);
  strictEqual(reader.tooBig, false);
});

Deno.test("DataReader: a large message through the splitter is tooBig but ends", () => {
  const chunk = enc("x".repeat(1000) + "\r\n");
  const chunks = Array(200).fill(chunk);
  chunks.push(enc(".\r\n"));
  const r = readData(chunks, { maxSize: 50_000, maxLength: 300 });
  ok(r.ended);
  ok(r.reader.tooBig);
  strictEqual(r.reader.size, 200 * 1002);
  // Lines arrive as 300+300+300+100(+CRLF) pieces; output stops at the first piece past the
  // limit: 49 whole lines, then three fragments (49998 bytes), then nothing.
  strictEqual(r.message.length, 49 * 1002 + 900);
  strictEqual(r.message, ("x".repeat(1000) + "\r\n").repeat(49) + "x".repeat(900));
});
