import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  formatAddress,
  parseDuration,
  parseListenAddress,
  parseSize,
} from "../../src/config/units.ts";
import { configError } from "./_helpers.ts";

Deno.test("parseListenAddress: IPv4, names, bracketed IPv6", () => {
  deepStrictEqual(parseListenAddress("127.0.0.1:2525", "listen"), {
    hostname: "127.0.0.1",
    port: 2525,
  });
  deepStrictEqual(parseListenAddress("[::1]:2525", "listen"), { hostname: "::1", port: 2525 });
  deepStrictEqual(parseListenAddress("[::]:25", "listen"), { hostname: "::", port: 25 });
  deepStrictEqual(parseListenAddress("[::ffff:127.0.0.1]:25", "listen"), {
    hostname: "::ffff:127.0.0.1",
    port: 25,
  });
  deepStrictEqual(parseListenAddress("localhost:0", "listen"), { hostname: "localhost", port: 0 });
  deepStrictEqual(parseListenAddress("0.0.0.0:65535", "listen"), {
    hostname: "0.0.0.0",
    port: 65535,
  });
});

Deno.test("parseListenAddress: bad values name the key and the value", () => {
  for (
    const bad of [
      "",
      "2525",
      "127.0.0.1",
      "127.0.0.1:",
      ":2525",
      "::1:2525",
      "[::1]",
      "[::1]2525",
      "[localhost]:25",
      "127.0.0.1:port",
      "127.0.0.1:123456",
      "127.0.0.1:-1",
      "host name:25",
    ]
  ) {
    throws(() => parseListenAddress(bad, "listen-tls"), configError("listen-tls", `"${bad}"`), bad);
  }
  throws(() => parseListenAddress("127.0.0.1:65536", "listen"), configError("listen", "65536"));
  throws(() => parseListenAddress("127.0.0.1:99999", "listen"), configError("listen", "range"));
});

Deno.test("formatAddress brackets IPv6 and round-trips with parseListenAddress", () => {
  for (const text of ["127.0.0.1:2525", "[::1]:2525", "localhost:25", "[2001:db8::1]:587"]) {
    strictEqual(formatAddress(parseListenAddress(text, "listen")), text);
  }
});

Deno.test("parseDuration: numbers are seconds; s, m, h, d suffixes", () => {
  strictEqual(parseDuration(0, "x"), 0);
  strictEqual(parseDuration(1.5, "x"), 1.5);
  strictEqual(parseDuration("45", "x"), 45);
  strictEqual(parseDuration("30s", "x"), 30);
  strictEqual(parseDuration("5m", "x"), 300);
  strictEqual(parseDuration("2h", "x"), 7200);
  strictEqual(parseDuration("5d", "x"), 432_000);
  strictEqual(parseDuration("0.5m", "x"), 30);
  strictEqual(parseDuration(" 10s ", "x"), 10);
  for (
    const bad of [-1, NaN, Infinity, "", "m", "5w", "-5s", "5 m", "1e3", "5ms", null, true, {}]
  ) {
    throws(() => parseDuration(bad, "retry-min"), configError("retry-min"), String(bad));
  }
});

Deno.test("parseSize: bytes, K/M/G in binary units", () => {
  strictEqual(parseSize(1, "x"), 1);
  strictEqual(parseSize(26214400, "x"), 26214400);
  strictEqual(parseSize("1000", "x"), 1000);
  strictEqual(parseSize("10K", "x"), 10 * 1024);
  strictEqual(parseSize("10k", "x"), 10 * 1024);
  strictEqual(parseSize("25M", "x"), 25 * 1024 * 1024);
  strictEqual(parseSize("25MB", "x"), 25 * 1024 * 1024);
  strictEqual(parseSize("25MiB", "x"), 25 * 1024 * 1024);
  strictEqual(parseSize("25 MiB", "x"), 25 * 1024 * 1024);
  strictEqual(parseSize("2G", "x"), 2 * 1024 ** 3);
  for (const bad of [0, -1, 1.5, "0", "0M", "", "M", "10T", "10 bytes", "1.5M", "-1", null]) {
    throws(() => parseSize(bad, "max-message-size"), configError("max-message-size"), String(bad));
  }
});
