import { ok, strictEqual } from "node:assert/strict";
import { receivedHeader, rfc5322Date } from "../../src/smtp/received.ts";
import type { Envelope } from "../../src/smtp/envelope.ts";

const DATE = new Date(Date.UTC(2026, 10, 29, 3, 48, 34)); // a Sunday

function envelope(overrides: Partial<Envelope> = {}): Envelope {
  return {
    sender: "a@b.c",
    recipients: ["d@e.f"],
    smtputf8: false,
    body: "7BIT",
    helo: "client.example",
    client: { address: "192.0.2.7", port: 40000, tls: false },
    protocol: "ESMTP",
    dsn: {},
    recipientDsn: [{}],
    ...overrides,
  };
}

const OPTS = { hostname: "mx.test", id: "Q123", date: DATE };

Deno.test("rfc5322Date: UTC with +0000", () => {
  strictEqual(rfc5322Date(DATE), "Sun, 29 Nov 2026 03:48:34 +0000");
  strictEqual(
    rfc5322Date(new Date(Date.UTC(2024, 0, 1, 0, 0, 0))),
    "Mon, 1 Jan 2024 00:00:00 +0000",
  );
  strictEqual(
    rfc5322Date(new Date(Date.UTC(1999, 11, 31, 23, 59, 59))),
    "Fri, 31 Dec 1999 23:59:59 +0000",
  );
  strictEqual(
    rfc5322Date(new Date(Date.UTC(2028, 1, 29, 12, 5, 9))),
    "Tue, 29 Feb 2028 12:05:09 +0000",
  );
});

Deno.test("rfc5322Date: matches the RFC 5322 date-time shape for many dates", () => {
  const shape =
    /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} \+0000$/;
  for (let t = Date.UTC(2000, 0, 1); t < Date.UTC(2040, 0, 1); t += 86_400_000 * 37 + 3_599_000) {
    const text = rfc5322Date(new Date(t));
    ok(shape.test(text), text);
    // It parses back to the same instant.
    strictEqual(Date.parse(text), t);
  }
});

Deno.test("receivedHeader: one recipient", () => {
  strictEqual(
    receivedHeader(envelope(), OPTS),
    "Received: from client.example ([192.0.2.7])\r\n" +
      "\tby mx.test (Carrier) with ESMTP id Q123\r\n" +
      "\tfor <d@e.f>; Sun, 29 Nov 2026 03:48:34 +0000\r\n",
  );
});

Deno.test("receivedHeader: several recipients are not listed", () => {
  strictEqual(
    receivedHeader(envelope({ recipients: ["d@e.f", "g@h.i"], protocol: "ESMTPSA" }), OPTS),
    "Received: from client.example ([192.0.2.7])\r\n" +
      "\tby mx.test (Carrier) with ESMTPSA id Q123; Sun, 29 Nov 2026 03:48:34 +0000\r\n",
  );
});

Deno.test("receivedHeader: IPv6 client addresses are tagged", () => {
  const header = receivedHeader(
    envelope({ client: { address: "2001:db8::7", port: 1, tls: true }, protocol: "ESMTPS" }),
    OPTS,
  );
  ok(header.startsWith("Received: from client.example ([IPv6:2001:db8::7])\r\n"), header);
  ok(header.includes(" with ESMTPS id Q123"));
});

Deno.test("receivedHeader: the client's HELO name cannot break the header", () => {
  const header = receivedHeader(envelope({ helo: "evil\r\nX-Injected: yes (x) ü" }), OPTS);
  strictEqual(header.split("\r\n")[0], "Received: from evil??X-Injected:?yes??x??? ([192.0.2.7])");
  const long = receivedHeader(envelope({ helo: "h".repeat(1000) }), OPTS);
  strictEqual(long.split("\r\n")[0], `Received: from ${"h".repeat(255)} ([192.0.2.7])`);
  // Every line but the first is folded (starts with a tab), and the header ends with CRLF.
  for (const header of [long, receivedHeader(envelope(), OPTS)]) {
    ok(header.endsWith("\r\n"));
    const lines = header.slice(0, -2).split("\r\n");
    ok(lines.slice(1).every((l) => l.startsWith("\t")));
    ok(lines.every((l) => l.length <= 998));
    ok(!/[\r\n]/.test(lines.join("")));
  }
});
