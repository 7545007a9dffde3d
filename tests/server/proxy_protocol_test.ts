import { deepStrictEqual, strictEqual } from "node:assert/strict";
import fc from "fast-check";
import {
  parseProxyHeader,
  type ProxyParse,
  V1_MAX_LENGTH,
  V2_MAX_LENGTH,
} from "../../src/server/proxy_protocol.ts";
import { formatIPv4, formatIPv6 } from "../../src/ip.ts";
import { proxyV1, proxyV2 } from "../support/proxy_header.ts";

const text = (s: string) => new TextEncoder().encode(s);
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const kind = (r: ProxyParse) => r.kind;

Deno.test("parseProxyHeader reads v1 TCP4 and keeps the SMTP bytes after it", () => {
  const bytes = concat(text("PROXY TCP4 192.0.2.7 10.0.0.1 40000 25\r\n"), text("EHLO x\r\n"));
  const r = parseProxyHeader(bytes);
  deepStrictEqual(r, {
    kind: "done",
    length: 40,
    header: {
      version: 1,
      command: "proxy",
      source: { address: "192.0.2.7", port: 40000 },
      destination: { address: "10.0.0.1", port: 25 },
    },
  });
  strictEqual(new TextDecoder().decode(bytes.subarray(40)), "EHLO x\r\n");
});

Deno.test("parseProxyHeader reads v1 TCP6 in canonical form", () => {
  const r = parseProxyHeader(text("PROXY TCP6 2001:DB8:0:0::1 ::1 1 2\r\n"));
  strictEqual(r.kind, "done");
  if (r.kind === "done") deepStrictEqual(r.header.source, { address: "2001:db8::1", port: 1 });
});

Deno.test("parseProxyHeader: v1 UNKNOWN keeps the real peer (no source)", () => {
  for (const line of ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ::1 1 2\r\n"]) {
    deepStrictEqual(parseProxyHeader(text(line)), {
      kind: "done",
      length: line.length,
      header: { version: 1, command: "proxy" },
    });
  }
});

Deno.test("parseProxyHeader: malformed v1 headers are errors", () => {
  const bad = [
    "PROXY TCP4 192.0.2.7 10.0.0.1 40000\r\n",
    "PROXY TCP4 192.0.2.7 10.0.0.1 40000 25 extra\r\n",
    "PROXY TCP5 192.0.2.7 10.0.0.1 1 2\r\n",
    "PROXY TCP4 ::1 10.0.0.1 1 2\r\n",
    "PROXY TCP6 192.0.2.7 ::1 1 2\r\n",
    "PROXY TCP4 192.0.2.256 10.0.0.1 1 2\r\n",
    "PROXY TCP4 192.0.2.07 10.0.0.1 1 2\r\n",
    "PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n",
    "PROXY TCP4 192.0.2.7 10.0.0.1 01 2\r\n",
    "PROXY TCP4  192.0.2.7 10.0.0.1 1 2\r\n",
    "PROXY TCP4 192.0.2.7 10.0.0.1 1 2\n",
    "PROXY TCP4 192.0.2.7 10.0.0.1 1 2\rX",
    "PROXY TCP4 192.0.2.7\t10.0.0.1 1 2\r\n",
    "proxy TCP4 192.0.2.7 10.0.0.1 1 2\r\n",
    "EHLO client.example\r\n",
    `PROXY UNKNOWN ${"x".repeat(V1_MAX_LENGTH)}\r\n`,
  ];
  for (const line of bad) strictEqual(kind(parseProxyHeader(text(line))), "error", line);
});

Deno.test("parseProxyHeader: a v1 header is incomplete until its CRLF, then oversized at 107", () => {
  const line = "PROXY TCP4 192.0.2.7 10.0.0.1 40000 25\r\n";
  for (let n = 1; n < line.length; n++) {
    strictEqual(kind(parseProxyHeader(text(line.slice(0, n)))), "incomplete", `${n} bytes`);
  }
  strictEqual(kind(parseProxyHeader(text(`PROXY UNKNOWN ${"x".repeat(92)}`))), "error");
  strictEqual(kind(parseProxyHeader(text(`PROXY UNKNOWN ${"x".repeat(91)}`))), "incomplete");
  strictEqual(kind(parseProxyHeader(text(`PROXY UNKNOWN ${"x".repeat(91)}\r\n`))), "done");
});

Deno.test("parseProxyHeader reads v2 PROXY over IPv4 and IPv6, skipping TLVs", () => {
  const tlvs = new Uint8Array([
    0x04,
    0x00,
    0x03,
    1,
    2,
    3,
    0x01,
    0x00,
    0x04,
    0x73,
    0x6d,
    0x74,
    0x70,
  ]);
  const v4 = proxyV2({ src: { address: "198.51.100.9", port: 5555 }, tlvs });
  deepStrictEqual(parseProxyHeader(concat(v4, text("QUIT\r\n"))), {
    kind: "done",
    length: 16 + 12 + tlvs.length,
    header: {
      version: 2,
      command: "proxy",
      source: { address: "198.51.100.9", port: 5555 },
      destination: { address: "127.0.0.1", port: 25 },
    },
  });
  const v6 = proxyV2({
    src: { address: "2001:db8::42", port: 1 },
    dst: { address: "::", port: 2 },
  });
  const r = parseProxyHeader(v6);
  strictEqual(r.kind, "done");
  if (r.kind === "done") {
    strictEqual(r.length, 16 + 36);
    deepStrictEqual(r.header.source, { address: "2001:db8::42", port: 1 });
    deepStrictEqual(r.header.destination, { address: "::", port: 2 });
  }
});

Deno.test("parseProxyHeader: v2 LOCAL and UNSPEC keep the real peer", () => {
  deepStrictEqual(parseProxyHeader(proxyV2({ command: "local" })), {
    kind: "done",
    length: 16,
    header: { version: 2, command: "local" },
  });
  // LOCAL may still carry addresses; they are ignored.
  const local = proxyV2({ command: "local", src: { address: "192.0.2.1", port: 1 } });
  deepStrictEqual(parseProxyHeader(local), {
    kind: "done",
    length: 28,
    header: { version: 2, command: "local" },
  });
  deepStrictEqual(parseProxyHeader(proxyV2({})), {
    kind: "done",
    length: 16,
    header: { version: 2, command: "proxy" },
  });
  const unix = proxyV2({ tlvs: new Uint8Array(216) });
  unix[13] = 0x31; // AF_UNIX, STREAM: no IP client address, fall back to the peer
  deepStrictEqual(parseProxyHeader(unix), {
    kind: "done",
    length: 16 + 216,
    header: { version: 2, command: "proxy" },
  });
});

Deno.test("parseProxyHeader: malformed v2 headers are errors", () => {
  const good = () => proxyV2({ src: { address: "192.0.2.1", port: 1 } });
  const mutate = (at: number, value: number) => {
    const b = good();
    b[at] = value;
    return b;
  };
  const cases: [string, Uint8Array][] = [
    ["bad signature", mutate(11, 0x0b)],
    ["version 1 nibble", mutate(12, 0x11)],
    ["version 3", mutate(12, 0x31)],
    ["command 2", mutate(12, 0x22)],
    ["family 4", mutate(13, 0x41)],
    ["transport 3", mutate(13, 0x13)],
    ["INET with 11 address bytes", concat(mutate(15, 11).subarray(0, 27))],
    ["INET6 with 12 address bytes", mutate(13, 0x21)],
    ["longer than the bound", mutate(14, 0xff)],
  ];
  for (const [name, bytes] of cases) strictEqual(kind(parseProxyHeader(bytes)), "error", name);
  strictEqual(V2_MAX_LENGTH < 16 + 0xffff, true);
});

Deno.test("parseProxyHeader: a v2 header split anywhere is incomplete until its last byte", () => {
  const header = proxyV2({ src: { address: "2001:db8::1", port: 9 }, tlvs: new Uint8Array(5) });
  for (let n = 1; n < header.length; n++) {
    strictEqual(kind(parseProxyHeader(header.subarray(0, n))), "incomplete", `${n} bytes`);
  }
  strictEqual(kind(parseProxyHeader(header)), "done");
});

const ipv4 = fc.integer({ min: 0, max: 0xffffffff }).map(formatIPv4);
const ipv6 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }).map(formatIPv6);
const port = fc.integer({ min: 0, max: 65535 });
const endpoint = (address: fc.Arbitrary<string>) => fc.record({ address, port });

Deno.test("parseProxyHeader: encode then parse gives the endpoints back (v1 and v2)", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.tuple(endpoint(ipv4), endpoint(ipv4)),
        fc.tuple(endpoint(ipv6), endpoint(ipv6)),
      ),
      fc.uint8Array({ maxLength: 64 }),
      fc.uint8Array({ maxLength: 32 }),
      ([s, d], tlvs, rest) => {
        const src = { ...s };
        const dst = { ...d };
        for (const header of [proxyV1(src, dst), proxyV2({ src, dst, tlvs })]) {
          const r = parseProxyHeader(concat(header, rest));
          if (r.kind !== "done") throw new Error(`not parsed: ${JSON.stringify(r)}`);
          strictEqual(r.length, header.length);
          deepStrictEqual(r.header.source, src);
          deepStrictEqual(r.header.destination, dst);
        }
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("parseProxyHeader: arbitrary bytes never throw and any length stays in bounds", () => {
  const prefixed = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 120 }).map((b) => concat(text("PROXY "), b)),
    fc.uint8Array({ maxLength: 120 }).map((b) => concat(proxyV2().subarray(0, 12), b)),
  );
  fc.assert(
    fc.property(prefixed, (bytes) => {
      const r = parseProxyHeader(bytes);
      if (r.kind === "done") {
        if (r.length > bytes.length || r.length > V2_MAX_LENGTH) throw new Error("length lies");
      }
    }),
    { numRuns: 1000 },
  );
});
