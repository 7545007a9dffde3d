import { concatBytes } from "../../src/bytes.ts";
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  type BounceInput,
  buildBounce,
  headerBlock,
  MAX_HEADER_BLOCK,
} from "../../src/relay/bounce.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const HEADERS = concatBytes([
  enc.encode("From: J\u00fcrgen <a@example.com>\r\nTo: b@example.net\r\nSubject: "),
  new Uint8Array([0xe2, 0x82, 0xac, 0xff]), // UTF-8 euro sign plus a raw 8-bit byte
  enc.encode("\r\nMessage-ID: <orig@example.com>\r\n"),
]);

function input(extra: Partial<BounceInput> = {}): BounceInput {
  return {
    reportingMta: "relay.example.org",
    originalSender: "a@example.com",
    arrivalDate: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
    messageId: "Q123abc",
    failures: [{
      recipient: "nouser@example.net",
      status: "5.1.1",
      diagnostic: "550 5.1.1 user unknown",
      remoteMta: "smtp.example.net",
    }],
    originalHeaders: HEADERS,
    now: new Date(Date.UTC(2026, 0, 3, 10, 20, 30)),
    ...extra,
  };
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Splits a bounce into its top-level headers and MIME parts (as latin1 text to keep bytes). */
function parse(bytes: Uint8Array) {
  const text = new TextDecoder("latin1").decode(bytes);
  const [head] = text.split("\r\n\r\n", 1);
  const boundary = /boundary="([^"]+)"/.exec(head)?.[1];
  ok(boundary, "boundary");
  const sections = text.split(`--${boundary}`);
  strictEqual(sections[sections.length - 1], "--\r\n");
  const parts = sections.slice(1, -1).map((s) => {
    ok(s.startsWith("\r\n"));
    const body = s.slice(2);
    const split = body.indexOf("\r\n\r\n");
    return { headers: body.slice(0, split), body: body.slice(split + 4) };
  });
  return { head, parts, text };
}

Deno.test("bounce: top-level headers and MIME structure", () => {
  const bytes = buildBounce(input());
  const { head, parts, text } = parse(bytes);
  ok(head.includes("From: Mail Delivery System <MAILER-DAEMON@relay.example.org>\r\n"));
  ok(head.includes("To: <a@example.com>\r\n"));
  ok(head.includes("Subject: Undelivered Mail Returned to Sender\r\n"));
  ok(head.includes("Date: Sat, 3 Jan 2026 10:20:30 +0000\r\n"));
  ok(/\r\nMessage-ID: <Q123abc\.\d+\.[0-9a-f]+@relay\.example\.org>\r\n/.test(head));
  ok(head.includes("Auto-Submitted: auto-replied\r\n"));
  ok(head.includes("MIME-Version: 1.0\r\n"));
  ok(head.includes("Content-Type: multipart/report; report-type=delivery-status;"));
  strictEqual(parts.length, 3);
  ok(parts[0].headers.includes("Content-Type: text/plain; charset=utf-8"));
  ok(parts[1].headers.includes("Content-Type: message/delivery-status"));
  ok(parts[2].headers.includes("Content-Type: text/rfc822-headers"));
  ok(parts[2].headers.includes("Content-Transfer-Encoding: 8bit"));
  // Only CRLF line endings.
  ok(!/[^\r]\n/.test(text) && !/\r[^\n]/.test(text));
  for (const line of text.split("\r\n")) ok(line.length <= 998);
});

Deno.test("bounce: human part lists recipients and diagnostics", () => {
  const { parts } = parse(buildBounce(input()));
  ok(parts[0].body.includes("<nouser@example.net>: 550 5.1.1 user unknown"));
  ok(parts[0].body.includes("relay.example.org"));
});

Deno.test("bounce: delivery-status fields", () => {
  const { parts } = parse(buildBounce(input({
    failures: [
      {
        recipient: "nouser@example.net",
        status: "5.1.1",
        diagnostic: "550 5.1.1 user unknown",
        remoteMta: "smtp.example.net",
      },
      { recipient: "full@example.net", status: "5.2.2", diagnostic: "552 mailbox full" },
    ],
  })));
  const groups = parts[1].body.split("\r\n\r\n").filter((g) => g.trim() !== "");
  strictEqual(groups.length, 3);
  deepStrictEqual(groups[0].split("\r\n"), [
    "Reporting-MTA: dns; relay.example.org",
    "X-Carrier-Queue-ID: Q123abc",
    "Arrival-Date: Fri, 2 Jan 2026 03:04:05 +0000",
  ]);
  deepStrictEqual(groups[1].split("\r\n"), [
    "Final-Recipient: rfc822; nouser@example.net",
    "Action: failed",
    "Status: 5.1.1",
    "Remote-MTA: dns; smtp.example.net",
    "Diagnostic-Code: smtp; 550 5.1.1 user unknown",
  ]);
  deepStrictEqual(groups[2].split("\r\n"), [
    "Final-Recipient: rfc822; full@example.net",
    "Action: failed",
    "Status: 5.2.2",
    "Diagnostic-Code: smtp; 552 mailbox full",
  ]);
});

Deno.test("bounce: original headers attached byte-exact, 8-bit kept", () => {
  const bytes = buildBounce(input());
  const at = indexOf(bytes, HEADERS);
  ok(at > 0);
  const after = dec.decode(bytes.subarray(at + HEADERS.length));
  ok(/^\r\n--=_carrier_[0-9a-f]+--\r\n$/.test(after), JSON.stringify(after));
});

Deno.test("bounce: headers without a final CRLF still end the part properly", () => {
  const h = enc.encode("Subject: x");
  const text = dec.decode(buildBounce(input({ originalHeaders: h })));
  ok(/Subject: x\r\n\r\n--=_carrier_[0-9a-f]+--\r\n$/.test(text));
});

Deno.test("bounce: CR/LF injection in diagnostics and addresses is neutralised", () => {
  const text = dec.decode(buildBounce(input({
    originalSender: "a@example.com>\r\nBcc: victim@example.org",
    failures: [{
      recipient: "x@example.net\r\nX-Injected: 1",
      status: "5.1.1\r\nAction: delivered",
      diagnostic: "550 bad\r\nX-Injected: yes\r\n\r\n--fake-boundary",
      remoteMta: "mx.example.net\r\nX-Evil: 1",
    }],
  })));
  for (const line of text.split("\r\n")) {
    ok(!/^(X-Injected|X-Evil|Bcc):/i.test(line), line);
    ok(!line.startsWith("--fake-boundary"), line);
  }
  ok(text.includes("Status: 5.0.0\r\n"), "invalid status replaced");
  ok(!text.includes("Action: delivered"));
  ok(!/[^\r]\n/.test(text));
});

Deno.test("bounce: long diagnostics are folded and truncated below 998 octets", () => {
  const long = "550 " + "word ".repeat(400) + "x".repeat(2000);
  const text = dec.decode(buildBounce(input({
    failures: [{ recipient: "r@example.net", status: "5.0.0", diagnostic: long }],
  })));
  for (const line of text.split("\r\n")) ok(new TextEncoder().encode(line).length <= 998);
  ok(text.includes("..."));
  ok(/\r\nDiagnostic-Code: smtp; 550 word word/.test(text));
});

Deno.test("bounce: delayed-only notice has its own subject and action", () => {
  const text = dec.decode(buildBounce(input({
    failures: [{
      recipient: "slow@example.net",
      status: "4.4.1",
      diagnostic: "connection timed out",
      action: "delayed",
    }],
  })));
  ok(text.includes("Subject: Delayed Mail (still being retried)\r\n"));
  ok(text.includes("Action: delayed\r\nStatus: 4.4.1\r\n"));
});

Deno.test("bounce: UTF-8 recipient uses the utf-8 address type (RFC 6533)", () => {
  const text = dec.decode(buildBounce(input({
    failures: [{ recipient: "j\u00fcrgen@example.net", status: "5.1.1", diagnostic: "550 no" }],
  })));
  ok(text.includes("Content-Type: message/global-delivery-status"));
  ok(text.includes("Final-Recipient: utf-8; j\u00fcrgen@example.net"));
});

Deno.test("bounce: never to the null sender", () => {
  throws(() => buildBounce(input({ originalSender: "" })), /null sender/);
});

Deno.test("headerBlock: up to the first empty line", () => {
  const msg = enc.encode("A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore\r\n");
  strictEqual(dec.decode(headerBlock(msg)), "A: 1\r\nB: 2\r\n");
  strictEqual(headerBlock(enc.encode("\r\nbody only\r\n")).length, 0);
  strictEqual(dec.decode(headerBlock(enc.encode("A: 1\r\nB: 2"))), "A: 1\r\nB: 2");
  // A bare LF pair is not an empty line.
  strictEqual(dec.decode(headerBlock(enc.encode("A: 1\n\nB: 2\r\n\r\nx"))), "A: 1\n\nB: 2\r\n");
});

Deno.test("headerBlock: capped at 64 KiB, cut after a CRLF", () => {
  const line = "X-Long: " + "a".repeat(90) + "\r\n";
  const big = enc.encode(line.repeat(2000) + "\r\nbody");
  const block = headerBlock(big);
  ok(block.length <= MAX_HEADER_BLOCK);
  ok(block.length > MAX_HEADER_BLOCK - line.length);
  strictEqual(block[block.length - 2], 13);
  strictEqual(block[block.length - 1], 10);
});

Deno.test("bounce: ENVID and ORCPT are reported (RFC 3464 §2.2.1, §2.3.1)", () => {
  const text = dec.decode(buildBounce(input({
    envid: "QQ314159",
    failures: [{
      recipient: "nouser@example.net",
      status: "5.1.1",
      diagnostic: "550 5.1.1 user unknown",
      orcpt: { type: "rfc822", address: "Alias@Example.net" },
    }],
  })));
  ok(text.includes("\r\nOriginal-Envelope-Id: QQ314159\r\nReporting-MTA: dns; relay.example.org"));
  ok(
    text.includes(
      "\r\nOriginal-Recipient: rfc822;Alias@Example.net\r\nFinal-Recipient: rfc822; nouser@example.net\r\n",
    ),
  );
});

Deno.test("bounce: a delay warning says when Carrier gives up", () => {
  const until = new Date(Date.UTC(2026, 0, 7, 3, 4, 5));
  const text = dec.decode(buildBounce(input({
    willRetryUntil: until,
    failures: [{
      recipient: "slow@example.net",
      status: "4.4.1",
      diagnostic: "451 later",
      action: "delayed",
    }],
  })));
  ok(text.includes("Subject: Delayed Mail (still being retried)\r\n"));
  ok(text.includes("Action: delayed\r\nStatus: 4.4.1\r\n"));
  ok(text.includes("Will-Retry-Until: Wed, 7 Jan 2026 03:04:05 +0000\r\n"));
  ok(text.includes("It will give up on Wed, 7 Jan 2026 03:04:05 +0000."));
});

Deno.test("bounce: a relayed notice (NOTIFY=SUCCESS) has action relayed and status 2.0.0", () => {
  const text = dec.decode(buildBounce(input({
    failures: [{
      recipient: "ok@example.net",
      status: "2.0.0",
      diagnostic: "250 ok",
      action: "relayed",
    }],
  })));
  ok(text.includes("Subject: Successful Mail Relay Report\r\n"));
  ok(text.includes("Action: relayed\r\nStatus: 2.0.0\r\n"));
  ok(text.includes("Content-Description: Message Headers\r\nContent-Type: text/rfc822-headers"));
});

Deno.test("bounce: RET=FULL attaches the whole message as message/rfc822, byte-exact", () => {
  const message = enc.encode("From: a@example.com\r\nSubject: hi\r\n\r\nthe body\r\n");
  const bytes = buildBounce(input({ originalHeaders: headerBlock(message), fullMessage: message }));
  const { parts } = parse(bytes);
  strictEqual(parts.length, 3);
  ok(parts[2].headers.includes("Content-Type: message/rfc822"));
  ok(indexOf(bytes, message) > 0, "the message is attached whole");
  ok(new TextDecoder().decode(bytes).includes("It is attached below."));
});

Deno.test("bounce: RET=FULL with 8-bit headers attaches message/global", () => {
  const message = concatBytes([HEADERS, enc.encode("\r\nbody\r\n")]);
  const { parts } = parse(buildBounce(input({ fullMessage: message })));
  ok(parts[2].headers.includes("Content-Type: message/global"));
  ok(parts[2].headers.includes("Content-Transfer-Encoding: 8bit"));
});
