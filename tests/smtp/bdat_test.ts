/** ChunkReader: exactly n octets, whatever they contain, across any read boundaries. */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { ChunkReader, parseBdat } from "../../src/smtp/bdat.ts";
import { concat, dec, enc } from "./_helpers.ts";

Deno.test("parseBdat: size and LAST; anything else is an error", () => {
  deepStrictEqual(parseBdat("42"), { size: 42, last: false });
  deepStrictEqual(parseBdat("0 LAST"), { size: 0, last: true });
  deepStrictEqual(parseBdat("7 last"), { size: 7, last: true });
  for (const bad of ["", " 1", "1 2", "-3", "0x10", "1 LAST LAST", "1234567890123456"]) {
    strictEqual("error" in parseBdat(bad), true, bad);
  }
});

Deno.test("ChunkReader: takes exactly the chunk, however the bytes are split", () => {
  const body = "line one\r\n.\r\n.dot\r\nlast\r\n"; // a "." line is content here
  const wire = enc(body + "QUIT\r\n");
  for (let cut = 0; cut <= wire.length; cut++) {
    const r = new ChunkReader({ size: body.length, last: true }, 0, 1000);
    const a = r.scan(wire.subarray(0, cut));
    const spans = [...a.spans];
    let end = a.end;
    if (end === -1) {
      const b = r.scan(wire.subarray(cut));
      spans.push(...b.spans);
      end = b.end === -1 ? -1 : cut + b.end;
    }
    strictEqual(dec(concat(spans)), body, `cut ${cut}`);
    strictEqual(dec(wire.subarray(end)), "QUIT\r\n", `cut ${cut}`);
    strictEqual(r.done, true);
    strictEqual(r.size, body.length);
  }
});

Deno.test("ChunkReader: a chunk boundary inside CRLF keeps both halves", () => {
  const first = new ChunkReader({ size: 3, last: false }, 0, 100);
  const a = first.scan(enc("ab\r"));
  const second = new ChunkReader({ size: 3, last: true }, first.size, 100);
  const b = second.scan(enc("\ncd"));
  strictEqual(dec(concat([...a.spans, ...b.spans])), "ab\r\ncd");
  strictEqual(second.size, 6);
});

Deno.test("ChunkReader: a chunk that lies about its size waits for the rest", () => {
  const r = new ChunkReader({ size: 10, last: true }, 0, 100);
  const { spans, end } = r.scan(enc("short"));
  strictEqual(end, -1);
  strictEqual(r.done, false);
  strictEqual(dec(concat(spans)), "short");
});

Deno.test("ChunkReader: BDAT 0 is done at once; past the limit nothing is kept", () => {
  const empty = new ChunkReader({ size: 0, last: true }, 0, 100);
  strictEqual(empty.done, true);
  deepStrictEqual(empty.scan(enc("MAIL")), { spans: [], end: 0 });
  const big = new ChunkReader({ size: 8, last: false }, 95, 100);
  const r = big.scan(enc("12345678NOOP"));
  deepStrictEqual([r.spans.length, r.end, big.tooBig, big.size], [0, 8, true, 103]);
});
